"""Storing external lines as records: one import is one transaction, every line once.

(source, namespace, external_id) is unique in the table, so new lines are told from
ones already imported — by an earlier import (skipped and counted: re-importing a file
changes nothing) or by an earlier line of this same file (refused, naming both lines).
Nothing is held per line in memory: lines are parsed and written a batch at a time, and
the database remembers which ids this import has seen. The caller's unit of work
commits; any refused line raises, and the whole import rolls back with it.

Two writers, one behaviour: on PostgreSQL each batch's keys are probed in the unique
index and its new lines streamed with COPY straight into the table (imports of one
source wait for each other, so nothing slips in between), while a thread parses the
lines that follow, so the database's work and Python's overlap; elsewhere each batch is
a multi-row INSERT … ON CONFLICT DO NOTHING (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import queue
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import msgspec
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import ReconciliationImport, external_records, imports
from ledger.reconciliation import camt, csvfiles, stripe_api
from ledger.reconciliation.booking import ID_ALPHABET as _ID_ALPHABET
from ledger.reconciliation.booking import book_stripe_records
from ledger.reconciliation.errors import ImportNotFound, ImportRefused, bad_file
from ledger.reconciliation.lines import Line
from ledger.reconciliation.profiles import get_profile
from onetrip.clock import utcnow
from onetrip.db import insert_ignoring_conflicts
from onetrip.ids import new_id
from onetrip.money import valid_currency
from onetrip.pagination import page

SOURCES = ("stripe_balance", "stripe_payout_recon", "bank_csv", "camt053")
BATCH = 500
#: lines per COPY batch on PostgreSQL: while the database stores one, the next ones are
#: parsed (PARSE_AHEAD batches at most are held in memory). 10,000 rather than 5,000
#: lines a probe and a COPY: a million lines' import 18.8 -> 18.0 s, as many rows held.
COPY_BATCH = 10_000
PARSE_AHEAD = 4
#: new records after which an import refreshes the table's planner statistics
ANALYZE_AFTER = 10_000
#: how many in-file duplicates a refusal lists (the count is always exact)
LISTED_DUPLICATES = 50

Progress = Callable[[int], None]
#: a line's cells as JSON text (compact, UTF-8 as is; ~10× json.dumps)
_encode_json = msgspec.json.Encoder().encode


class HashingReader(io.RawIOBase):
    """A file read once, its sha256 and byte count kept on the way through."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.sha256.update(data)
        self.bytes_read += size
        return size


@dataclass(frozen=True)
class ImportSummary:
    id: str
    source: str
    namespace: str
    file_name: str | None
    sha256: str | None
    profile: str | None
    currency: str | None
    imported_by: str
    imported_at: datetime
    lines: int
    new_records: int
    duplicates: int
    totals: dict[str, Any]


def summary_of(row: ReconciliationImport) -> ImportSummary:
    return ImportSummary(
        id=row.id,
        source=row.source,
        namespace=row.namespace,
        file_name=row.file_name,
        sha256=row.sha256,
        profile=row.profile,
        currency=row.currency,
        imported_by=row.imported_by,
        imported_at=row.imported_at,
        lines=row.lines,
        new_records=row.new_records,
        duplicates=row.duplicates,
        totals=dict(row.totals),
    )


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ImportRefused(
            f"source must be one of {', '.join(SOURCES)}",
            code="import_unknown_source",
            errors=[{"field": "source", "message": f"must be one of {', '.join(SOURCES)}"}],
        )
    return source


def check_currency_code(currency: str | None) -> str | None:
    if currency is None or currency == "":
        return None
    code = currency.strip().upper()
    if not valid_currency(code):
        raise ImportRefused(
            f"currency {currency!r} is not an ISO 4217 code",
            code="validation_failed",
            errors=[{"field": "currency", "message": "must be an ISO 4217 code such as CNY"}],
        )
    return code


async def import_file(
    session: AsyncSession,
    *,
    source: str,
    file: IO[bytes] | None,
    file_name: str | None,
    imported_by: str,
    profile: str | None = None,
    currency: str | None = None,
    progress: Progress | None = None,
    stripe_page_size: int = stripe_api.PAGE_SIZE,
) -> ImportSummary:
    """Import one file (or, for `stripe_balance` without a file, the Stripe API)."""
    check_source(source)
    currency = check_currency_code(currency)
    reader = HashingReader(file) if file is not None else None
    binary = io.BufferedReader(reader, 1 << 16) if reader is not None else None
    lines: Iterable[Line] | AsyncIterator[Line]
    profile_name = None
    if source == "stripe_balance":
        if binary is not None:
            raise bad_file(
                "stripe_balance is read from the Stripe API, not from a file: send no file, "
                "or use stripe_payout_recon for Stripe's itemized payout report",
                code="import_unexpected_file",
            )
        listing = {"limit": stripe_page_size}
        lines, namespace = stripe_api.balance_transactions(currency, listing), "stripe"
    elif binary is None:
        raise bad_file(f"{source} needs a file", code="import_file_required")
    elif source == "stripe_payout_recon":
        lines, namespace = csvfiles.stripe_payout_recon(binary, currency), "stripe"
    elif source == "camt053":
        lines, namespace = camt.camt053(binary, currency), camt.NAMESPACE
    else:
        if not profile:
            raise bad_file(
                "bank_csv needs a mapping profile (profile=NAME)",
                code="import_profile_required",
                field="profile",
            )
        saved = await get_profile(session, profile)
        profile_name = saved.name
        lines, namespace = csvfiles.bank_csv(binary, saved, currency), saved.namespace

    import_id = new_id("imp")
    session.add(
        ReconciliationImport(
            id=import_id,
            source=source,
            namespace=namespace,
            file_name=file_name,
            sha256=None,
            profile=profile_name,
            currency=currency,
            imported_by=imported_by,
            imported_at=utcnow(),
            lines=0,
            new_records=0,
            duplicates=0,
            totals={},
        )
    )
    await session.flush()
    conn = await session.connection()
    writer: _Writer | _CopyWriter
    if conn.dialect.name == "postgresql":
        writer = _CopyWriter(session, import_id, source, namespace, progress)
        await writer.start()
    else:
        writer = _Writer(session, import_id, source, namespace, progress)
    if isinstance(lines, Iterator):
        await _write_parsed(lines, writer)
    else:
        async for line in lines:  # type: ignore[union-attr]
            await writer.add(line)
    await writer.finish()
    writer.refuse_duplicates()
    await book_stripe_records(session, import_id)  # F1: fees, payouts… (booking.py)
    await session.execute(
        update(imports)
        .where(imports.c.id == import_id)
        .values(
            sha256=reader.sha256.hexdigest() if reader is not None else None,
            lines=writer.lines,
            new_records=writer.new,
            duplicates=writer.skipped,
            totals=writer.totals,
        )
    )
    row = await session.get(ReconciliationImport, import_id, populate_existing=True)
    assert row is not None
    return summary_of(row)


async def _write_parsed(lines: Iterator[Line], writer: _Writer) -> None:
    """Files are parsed in a thread of their own, up to PARSE_AHEAD batches ahead of the
    writer — the event loop keeps serving other requests while a long statement is
    read, and while the database stores one batch the next are parsed, so the
    database's work overlaps Python's. The thread also makes each line's row as the
    writer stores it, so the loop only talks to the database (measured: a million
    lines' import 25 → 21–22 s, and 3 s less Python CPU without a coroutine call a
    line). Memory holds those batches at most."""
    chunks: queue.Queue[list[Any] | BaseException | None] = queue.Queue(PARSE_AHEAD)
    stop = threading.Event()

    def put(item: list[Any] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def parse() -> None:
        prepare = writer.prepare
        try:
            while chunk := [prepare(line) for line in itertools.islice(lines, writer.batch_size)]:
                if not put(chunk):
                    return  # the writer stopped (a refusal): nothing more is read
        except BaseException as exc:  # a refused line: raised by the writer's side
            put(exc)
            return
        put(None)

    parser = threading.Thread(target=parse, name="reconciliation-parse", daemon=True)
    parser.start()
    try:
        while True:
            try:
                item = chunks.get_nowait()
            except queue.Empty:
                item = await asyncio.to_thread(chunks.get)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            await writer.add_rows(item)
    finally:
        # The thread cannot be interrupted mid-line: stop it and let it finish before
        # the caller rolls back and closes the file.
        stop.set()
        await asyncio.to_thread(parser.join)


class _Writer:
    """Each batch one multi-row INSERT … ON CONFLICT DO NOTHING (any dialect)."""

    batch_size = BATCH

    def __init__(
        self,
        session: AsyncSession,
        import_id: str,
        source: str,
        namespace: str,
        progress: Progress | None,
    ) -> None:
        self.session = session
        self.import_id = import_id
        self.source = source
        self.namespace = namespace
        self.progress = progress
        self.batch: list[Any] = []
        self.lines = 0
        self.new = 0
        self.skipped = 0
        self.totals: dict[str, dict[str, int]] = {}
        self.repeated: list[dict[str, str]] = []
        self.repeated_count = 0

    def prepare(self, line: Line) -> Any:
        """A line as this writer stores it (for a file, made in the parse thread)."""
        row = line.row()
        row.update(
            id=new_id("rec"),
            import_id=self.import_id,
            source=self.source,
            namespace=self.namespace,
        )
        return row

    async def add(self, line: Line) -> None:
        await self.add_rows([self.prepare(line)])

    async def add_rows(self, rows: list[Any]) -> None:
        """Prepared rows, counted, and written once a batch is full."""
        totals = self.totals
        for row in rows:
            currency, amount = self._money(row)
            total = totals.get(currency)
            if total is None:
                total = totals[currency] = {
                    "lines": 0,
                    "amount": 0,
                    "new_lines": 0,
                    "new_amount": 0,
                }
            total["lines"] += 1
            total["amount"] += amount
        self.lines += len(rows)
        self.batch.extend(rows)
        if len(self.batch) >= self.batch_size:
            await self.flush()

    @staticmethod
    def _money(row: Any) -> tuple[str, int]:
        return row["currency"], row["amount"]

    async def finish(self) -> None:
        await self.flush()

    async def flush(self) -> None:
        batch, self.batch = self.batch, []
        if not batch:
            return
        # One statement compiled once (and cached), its rows sent as executemany: the
        # dialect packs them into multi-row INSERTs ("insertmanyvalues") with RETURNING.
        statement = insert_ignoring_conflicts(
            self.session, external_records, ["source", "namespace", "external_id"]
        ).returning(external_records.c.id)
        written = set((await self.session.execute(statement, batch)).scalars())
        others = [row for row in batch if row["id"] not in written]
        for row in batch:
            if row["id"] in written:
                self.new += 1
                total = self.totals[row["currency"]]
                total["new_lines"] += 1
                total["new_amount"] += row["amount"]
        if others:
            await self._sort_out(others)
        if self.progress is not None:
            self.progress(len(batch))

    async def _sort_out(self, rows: list[dict[str, Any]]) -> None:
        """Lines not written: imported before (skip), or earlier in this file (refuse)."""
        keys = {row["external_id"] for row in rows}
        found = await self.session.execute(
            select(
                external_records.c.external_id,
                external_records.c.import_id,
                external_records.c.line_no,
            ).where(
                external_records.c.source == self.source,
                external_records.c.namespace == self.namespace,
                external_records.c.external_id.in_(keys),
            )
        )
        existing = {external_id: (import_id, line_no) for external_id, import_id, line_no in found}
        for row in rows:
            import_id, first_line = existing[row["external_id"]]
            if import_id == self.import_id:
                self.repeat(row["line_no"], first_line, row["external_id"])
            else:
                self.skipped += 1

    def repeat(self, later: int, first: int, external_id: str) -> None:
        """Line `later` repeats line `first` of this file: counted, the first few listed."""
        self.repeated_count += 1
        if len(self.repeated) < LISTED_DUPLICATES:
            self.repeated.append(
                {"field": f"line {later}", "message": f"repeats line {first} ({external_id})"}
            )

    def refuse_duplicates(self) -> None:
        if not self.repeated_count:
            return
        first = self.repeated[0]
        raise ImportRefused(
            f"{self.repeated_count} line(s) repeat an earlier line of the file "
            f"({first['field']} {first['message']}); nothing was imported",
            code="import_duplicate_lines",
            errors=self.repeated,
        )


_COPY_COLUMNS = (
    "id",
    "import_id",
    "line_no",
    "source",
    "namespace",
    "external_id",
    "booked_on",
    "value_on",
    "amount",
    "fee",
    "net",
    "currency",
    "counterparty",
    "reference",
    "end_to_end_id",
    "payout_id",
    "payment_id",
    "source_id",
    "category",
    "created_at",
    "raw",
)


#: 15 bits as three Crockford base32 characters (onetrip.ids' alphabet)
_BASE32_3 = tuple(
    _ID_ALPHABET[i >> 10] + _ID_ALPHABET[(i >> 5) & 31] + _ID_ALPHABET[i & 31]
    for i in range(1 << 15)
)
_ID_COUNT_BITS = 30
#: ids made from one fresh head before the next (far below the 2**29 counted from)
_IDS_PER_HEAD = 100_000


def record_ids() -> Iterator[str]:
    """`rec_…` ids for a bulk import, as `new_id` makes them (the prefix, its time, and
    randomness) but ~20× cheaper a line: a fresh head of time and ten random characters
    per 100,000 ids, and the last six characters counted up from a random base (as
    ledger.reconciliation.booking makes the ids of its postings)."""
    while True:
        noise = secrets.randbits(50)
        head = f"rec_{new_id('rec')[4:14]}" + "".join(
            _ID_ALPHABET[(noise >> shift) & 31] for shift in range(45, -1, -5)
        )
        base = secrets.randbits(_ID_COUNT_BITS - 1)
        for value in range(base, base + _IDS_PER_HEAD):
            yield head + _BASE32_3[value >> 15] + _BASE32_3[value & 0x7FFF]


class _CopyWriter(_Writer):
    """PostgreSQL: each batch's keys looked up in one indexed probe, and the lines not
    stored before streamed with COPY straight into the records table — no staging table,
    no second copy of each line, no speculative insertion. Imports of one source and
    namespace wait for each other (a transaction-level advisory lock), so no other import
    stores one of those keys between a probe and its COPY; the unique constraint stays the
    last word. A refused file (in-file repeats) writes nothing: the caller's transaction
    rolls back every batch stored before."""

    batch_size = COPY_BATCH

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ids = record_ids()

    async def _driver(self) -> Any:
        conn = await self.session.connection()
        raw = await conn.get_raw_connection()
        return raw.driver_connection

    async def start(self) -> None:
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"onetrip.reconciliation_import:{self.source}:{self.namespace}"},
        )

    def prepare(self, line: Line) -> tuple[Any, ...]:
        return (
            next(self.ids),
            self.import_id,
            line.line_no,
            self.source,
            self.namespace,
            line.external_id,
            line.booked_on,
            line.value_on,
            line.amount,
            line.fee,
            line.net,
            line.currency,
            line.counterparty,
            line.reference,
            line.end_to_end_id,
            line.payout_id,
            line.payment_id,
            line.source_id,
            line.category,
            line.created_at,
            _encode_json(line.raw).decode(),
        )

    @staticmethod
    def _money(row: Any) -> tuple[str, int]:
        return row[_CURRENCY], row[_AMOUNT]

    async def flush(self) -> None:
        rows, self.batch = self.batch, []
        if not rows:
            return
        driver = await self._driver()
        held = {
            record["external_id"]: (record["import_id"], record["line_no"])
            for record in await driver.fetch(
                _HELD_SQL, self.source, self.namespace, [row[_EXTERNAL_ID] for row in rows]
            )
        }
        new: list[tuple[Any, ...]] = []
        first_here: dict[str, int] = {}  # this batch's new keys: their line
        for row in rows:
            key = row[_EXTERNAL_ID]
            holder = held.get(key)
            if holder is None:
                first = first_here.get(key)
                if first is None:
                    first_here[key] = row[_LINE_NO]
                    new.append(row)
                    continue
                holder = (self.import_id, first)
            if holder[0] != self.import_id:
                self.skipped += 1  # an earlier import holds the line
            else:
                self.repeat(row[_LINE_NO], holder[1], key)
        if new:
            await driver.copy_records_to_table(_RECORDS, records=new, columns=_COPY_COLUMNS)
            if self.new < ANALYZE_AFTER <= self.new + len(new):  # once, on crossing it
                # Planned with statistics that do not know this source's lines (an
                # empty table, or one of bank lines), a probe reads every line of the
                # source and filters (measured: 18 s a probe half-way through a million
                # lines) instead of looking the keys up in the unique index.
                await driver.execute(f"ANALYZE {_RECORDS}")
            self.new += len(new)
            for row in new:
                total = self.totals[row[_CURRENCY]]
                total["new_lines"] += 1
                total["new_amount"] += row[_AMOUNT]
        if self.progress is not None:
            self.progress(len(rows))

    async def finish(self) -> None:
        await self.flush()
        if self.new >= ANALYZE_AFTER:
            # Fresh statistics before anything reads them (the booking below, in this
            # transaction, and the next reconciliation run): planned with the counts of
            # an emptier table, their joins degrade to a scan per record (measured:
            # 20,000 records took minutes). ANALYZE sees this transaction's own rows.
            await self.session.execute(text(f"ANALYZE {_RECORDS}"))


_RECORDS = "reconciliation_external_records"
#: the stored records among a batch's keys (the unique index's probe), and who holds them
_HELD_SQL = """
SELECT external_id, import_id, line_no FROM reconciliation_external_records
 WHERE source = $1 AND namespace = $2 AND external_id = ANY($3::varchar[])
"""
_LINE_NO, _EXTERNAL_ID, _AMOUNT, _CURRENCY = (
    _COPY_COLUMNS.index(name) for name in ("line_no", "external_id", "amount", "currency")
)


async def list_imports(
    session: AsyncSession, *, cursor: str | None, limit: int | None
) -> list[ImportSummary]:
    stmt = page(select(ReconciliationImport), ReconciliationImport.id, cursor, limit, prefix="imp")
    return [summary_of(row) for row in (await session.scalars(stmt)).all()]


async def get_import(session: AsyncSession, import_id: str) -> ImportSummary:
    row = await session.get(ReconciliationImport, import_id)
    if row is None:
        raise ImportNotFound(f"no import {import_id}")
    return summary_of(row)
