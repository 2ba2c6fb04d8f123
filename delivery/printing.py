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
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pypdf import PdfReader, PdfWriter
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.licenses import move_licenses
from delivery.models import License, LicenseDocument, PrintRun, PrintRunItem
from delivery.printers import PrintAnswer, printer_for
from delivery.printers.cups import IppPrinter
from delivery.states import LICENSE_MACHINE, RENDERED
from onetrip.clock import utcnow
from onetrip.consumers import reading
from onetrip.db import insert_ignoring_conflicts, unit_of_work
from onetrip.ids import new_id
from onetrip.states import StateTransition

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


def dispatch_order(license: License | Any) -> tuple[str, ...]:
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
        while True:
            async with unit_of_work() as session:
                run_id, full = await _gather_counted(session, station, max_run_licenses)
            if run_id:
                tick.gathered.append(run_id)
            if not full:  # fewer candidates than a run holds: none are left to claim
                break
    for run_id, station in await _unsent_runs_with_station():
        answer = await send_run(run_id, station=station)
        if answer is not None:
            tick.sent.append(run_id)
        elif await _status(run_id) == FAILED:
            tick.failed.append(run_id)
    await follow_printer_states()
    return tick


async def stations_waiting() -> list[str]:
    """The print stations with rendered licences (some perhaps in unsent runs already)."""
    async with reading() as connection:
        stmt = (
            select(License.print_station)
            .where(License.status == RENDERED)
            .distinct()
            .order_by(License.print_station)
        )
        return list((await connection.execute(stmt)).scalars())


async def unsent_runs() -> list[str]:
    """Runs waiting to be sent: new, failed, or left `sending` by a sender that died."""
    return [run_id for run_id, _ in await _unsent_runs_with_station()]


async def _unsent_runs_with_station() -> list[tuple[str, str]]:
    stale = utcnow() - SEND_LEASE
    async with reading() as connection:
        stmt = select(PrintRun.id, PrintRun.station).where(_sendable(stale)).order_by(PrintRun.id)
        return [(run_id, station) for run_id, station in await connection.execute(stmt)]


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
    async with reading() as connection:
        rows = (
            await connection.execute(
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
        run_id, _full = await _gather_counted(session, station, max_run_licenses)
        return run_id


async def _gather(session: AsyncSession, station: str, limit: int) -> str | None:
    return (await _gather_counted(session, station, limit))[0]


async def _gather_counted(
    session: AsyncSession, station: str, limit: int
) -> tuple[str | None, bool]:
    """(the new run, or None; whether `limit` candidates were found, so more may wait)."""
    unsent_item = (
        select(PrintRunItem.license_id)
        .join(PrintRun, PrintRun.id == PrintRunItem.print_run_id)
        .where(PrintRunItem.license_id == License.id, PrintRun.status != SENT)
    )
    has_document = select(LicenseDocument.id).where(
        LicenseDocument.license_id == License.id, LicenseDocument.kind == "license"
    )
    candidates = (
        await session.execute(
            select(License.id, License.address)
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
    ).all()
    full = len(candidates) >= limit
    if not candidates:
        return None, full
    ids = [license.id for license in candidates]
    documents = await _documents_of(session, ids)
    printed = await _print_numbers(session, ids)
    ready = sorted((lic for lic in candidates if lic.id in documents), key=dispatch_order)
    if not ready:
        return None, full

    runs = PrintRun.__table__
    run_id = new_id("prn")
    await session.execute(
        runs.insert().values(
            id=run_id,
            station=station,
            status=PENDING,
            printer=_printer_name(station),
            pages=0,
            license_count=0,
            attempts=0,
            created_at=utcnow(),
        )
    )
    rows = [
        {
            "license_id": license.id,
            "print_no": printed.get(license.id, 0) + 1,
            "print_run_id": run_id,
            "position": position,
            "sha256": documents[license.id].sha256,
            "pages": documents[license.id].pages,
            "cover_sha256": documents[license.id].cover_sha256,
            "cover_pages": documents[license.id].cover_pages,
        }
        for position, license in enumerate(ready, start=1)
    ]
    claim = insert_ignoring_conflicts(
        session, PrintRunItem.__table__, ["license_id", "print_no"]
    ).returning(PrintRunItem.__table__.c.license_id)
    claimed = set((await session.execute(claim, rows)).scalars())  # one cached statement
    if not claimed:  # every one was taken by a concurrent run meanwhile
        await session.execute(delete(runs).where(runs.c.id == run_id))
        return None, full
    pages = sum(r["pages"] + r["cover_pages"] for r in rows if r["license_id"] in claimed)
    await session.execute(
        update(runs).where(runs.c.id == run_id).values(license_count=len(claimed), pages=pages)
    )
    return run_id, full


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
    runs = PrintRun.__table__
    async with reading() as connection:
        found = (
            await connection.execute(select(runs.c.document).where(runs.c.id == run_id))
        ).first()
        if found is None:
            raise PrintRunBroken(f"no print run {run_id}")
        if found.document is not None:
            return found.document
        parts = await _run_parts(connection, run_id)
    document, pages = await asyncio.to_thread(merge, parts)
    async with unit_of_work() as session:
        stored = await session.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.document.is_(None))
            .values(document=document, sha256=_sha256(document), pages=pages)
            .returning(runs.c.id)
        )
        if stored.first() is not None:
            return document
        # another process stored its build first: that one is the run's document
        kept = await session.scalar(select(runs.c.document).where(runs.c.id == run_id))
    return kept or document


async def _run_parts(connection: Any, run_id: str) -> list[tuple[bytes, int]]:
    """Every item's recorded documents, in order: (bytes, pages) of licence, then cover,
    read in one query and each checked against the SHA-256 the item recorded."""
    items = PrintRunItem.__table__.c
    docs = LicenseDocument.__table__.c
    recorded = or_(
        and_(docs.kind == "license", docs.sha256 == items.sha256),
        and_(docs.kind == "cover", docs.sha256 == items.cover_sha256),
    )
    rows = (
        await connection.execute(
            select(items.license_id, items.position, docs.kind, docs.content)
            .select_from(PrintRunItem.__table__)
            .join(LicenseDocument.__table__, docs.license_id == items.license_id)
            .where(items.print_run_id == run_id, recorded)
            .order_by(items.position, docs.kind.desc(), docs.version)  # license before cover
        )
    ).all()
    contents: dict[tuple[str, str], bytes] = {}
    for row in rows:
        contents.setdefault((row.license_id, row.kind), row.content)
    item_rows = (
        await connection.execute(
            select(items.license_id, items.sha256, items.pages)
            .add_columns(items.cover_sha256, items.cover_pages)
            .where(items.print_run_id == run_id)
            .order_by(items.position)
        )
    ).all()
    parts: list[tuple[bytes, int]] = []
    for item in item_rows:
        wanted = [("license", item.sha256, item.pages)]
        if item.cover_sha256:
            wanted.append(("cover", item.cover_sha256, item.cover_pages))
        for kind, sha256, pages in wanted:
            content = contents.get((item.license_id, kind))
            if content is None or _sha256(content) != sha256:
                raise PrintRunBroken(f"{kind} document {sha256} of {item.license_id} is gone")
            parts.append((content, pages))
    return parts


def merge(parts: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    """One PDF of every part in order, and its page count (checked against the parts').

    The documents we draw (ReportLab: plain objects, a cross-reference table, one flat
    page tree) are joined object by object, without parsing their streams: about 20
    times less CPU than pypdf, which reads and re-writes every object. A part of another
    shape is merged by pypdf instead."""
    try:
        return join_pdfs(parts)
    except _OtherShape:
        return merge_with_pypdf(parts)


class _OtherShape(Exception):
    """A PDF not shaped as ReportLab writes it: left to pypdf."""


_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_XREF_HEAD = re.compile(rb"xref\s+0\s+(\d+)\s+")
_REF = re.compile(rb"\b(\d+) 0 R\b")
_PAGE_TYPE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_TRAILER_REF = re.compile(rb"/(Root|Info) (\d+) 0 R")


def _pdf_objects(pdf: bytes) -> tuple[dict[int, bytes], int, int | None]:
    """A ReportLab PDF's objects (number → what lies between `obj` and `endobj`), its
    catalog's number and its info dictionary's."""
    tail = _STARTXREF.search(pdf, max(0, len(pdf) - 64))
    if tail is None:
        raise _OtherShape("no startxref")
    xref_at = int(tail.group(1))
    head = _XREF_HEAD.match(pdf, xref_at)
    if head is None:
        raise _OtherShape("no cross-reference table")
    count, table = int(head.group(1)), head.end()
    offsets: dict[int, int] = {}
    for number in range(count):
        entry = pdf[table + 20 * number : table + 20 * number + 20]
        if len(entry) != 20:
            raise _OtherShape("a short cross-reference table")
        if entry[17:18] == b"n":
            offsets[number] = int(entry[:10])
    trailer = dict((kind, int(n)) for kind, n in _TRAILER_REF.findall(pdf, table + 20 * count))
    if b"Root" not in trailer or b"/Prev" in pdf[table + 20 * count :]:
        raise _OtherShape("no catalog, or an updated file")
    bounds = [*sorted(offsets.values()), xref_at]
    following = {start: bounds[n + 1] for n, start in enumerate(bounds[:-1])}
    objects: dict[int, bytes] = {}
    for number, start in offsets.items():
        header = b"%d 0 obj" % number
        if not pdf.startswith(header, start):
            raise _OtherShape(f"object {number} is not where the table says")
        end = pdf.rfind(b"endobj", start, following[start])
        if end < 0:
            raise _OtherShape(f"object {number} does not end")
        objects[number] = pdf[start + len(header) : end]
    return objects, trailer[b"Root"], trailer.get(b"Info")


def _renumbered(body: bytes, numbers: dict[int, int]) -> bytes:
    """`body` with its references renumbered (a stream's bytes are left as they are)."""
    split = body.find(b"stream")
    head, rest = (body, b"") if split < 0 else (body[:split], body[split:])

    def new(match: re.Match[bytes]) -> bytes:
        old = int(match.group(1))
        if old not in numbers:
            raise _OtherShape(f"a reference to object {old}, which is not there")
        return b"%d 0 R" % numbers[old]

    return _REF.sub(new, head) + rest


def join_pdfs(parts: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    """`merge` for PDFs shaped as ReportLab writes them (`_OtherShape` otherwise): every
    part's objects renumbered, its pages under one new page tree, its catalog and info
    dropped. The same parts give the same bytes."""
    catalog_no, pages_no = 1, 2
    next_no = 3
    kids: list[int] = []
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\x93\x8c\x8b\x9e\n")
    offsets: dict[int, int] = {}
    for content, pages in parts:
        objects, root, info = _pdf_objects(content)
        tree = re.search(rb"/Pages (\d+) 0 R", objects.get(root, b""))
        if tree is None or int(tree.group(1)) not in objects:
            raise _OtherShape("a catalog without its page tree")
        tree_no = int(tree.group(1))
        tree_body = objects[tree_no]
        listed = re.search(rb"/Kids \[([^\]]*)\]", tree_body)
        if listed is None or b"/Type /Pages" not in tree_body:
            raise _OtherShape("a page tree without its kids")
        own_kids = [int(n) for n in _REF.findall(listed.group(1))]
        if not all(_PAGE_TYPE.search(objects.get(kid, b"")) for kid in own_kids):
            raise _OtherShape("a page tree with a page tree in it")
        if len(own_kids) != pages:
            raise PrintRunBroken(f"a document has {len(own_kids)} pages, not {pages}")
        numbers = {tree_no: pages_no}
        for number in sorted(objects):
            if number not in (root, tree_no, info):
                numbers[number] = next_no
                next_no += 1
        for number in sorted(objects):
            if number in (root, tree_no, info):
                continue
            offsets[numbers[number]] = out.tell()
            out.write(b"%d 0 obj" % numbers[number])
            out.write(_renumbered(objects[number], numbers))
            out.write(b"endobj\n")
        kids += [numbers[k] for k in own_kids]
    offsets[catalog_no] = out.tell()
    out.write(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
    offsets[pages_no] = out.tell()
    listed_kids = b" ".join(b"%d 0 R" % kid for kid in kids)
    out.write(
        b"2 0 obj\n<< /Type /Pages /Count %d /Kids [ %s ] >>\nendobj\n" % (len(kids), listed_kids)
    )
    xref_at = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % next_no)
    for number in range(1, next_no):
        out.write(b"%010d 00000 n \n" % offsets[number])
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (next_no, xref_at))
    return out.getvalue(), len(kids)


def merge_with_pypdf(parts: Sequence[tuple[bytes, int]]) -> tuple[bytes, int]:
    """`merge` by pypdf: any PDF it reads."""
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


async def send_run(run_id: str, *, station: str | None = None) -> PrintAnswer | None:
    """Send the run if this process can take it; the printer's answer once sent, None if
    another process has it, it was sent already, or the printer failed (recorded).
    `station`: the run's, when the caller read it already."""
    station = station or await _station(run_id)
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
    items = PrintRunItem.__table__.c
    license_ids = (
        await session.execute(
            select(items.license_id).where(items.print_run_id == run_id).order_by(items.position)
        )
    ).scalars()
    # every licence of the run moves `print` together (as `apply` would move each)
    outcome = await move_licenses(session, license_ids, "print")
    for row in outcome.refused:
        # revoked while waiting for the printer: the page is printed, the licence is
        # not sent anywhere (its status says revoked)
        log.warning("licence %s printed in run %s: not rendered now", row.id, run_id)


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
    async with reading() as connection:
        return await connection.scalar(select(PrintRun.station).where(PrintRun.id == run_id))


async def _status(run_id: str) -> str | None:
    async with reading() as connection:
        return await connection.scalar(select(PrintRun.status).where(PrintRun.id == run_id))
