"""Print runs as the API shows them (the runs themselves are made by delivery.printing).

A run may hold several departments' licences (a shared station prints for all). A
department key sees the runs that hold at least one of its licences, and in them only
its own items and its own pages: the other licences carry other applicants' names and
addresses. Runs are found by their licences, not by station name, because a station
is a place (a print room), not a department. Admin keys see every run whole.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import Any

from msgspec import UNSET, UnsetType
from pypdf import PdfReader, PdfWriter
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from delivery.models import License, PrintRun, PrintRunItem
from delivery.printing import run_items
from delivery.schemas import PrintRunItemOut, PrintRunOut, PrintRunPage
from onetrip.auth import Principal
from onetrip.errors import Conflict, NotFound
from onetrip.pagination import envelope, page


def _sees_everything(principal: Principal) -> bool:
    return principal.role == "admin"


def _holds_department_licenses(principal: Principal) -> Any:
    return exists(
        select(PrintRunItem.license_id)
        .join(License, License.id == PrintRunItem.license_id)
        .where(
            PrintRunItem.print_run_id == PrintRun.id,
            License.department.in_(principal.departments),
        )
    )


def _summary(run: PrintRun, items: list[PrintRunItemOut] | UnsetType = UNSET) -> PrintRunOut:
    return PrintRunOut(
        id=run.id,
        station=run.station,
        status=run.status,
        printer=run.printer,
        sha256=run.sha256,
        pages=run.pages,
        license_count=run.license_count,
        printer_job_id=run.printer_job_id,
        printer_state=run.printer_state,
        error=run.error,
        attempts=run.attempts,
        created_at=run.created_at,
        sent_at=run.sent_at,
        items=items,
    )


async def list_runs(
    session: AsyncSession,
    principal: Principal,
    *,
    station: str | None,
    status: str | None,
    limit: int | None,
    cursor: str | None,
) -> PrintRunPage:
    """One page of the runs the key may see, newest first (without their items)."""
    stmt = select(PrintRun).options(defer(PrintRun.document))
    if not _sees_everything(principal):
        stmt = stmt.where(_holds_department_licenses(principal))
    if station:
        stmt = stmt.where(PrintRun.station == station)
    if status:
        stmt = stmt.where(PrintRun.status == status)
    rows = (
        (await session.execute(page(stmt, PrintRun.id, cursor, limit, prefix="prn")))
        .scalars()
        .all()
    )
    body = envelope([_summary(run) for run in rows], limit, id_of=lambda view: view.id)
    return PrintRunPage(data=body["data"], next_cursor=body["next_cursor"])


async def _visible_run(
    session: AsyncSession, principal: Principal, run_id: str
) -> tuple[PrintRun, list[tuple[PrintRunItem, License]]]:
    """The run and the items the key may see; another department's run is a 404."""
    run = await session.get(PrintRun, run_id)
    rows = (
        await session.execute(
            select(PrintRunItem, License)
            .join(License, License.id == PrintRunItem.license_id)
            .where(PrintRunItem.print_run_id == run_id)
            .order_by(PrintRunItem.position)
        )
    ).all()
    items = [(item, lic) for item, lic in rows if principal.sees_department(lic.department)]
    if run is None or not (_sees_everything(principal) or items):
        raise NotFound(f"no print run {run_id}", code="print_run_not_found")
    return run, items


async def get_run(session: AsyncSession, principal: Principal, run_id: str) -> PrintRunOut:
    """The run with its items (a department key: its own items only)."""
    run, items = await _visible_run(session, principal, run_id)
    return _summary(
        run,
        [
            PrintRunItemOut(
                license_id=item.license_id,
                license_no=lic.license_no,
                department=lic.department,
                print_no=item.print_no,
                position=item.position,
                sha256=item.sha256,
                pages=item.pages,
                cover_sha256=item.cover_sha256,
                cover_pages=item.cover_pages,
            )
            for item, lic in items
        ],
    )


async def run_document(session: AsyncSession, principal: Principal, run_id: str) -> bytes:
    """The run's PDF as sent; for a department key, only the pages of its licences."""
    run, visible = await _visible_run(session, principal, run_id)
    if run.document is None:
        raise Conflict(
            f"print run {run_id} has no document yet (the next tick builds it)",
            code="print_run_not_ready",
        )
    if _sees_everything(principal):
        return run.document
    mine = {item.license_id for item, _ in visible}
    ranges: list[range] = []
    first = 0
    for item in await run_items(session, run_id):
        count = item.pages + item.cover_pages
        if item.license_id in mine:
            ranges.append(range(first, first + count))
        first += count
    return await asyncio.to_thread(_extract, run.document, ranges)


def _extract(document: bytes, ranges: Sequence[range]) -> bytes:
    reader = PdfReader(io.BytesIO(document))
    writer = PdfWriter()
    for pages in ranges:
        for number in pages:
            writer.add_page(reader.pages[number])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
