"""Shared helpers of the print-run tests (no tests of its own).

Rendered licences are built here as the renderer leaves them — a `License` in
`rendered` with its `LicenseDocument` rows (the licence and its cover sheet) — holding
small real PDFs drawn with ReportLab, each page marked with what it is, so a printed
run can be read back and checked page by page.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from typing import Any

from pypdf import PdfReader
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
from sqlalchemy import func, select

from delivery.models import License, LicenseDocument, PrintRun, PrintRunItem
from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.ids import new_id
from onetrip.outbox import OutboxEvent
from onetrip.states import StateTransition
from tests.factories import auth, make_key, payment_body, seed_catalogue

_numbers = itertools.count(1)

#: addresses in one city and two, for the dispatch order
XIHU = {
    "recipient": "张伟",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "line1": "文三路 100 号 3 幢 201 室",
    "postal_code": "310012",
}
SHANGCHENG = {**XIHU, "recipient": "李娜", "district": "上城区", "line1": "解放路 18 号"}
YINZHOU = {
    **XIHU,
    "recipient": "王芳",
    "city": "宁波市",
    "district": "鄞州区",
    "line1": "天童南路 588 号",
    "postal_code": "315100",
}


def draw_pdf(*pages: str) -> bytes:
    """A real A4 PDF with one marker line per page."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=1)
    for marker in pages:
        pdf.setFont("Helvetica", 14)
        pdf.drawString(72, 760, marker)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def page_markers(document: bytes) -> list[str]:
    """Each page's marker line, read back from a PDF."""
    return [(page.extract_text() or "").strip() for page in PdfReader(io.BytesIO(document)).pages]


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def a_payment(client: Any) -> dict[str, str]:
    """An admin, PSB and NRB keys, the catalogue, and a PSB and an NRB payment (licences
    point at a payment; which one does not matter to printing)."""
    admin = await make_key("admin")
    await seed_catalogue(client, admin)
    keys = {
        "admin": admin,
        "psb": await make_key("department", ["PSB"]),
        "nrb": await make_key("department", ["NRB"]),
    }
    for department, matter in (("psb", "passport"), ("nrb", "real-estate-transfer")):
        response = await client.post(
            "/api/v1/payments",
            json=payment_body(matter, reference=f"REF-{department}-{next(_numbers)}"),
            headers=auth(keys[department], f"pay-{department}-{next(_numbers)}"),
        )
        assert response.status_code == 201, response.text
        keys[f"{department}_payment"] = response.json()["id"]
    return keys


async def rendered_license(
    payment_id: str,
    *,
    department: str = "PSB",
    station: str = "default",
    address: dict[str, Any] | None = XIHU,
    status: str = "rendered",
    license_pages: int = 1,
    cover: bool = True,
    documents: bool = True,
) -> License:
    """A licence as the renderer leaves it, committed: its PDF pages say
    "LICENCE <no> p<n>", its cover sheet "COVER <no>"."""
    number = f"{department}-2026-{next(_numbers):06d}"
    now = utcnow()
    license = License(
        id=new_id("lic"),
        department=department,
        payment_id=payment_id,
        matter_code="passport",
        license_no=number,
        title="普通护照",
        holder_name=(address or XIHU)["recipient"],
        fields={"签发机关": "杭州市公安局出入境管理局"},
        status=status,
        delivery_method="courier" if address else "pickup",
        address=address,
        print_station=station,
        created_at=now,
        updated_at=now,
    )
    pages = [f"LICENCE {number} p{n}" for n in range(1, license_pages + 1)]
    drawn = [("license", draw_pdf(*pages))] if documents else []
    if cover and documents:
        drawn.append(("cover", draw_pdf(f"COVER {number}")))
    async with unit_of_work() as session:
        session.add(license)
        await session.flush()
        for kind, content in drawn:
            session.add(
                LicenseDocument(
                    license_id=license.id,
                    kind=kind,
                    version=1,
                    content=content,
                    sha256=sha256(content),
                    pages=len(PdfReader(io.BytesIO(content)).pages),
                    font="Helvetica",
                    rendered_at=now,
                )
            )
    return license


async def runs() -> list[PrintRun]:
    async with get_database().session() as session:
        return list((await session.execute(select(PrintRun).order_by(PrintRun.id))).scalars())


async def items_of(run_id: str) -> list[PrintRunItem]:
    async with get_database().session() as session:
        stmt = (
            select(PrintRunItem)
            .where(PrintRunItem.print_run_id == run_id)
            .order_by(PrintRunItem.position)
        )
        return list((await session.execute(stmt)).scalars())


async def all_items() -> list[PrintRunItem]:
    async with get_database().session() as session:
        return list((await session.execute(select(PrintRunItem))).scalars())


async def status_of(license_id: str) -> str:
    async with get_database().session() as session:
        return (await session.get(License, license_id)).status  # type: ignore[union-attr]


async def printed_events(license_id: str | None = None) -> int:
    """How many `license.printed` outbox events (of one licence) there are."""
    async with get_database().session() as session:
        stmt = select(func.count()).where(OutboxEvent.type == "license.printed")
        if license_id:
            stmt = stmt.where(OutboxEvent.subject_id == license_id)
        return int(await session.scalar(stmt) or 0)


async def print_moves(license_id: str) -> list[tuple[str, str, str]]:
    """The licence's recorded `print` moves: (event, from, to)."""
    async with get_database().session() as session:
        rows = await session.execute(
            select(
                StateTransition.event, StateTransition.from_state, StateTransition.to_state
            ).where(
                StateTransition.machine == "license",
                StateTransition.subject_id == license_id,
                StateTransition.event == "print",
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]
