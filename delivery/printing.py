"""Print runs: the cut-off gathers each station's rendered licences into one run, one
PDF is built and sent to the station's printer, and the licences move to `printed`.

Every `ONETRIP_PRINT_INTERVAL` seconds (`delivery.jobs.print_rendered_licences`):

1. **Cut-off** (`gather_run`, one transaction per run): the station's `rendered`
   licences that are in no unsent run are claimed. The claim is race-safe with any
   number of schedulers: the candidates are read `FOR UPDATE SKIP LOCKED` (PostgreSQL),
   so a second gatherer skips licences the first is claiming instead of waiting, and the
   `print_run_items` rows are inserted with ON CONFLICT DO NOTHING on their primary key
   `(license_id, print_no)`: a licence a concurrent run claimed meanwhile stays in that
   run only. A licence is in exactly one run per print.
2. **Document** (`build_document`, outside any transaction): the recorded documents
   (each licence, then its cover sheet) merged with pypdf into one PDF, every document's
   SHA-256 checked against the item, the page count checked against the sum.
3. **Send** (`send_run`): one process takes the run (`sending`, a lease), sends it
   outside the database transaction, then records the printer's answer and applies
   `print` to each licence in one transaction. A printer that fails leaves the run
   `failed` with the error and its attempts: the next tick sends it again, nothing is
   lost. A sender that died mid-send is replaced once its lease is old (the run may
   then print twice, never zero times; a spool folder just gets the same file again).
4. **Follow** (`follow_printer_states`): later ticks ask an IPP printer how a recent
   run's job went (pending → processing → completed) and record its state.

The API's read side is `delivery.print_queries`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pypdf import PdfReader, PdfWriter
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.events import license_event
from delivery.models import License, LicenseDocument, PrintRun, PrintRunItem
from delivery.printers import PrintAnswer, printer_for
from delivery.printers.cups import IppPrinter
from delivery.states import LICENSE_MACHINE, RENDERED
from onetrip.clock import utcnow
from onetrip.db import get_database, insert_ignoring_conflicts, unit_of_work
from onetrip.errors import InvalidTransition
from onetrip.ids import new_id
from onetrip.states import StateTransition, Transition, apply

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
#: licences per run: a run's PDF stays a few MB, and a printer jam costs one run only
MAX_RUN_LICENSES = 200
#: a run `sending` for longer than this belongs to a sender that died: send it again
SEND_LEASE = timedelta(minutes=10)


@dataclass
class PrintTick:
    """What one tick did (for logs and tests)."""

    gathered: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def dispatch_order(license: License) -> tuple[str, ...]:
    """Where a licence goes in its run: by address (province, city, district, line1),
    then licence id, so the parcels for one area come off the printer together and are
    packed and handed over together. Pickup licences (no address) come first. Names
    compare by code point: what counts is that one area's parcels are together."""
    address = license.address or {}
    return (
        *(str(address.get(part) or "") for part in ("province", "city", "district", "line1")),
        license.id,
    )


# --- the tick ------------------------------------------------------------------------


async def print_due_licences(*, max_run_licenses: int = MAX_RUN_LICENSES) -> PrintTick:
    """The periodic job: cut-off for every station, then send every unsent run."""
    tick = PrintTick()
    for station in await stations_waiting():
        while run_id := await gather_run(station, max_run_licenses=max_run_licenses):
            tick.gathered.append(run_id)
    for run_id in await unsent_runs():
        answer = await send_run(run_id)
        if answer is not None:
            tick.sent.append(run_id)
        elif await _status(run_id) == FAILED:
            tick.failed.append(run_id)
    await follow_printer_states()
    return tick


async def stations_waiting() -> list[str]:
    """The print stations with rendered licences (some perhaps in unsent runs already)."""
    async with get_database().session() as session:
        stmt = (
            select(License.print_station)
            .where(License.status == RENDERED)
            .distinct()
            .order_by(License.print_station)
        )
        return list((await session.execute(stmt)).scalars())


async def unsent_runs() -> list[str]:
    """Runs waiting to be sent: new, failed, or left `sending` by a sender that died."""
    stale = utcnow() - SEND_LEASE
    async with get_database().session() as session:
        stmt = select(PrintRun.id).where(_sendable(stale)).order_by(PrintRun.id)
        return list((await session.execute(stmt)).scalars())


def _sendable(stale: Any) -> Any:
    return or_(
        PrintRun.status.in_((PENDING, FAILED)),
        and_(PrintRun.status == SENDING, PrintRun.send_started_at < stale),
    )


#: IPP job states after which a job changes no more
_SETTLED = frozenset({"completed", "canceled", "aborted", "spooled", "taken"})
#: how long after sending a job's state is still asked for
FOLLOW_FOR = timedelta(hours=1)


async def follow_printer_states() -> None:
    """Ask the printer how the jobs of recently sent runs are doing (an IPP job goes
    pending → processing → completed, or stops) and record what it says. A printer that
    does not answer now is asked again at the next tick."""
    async with get_database().session() as session:
        rows = (
            await session.execute(
                select(
                    PrintRun.id, PrintRun.printer, PrintRun.printer_job_id, PrintRun.printer_state
                )
                .where(
                    PrintRun.status == SENT,
                    PrintRun.sent_at > utcnow() - FOLLOW_FOR,
                    PrintRun.printer_job_id.is_not(None),
                    PrintRun.printer.startswith("ipp"),
                )
                .order_by(PrintRun.id)
            )
        ).all()
    for run_id, uri, job_id, state in rows:
        if state in _SETTLED:
            continue
        try:
            answer = await IppPrinter(uri).status(job_id)
        except Exception as exc:  # asked again next tick
            log.info("print run %s: %s did not say how job %s is: %s", run_id, uri, job_id, exc)
            continue
        if answer.state != state:
            async with unit_of_work() as session:
                await session.execute(
                    update(PrintRun)
                    .where(PrintRun.id == run_id)
                    .values(printer_state=answer.state[:100])
                )


# --- 1. the cut-off -------------------------------------------------------------------


@dataclass(frozen=True)
class _Documents:
    sha256: str
    pages: int
    cover_sha256: str | None
    cover_pages: int


async def gather_run(station: str, *, max_run_licenses: int = MAX_RUN_LICENSES) -> str | None:
    """Claim up to `max_run_licenses` of the station's waiting licences into a new run
    (committed); None when there are none left to claim."""
    async with unit_of_work() as session:
        return await _gather(session, station, max_run_licenses)


async def _gather(session: AsyncSession, station: str, limit: int) -> str | None:
    unsent_item = (
        select(PrintRunItem.license_id)
        .join(PrintRun, PrintRun.id == PrintRunItem.print_run_id)
        .where(PrintRunItem.license_id == License.id, PrintRun.status != SENT)
    )
    has_document = select(LicenseDocument.id).where(
        LicenseDocument.license_id == License.id, LicenseDocument.kind == "license"
    )
    candidates = (
        (
            await session.execute(
                select(License)
                .where(
                    License.status == RENDERED,
                    License.print_station == station,
                    ~exists(unsent_item),
                    exists(has_document),  # else one broken licence could hold up a station
                )
                .order_by(License.id)  # the oldest first, so none waits for ever
                .limit(limit)
                .with_for_update(skip_locked=True, of=License)
            )
        )
        .scalars()
        .all()
    )
    if not candidates:
        return None
    ids = [license.id for license in candidates]
    documents = await _documents_of(session, ids)
    printed = await _print_numbers(session, ids)
    ready = sorted((lic for lic in candidates if lic.id in documents), key=dispatch_order)
    if not ready:
        return None

    run = PrintRun(
        id=new_id("prn"),
        station=station,
        status=PENDING,
        printer=_printer_name(station),
        pages=0,
        license_count=0,
        attempts=0,
        created_at=utcnow(),
    )
    session.add(run)
    await session.flush()
    rows = [
        {
            "license_id": license.id,
            "print_no": printed.get(license.id, 0) + 1,
            "print_run_id": run.id,
            "position": position,
            "sha256": documents[license.id].sha256,
            "pages": documents[license.id].pages,
            "cover_sha256": documents[license.id].cover_sha256,
            "cover_pages": documents[license.id].cover_pages,
        }
        for position, license in enumerate(ready, start=1)
    ]
    claim = (
        insert_ignoring_conflicts(session, PrintRunItem.__table__, ["license_id", "print_no"])
        .values(rows)
        .returning(PrintRunItem.__table__.c.license_id)
    )
    claimed = set((await session.execute(claim)).scalars())
    if not claimed:  # every one was taken by a concurrent run meanwhile
        await session.execute(delete(PrintRun).where(PrintRun.id == run.id))
        return None
    run.license_count = len(claimed)
    run.pages = sum(r["pages"] + r["cover_pages"] for r in rows if r["license_id"] in claimed)
    await session.flush()
    return run.id


def _printer_name(station: str) -> str:
    """Where the run will go, as configured now (the send records where it went)."""
    try:
        return printer_for(station).uri
    except ValueError:  # a bad ONETRIP_PRINTERS: the send records the error
        return "unconfigured"


async def _documents_of(session: AsyncSession, ids: Sequence[str]) -> dict[str, _Documents]:
    """Each licence's newest licence document and cover sheet (hash and pages only)."""
    doc = LicenseDocument
    rows = await session.execute(
        select(doc.license_id, doc.kind, doc.version, doc.sha256, doc.pages)
        .where(doc.license_id.in_(ids), doc.kind.in_(("license", "cover")))
        .order_by(doc.license_id, doc.kind, doc.version)
    )
    newest: dict[tuple[str, str], tuple[str, int]] = {}
    for license_id, kind, _version, sha256, pages in rows:
        newest[(license_id, kind)] = (sha256, pages)  # ascending versions: the last wins
    found: dict[str, _Documents] = {}
    for license_id in ids:
        if (license_id, "license") not in newest:
            continue
        sha256, pages = newest[(license_id, "license")]
        cover_sha256, cover_pages = newest.get((license_id, "cover"), (None, 0))
        found[license_id] = _Documents(sha256, pages, cover_sha256, cover_pages)
    return found


async def _print_numbers(session: AsyncSession, ids: Sequence[str]) -> dict[str, int]:
    """How many times each licence was printed already (a reprint is the next number).

    Counted from the licence's applied `print` moves, not from existing run items: two
    gatherers racing for a licence both see it unprinted and both propose print number
    1, so the primary key lets one of them have it. (Counting items instead, the one
    whose read came after the other's commit proposed number 2 and printed it again.)
    """
    moves = StateTransition.__table__.c
    rows = await session.execute(
        select(moves.subject_id, func.count())
        .where(
            moves.machine == LICENSE_MACHINE.name,
            moves.subject_id.in_(ids),
            moves.event == "print",
            moves.applied.is_(True),
        )
        .group_by(moves.subject_id)
    )
    return {license_id: number for license_id, number in rows}


# --- 2. the run's document ------------------------------------------------------------


class PrintRunBroken(Exception):
    """A run's recorded documents are missing or differ from what was recorded."""


async def run_items(session: AsyncSession, run_id: str) -> list[PrintRunItem]:
    stmt = (
        select(PrintRunItem)
        .where(PrintRunItem.print_run_id == run_id)
        .order_by(PrintRunItem.position)
    )
    return list((await session.execute(stmt)).scalars())


async def build_document(run_id: str) -> bytes:
    """The run's one PDF (built and stored once; later calls return the stored one)."""
    async with get_database().session() as session:
        run = await session.get(PrintRun, run_id)
        if run is None:
            raise PrintRunBroken(f"no print run {run_id}")
        if run.document is not None:
            return run.document
        parts = await _parts(session, await run_items(session, run_id))
    document, pages = await asyncio.to_thread(merge, parts)
    async with unit_of_work() as session:
        await session.execute(
            update(PrintRun)
            .where(PrintRun.id == run_id, PrintRun.document.is_(None))
            .values(document=document, sha256=_sha256(document), pages=pages)
        )
        stored = await session.scalar(select(PrintRun.document).where(PrintRun.id == run_id))
    return stored or document


async def _parts(session: AsyncSession, items: list[PrintRunItem]) -> list[tuple[bytes, int]]:
    """Every item's recorded documents, in order: (bytes, pages) of licence, then cover."""
    parts: list[tuple[bytes, int]] = []
    for item in items:
        wanted = [("license", item.sha256, item.pages)]
        if item.cover_sha256:
            wanted.append(("cover", item.cover_sha256, item.cover_pages))
        for kind, sha256, pages in wanted:
            content = await session.scalar(
                select(LicenseDocument.content)
                .where(
                    LicenseDocument.license_id == item.license_id,
                    LicenseDocument.kind == kind,
                    LicenseDocument.sha256 == sha256,
                )
                .limit(1)
            )
            if content is None or _sha256(content) != sha256:
                raise PrintRunBroken(f"{kind} document {sha256} of {item.license_id} is gone")
            parts.append((content, pages))
    return parts


def merge(parts: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    """One PDF of every part in order, and its page count (checked against the parts')."""
    writer = PdfWriter()
    for content, pages in parts:
        reader = PdfReader(io.BytesIO(content))
        if len(reader.pages) != pages:
            raise PrintRunBroken(f"a document has {len(reader.pages)} pages, not {pages}")
        writer.append(reader)
    out = io.BytesIO()
    writer.write(out)
    total = sum(pages for _, pages in parts)
    if len(writer.pages) != total:
        raise PrintRunBroken(f"the merged run has {len(writer.pages)} pages, not {total}")
    return out.getvalue(), total


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


# --- 3. sending -----------------------------------------------------------------------


async def send_run(run_id: str) -> PrintAnswer | None:
    """Send the run if this process can take it; the printer's answer once sent, None if
    another process has it, it was sent already, or the printer failed (recorded)."""
    station = await _station(run_id)
    if station is None:
        return None
    try:
        printer = printer_for(station)
    except ValueError as exc:  # a bad ONETRIP_PRINTERS
        await _record_failure(run_id, f"not sent: {exc}", taken=False)
        return None
    now = utcnow()
    async with unit_of_work() as session:
        took = await session.execute(
            update(PrintRun)
            .where(PrintRun.id == run_id, _sendable(now - SEND_LEASE))
            .values(
                status=SENDING,
                send_started_at=now,
                attempts=PrintRun.attempts + 1,
                printer=printer.uri,
            )
            .returning(PrintRun.license_count)
        )
        count = took.scalar_one_or_none()
    if count is None:
        return None
    # Merged only once the run is ours: another process holding it costs no merge here.
    try:
        document = await build_document(run_id)
    except (PrintRunBroken, ValueError) as exc:  # a lost or unreadable document
        await _record_failure(run_id, f"not sent: {exc}")
        return None
    try:
        answer = await printer.send(document, title=f"{run_id}-{station}")
    except Exception as exc:  # any failure: the run stays, visible, for the next tick
        log.warning("print run %s (%d licences) not sent: %s", run_id, count, exc)
        await _record_failure(run_id, str(exc) or type(exc).__name__)
        return None
    async with unit_of_work() as session:
        await _record_sent(session, run_id, answer)
    log.info("print run %s sent to %s: job %s %s", run_id, printer.uri, answer.job_id, answer.state)
    return answer


async def _record_sent(session: AsyncSession, run_id: str, answer: PrintAnswer) -> None:
    await session.execute(
        update(PrintRun)
        .where(PrintRun.id == run_id)
        .values(
            status=SENT,
            printer_job_id=answer.job_id[:100],
            printer_state=answer.state[:100],
            error=None,
            sent_at=utcnow(),
        )
    )
    for item in await run_items(session, run_id):
        try:
            await apply(session, LICENSE_MACHINE, item.license_id, "print", _printed)
        except InvalidTransition:
            # revoked while waiting for the printer: the page is printed, the licence is
            # not sent anywhere (its status says revoked)
            log.warning("licence %s printed in run %s: not rendered now", item.license_id, run_id)


async def _printed(license: License, transition: Transition[License]) -> Any:
    return license_event(license, previous_status=transition.previous)


async def _record_failure(run_id: str, error: str, *, taken: bool = True) -> None:
    """Mark the run failed with `error`: the one this process took (`sending`), or, when
    it could not even take it, a run no one is sending (counted as an attempt too)."""
    values: dict[str, Any] = {"status": FAILED, "error": error[:4000]}
    if taken:
        whose = PrintRun.status == SENDING
    else:
        whose = PrintRun.status.in_((PENDING, FAILED))
        values["attempts"] = PrintRun.attempts + 1
    async with unit_of_work() as session:
        await session.execute(update(PrintRun).where(PrintRun.id == run_id, whose).values(**values))


async def _station(run_id: str) -> str | None:
    async with get_database().session() as session:
        return await session.scalar(select(PrintRun.station).where(PrintRun.id == run_id))


async def _status(run_id: str) -> str | None:
    async with get_database().session() as session:
        return await session.scalar(select(PrintRun.status).where(PrintRun.id == run_id))
