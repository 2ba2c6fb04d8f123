"""A stored record always belongs to a stored import, on both dialects.

Migration 0020 replaced the per-row foreign key from reconciliation_external_records to
reconciliation_imports with triggers (a statement-level check on PostgreSQL). These
tests hold them to what the foreign key did: a record of no import is refused, whether
INSERTed, COPYed or moved by an UPDATE; an import that has records cannot be deleted
or change its id; and what is refused leaves nothing behind.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from ledger.models import ReconciliationImport, external_records, imports
from onetrip.clock import utcnow
from onetrip.db import Database

pytestmark = pytest.mark.usefixtures("db")
NO_IMPORT = r"no (such )?import"
HAS_RECORDS = r"has records"


def an_import(import_id: str) -> ReconciliationImport:
    return ReconciliationImport(
        id=import_id,
        source="bank_csv",
        namespace="bank:TEST",
        file_name="statement.csv",
        sha256=None,
        profile=None,
        currency="CNY",
        imported_by="cli:test",
        imported_at=utcnow(),
        lines=0,
        new_records=0,
        duplicates=0,
        totals={},
    )


def a_record(import_id: str, n: int) -> dict[str, Any]:
    return {
        "id": f"rec_test{n:022d}",
        "import_id": import_id,
        "line_no": n + 1,
        "source": "bank_csv",
        "namespace": "bank:TEST",
        "external_id": f"line-{n}",
        "booked_on": date(2026, 11, 2),
        "amount": 5000 + n,
        "currency": "CNY",
        "raw": {"line": n},
    }


async def stored_records(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(external_records)) or 0)


async def store_import_with_records(db: Database, import_id: str, n: int) -> None:
    async with db.session() as session, session.begin():
        session.add(an_import(import_id))
        await session.flush()
        if n:
            rows = [a_record(import_id, i) for i in range(n)]
            await session.execute(insert(external_records), rows)


async def test_records_of_a_stored_import_are_kept(db: Database) -> None:
    await store_import_with_records(db, "imp_kept", 3)
    assert await stored_records(db) == 3


async def test_a_record_of_no_import_is_refused_and_nothing_is_kept(db: Database) -> None:
    await store_import_with_records(db, "imp_kept", 1)
    with pytest.raises(DBAPIError, match=NO_IMPORT):
        async with db.session() as session, session.begin():
            # one statement, one good row and one of an import that does not exist
            await session.execute(
                insert(external_records), [a_record("imp_kept", 1), a_record("imp_missing", 2)]
            )
    assert await stored_records(db) == 1


async def test_a_record_cannot_move_to_no_import(db: Database) -> None:
    await store_import_with_records(db, "imp_kept", 2)
    with pytest.raises(DBAPIError, match=NO_IMPORT):
        async with db.session() as session, session.begin():
            await session.execute(update(external_records).values(import_id="imp_missing"))
    async with db.session() as session:
        held = (await session.scalars(select(external_records.c.import_id).distinct())).all()
    assert held == ["imp_kept"]


async def test_an_import_with_records_cannot_be_deleted_or_renamed(db: Database) -> None:
    await store_import_with_records(db, "imp_kept", 2)
    with pytest.raises(DBAPIError, match=HAS_RECORDS):
        async with db.session() as session, session.begin():
            await session.execute(delete(imports).where(imports.c.id == "imp_kept"))
    with pytest.raises(DBAPIError, match=HAS_RECORDS):
        async with db.session() as session, session.begin():
            await session.execute(update(imports).values(id="imp_renamed"))
    # An import's other columns change as before (an import fills in its counts).
    async with db.session() as session, session.begin():
        await session.execute(update(imports).values(lines=2, new_records=2))
    async with db.session() as session:
        assert (await session.execute(select(imports.c.id, imports.c.lines))).all() == [
            ("imp_kept", 2)
        ]


async def test_an_import_without_records_can_be_deleted(db: Database) -> None:
    await store_import_with_records(db, "imp_empty", 0)
    async with db.session() as session, session.begin():
        await session.execute(delete(imports).where(imports.c.id == "imp_empty"))
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(imports)) == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_copy_is_checked_like_insert(db: Database) -> None:
    """PostgreSQL's importer COPYs its lines: the statement trigger sees those too."""
    await store_import_with_records(db, "imp_kept", 0)
    columns = tuple(a_record("imp_kept", 0))

    async def copy(import_id: str, first: int) -> None:
        async with db.session() as session, session.begin():
            raw = await (await session.connection()).get_raw_connection()
            rows = [
                tuple(
                    json.dumps(value) if name == "raw" else value
                    for name, value in a_record(import_id, n).items()
                )
                for n in range(first, first + 3)
            ]
            await raw.driver_connection.copy_records_to_table(
                "reconciliation_external_records", records=rows, columns=columns
            )

    await copy("imp_kept", 0)
    with pytest.raises(Exception, match=NO_IMPORT):
        await copy("imp_missing", 10)
    assert await stored_records(db) == 3
