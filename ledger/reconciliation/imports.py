"""Storing external lines as records: one import is one transaction, every line once.

(source, namespace, external_id) is unique in the table, so an INSERT … ON CONFLICT DO
NOTHING per batch tells new lines from ones already imported — by an earlier import
(skipped and counted: re-importing a file changes nothing) or by an earlier line of
this same file (refused, naming both lines). Nothing is held per line in memory: the
database remembers which ids this import has written. The caller's unit of work
commits; any refused line raises, and the whole import rolls back with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import ReconciliationImport, external_records, imports
from ledger.reconciliation import camt, csvfiles, stripe_api
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
#: how many in-file duplicates a refusal lists (the count is always exact)
LISTED_DUPLICATES = 50

Progress = Callable[[int], None]


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
    writer = _Writer(session, import_id, source, namespace, progress)
    if isinstance(lines, Iterator):
        # Files are parsed in a worker thread a batch at a time: the event loop keeps
        # serving other requests while a long statement is read.
        while chunk := await asyncio.to_thread(list, itertools.islice(lines, BATCH)):
            for line in chunk:
                await writer.add(line)
    else:
        async for line in lines:  # type: ignore[union-attr]
            await writer.add(line)
    await writer.flush()
    writer.refuse_duplicates()
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


class _Writer:
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
        self.batch: list[dict[str, Any]] = []
        self.lines = 0
        self.new = 0
        self.skipped = 0
        self.totals: dict[str, dict[str, int]] = {}
        self.repeated: list[dict[str, str]] = []
        self.repeated_count = 0

    async def add(self, line: Line) -> None:
        row = line.row()
        row.update(
            id=new_id("rec"),
            import_id=self.import_id,
            source=self.source,
            namespace=self.namespace,
        )
        self.batch.append(row)
        self.lines += 1
        total = self.totals.setdefault(
            line.currency, {"lines": 0, "amount": 0, "new_lines": 0, "new_amount": 0}
        )
        total["lines"] += 1
        total["amount"] += line.amount
        if len(self.batch) >= BATCH:
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
                self.repeated_count += 1
                if len(self.repeated) < LISTED_DUPLICATES:
                    self.repeated.append(
                        {
                            "field": f"line {row['line_no']}",
                            "message": f"repeats line {first_line} ({row['external_id']})",
                        }
                    )
            else:
                self.skipped += 1

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
