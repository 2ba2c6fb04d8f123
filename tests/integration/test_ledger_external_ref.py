"""The external reference on ledger transactions (SQLite and PostgreSQL): posted one at a
time or in a batch, found back by ref (and source), written once like everything in the
ledger, and added by migration 0003 without losing the append-only guards."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger import service as ledger
from ledger.service import (
    BANK,
    STRIPE_CLEARING,
    STRIPE_FEES,
    InvalidPosting,
    Line,
    Posting,
    department_fees_account,
)
from onetrip.db import Database, make_engine, unit_of_work
from onetrip.migrate import upgrade_async
from onetrip.settings import async_database_url

PSB_FEES = department_fees_account("PSB")  # 公安局
AMR_FEES = department_fees_account("AMR")  # 市场监管局
PAYOUT = "po_1QaZ8cL2eZvKYlo2Cc7sHh1N"  # one Stripe payout settles many card payments


async def open_books() -> None:
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, "PSB", "公安局")
        await ledger.open_department_accounts(session, "AMR", "市场监管局")


def card(amount: int, fees: str = PSB_FEES) -> list[Line]:
    return [Line(STRIPE_CLEARING, amount, "CNY"), Line(fees, -amount, "CNY")]


def payout(amount: int) -> list[Line]:
    return [Line(BANK, amount, "CNY"), Line(STRIPE_CLEARING, -amount, "CNY")]


async def post(key: str, lines: list[Line], **kwargs: object) -> ledger.LedgerTransaction:
    async with unit_of_work() as session:
        return await ledger.post_transaction(
            session, idempotency_key=key, description=f"posting {key}", lines=lines, **kwargs
        )


async def by_ref(ref: str, **kwargs: object) -> list[ledger.LedgerTransaction]:
    async with unit_of_work() as session:
        return await ledger.transactions_by_external_ref(session, ref, **kwargs)


async def test_a_posting_with_an_external_ref_is_found_back_by_it(db: Database) -> None:
    await open_books()
    posted = await post(
        "payment:pay_01:succeeded",
        card(12_000),
        external_ref="txn_3QaZ8cL2eZvKYlo21pLk0Ysd",
        external_source="stripe",
    )
    assert (posted.external_ref, posted.external_source) == (
        "txn_3QaZ8cL2eZvKYlo21pLk0Ysd",
        "stripe",
    )
    assert await by_ref("txn_3QaZ8cL2eZvKYlo21pLk0Ysd") == [posted]
    async with unit_of_work() as session:
        assert await ledger.get_transaction(session, posted.id) == posted


async def test_a_posting_without_an_external_ref_has_none_and_is_not_found(
    db: Database,
) -> None:
    await open_books()
    posted = await post("payment:pay_02:succeeded", card(12_000))
    assert (posted.external_ref, posted.external_source) == (None, None)
    async with unit_of_work() as session:
        stored = await ledger.get_transaction(session, posted.id)
    assert (stored.external_ref, stored.external_source) == (None, None)
    assert await by_ref("txn_unknown") == []


async def test_several_transactions_may_reference_one_payout_oldest_first(db: Database) -> None:
    await open_books()
    june_30 = datetime(2025, 6, 30, 9, tzinfo=UTC)
    later = await post(
        "payout:po_1:fee",
        [Line(STRIPE_FEES, 180, "CNY"), Line(STRIPE_CLEARING, -180, "CNY")],
        effective_at=june_30 + timedelta(hours=1),
        external_ref=PAYOUT,
        external_source="stripe",
    )
    earlier = await post(
        "payout:po_1:paid",
        payout(23_820),
        effective_at=june_30,
        external_ref=PAYOUT,
        external_source="stripe",
    )
    await post("payment:pay_03:succeeded", card(12_000), external_ref="txn_other")
    assert [txn.id for txn in await by_ref(PAYOUT)] == [earlier.id, later.id]
    assert [txn.id for txn in await by_ref(PAYOUT, source="stripe")] == [earlier.id, later.id]


async def test_the_source_tells_apart_the_same_ref_from_two_banks(db: Database) -> None:
    # End-to-end ids are chosen by whoever sends the money: two banks can carry the same.
    await open_books()
    icbc = await post(
        "statement:icbc_20250630:1",
        payout(5_000),
        external_ref="E2E-20250630-0001",
        external_source="bank:ICBC",
    )
    boc = await post(
        "statement:boc_20250630:1",
        payout(7_000),
        external_ref="E2E-20250630-0001",
        external_source="bank:BOC",
    )
    assert await by_ref("E2E-20250630-0001", source="bank:ICBC") == [icbc]
    assert await by_ref("E2E-20250630-0001", source="bank:BOC") == [boc]
    assert {txn.id for txn in await by_ref("E2E-20250630-0001")} == {icbc.id, boc.id}
    assert await by_ref("E2E-20250630-0001", source="stripe") == []


async def test_a_batch_carries_each_postings_external_ref(db: Database) -> None:
    # On PostgreSQL this is the raw batch statement's path, not the portable one.
    await open_books()
    async with unit_of_work() as session:
        posted = await ledger.post_transactions(
            session,
            [
                Posting(
                    "payout:po_2:paid",
                    "Stripe payout",
                    payout(30_000),
                    external_ref="po_2",
                    external_source="stripe",
                ),
                Posting("payment:pay_04:succeeded", "网上缴费", card(30_000, AMR_FEES)),
                Posting(
                    "payout:po_2:fee",
                    "Stripe fee",
                    [Line(STRIPE_FEES, 90, "CNY"), Line(STRIPE_CLEARING, -90, "CNY")],
                    external_ref="po_2",
                    external_source="stripe",
                ),
            ],
        )
    assert [(txn.external_ref, txn.external_source) for txn in posted] == [
        ("po_2", "stripe"),
        (None, None),
        ("po_2", "stripe"),
    ]
    found = await by_ref("po_2", source="stripe")
    assert {txn.id: txn for txn in found} == {posted[0].id: posted[0], posted[2].id: posted[2]}


async def test_a_replayed_key_returns_the_first_posting_and_its_ref(db: Database) -> None:
    await open_books()
    first = await post("payment:pay_05:succeeded", card(12_000), external_ref="txn_first")
    again = await post("payment:pay_05:succeeded", card(12_000), external_ref="txn_second")
    assert again == first
    assert again.external_ref == "txn_first"
    assert await by_ref("txn_second") == []


async def test_a_reader_limited_to_departments_sees_only_theirs(db: Database) -> None:
    await open_books()
    psb = await post("payment:pay_06:succeeded", card(12_000), external_ref="po_3")
    amr = await post("payment:pay_07:succeeded", card(5_000, AMR_FEES), external_ref="po_3")
    seen = await by_ref("po_3", scope=["AMR"])
    assert [txn.id for txn in seen] == [amr.id]
    assert [e.account_code for e in seen[0].entries] == [AMR_FEES]
    assert psb.id not in {txn.id for txn in seen}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"external_ref": ""}, "external_ref"),
        ({"external_ref": "x" * 256}, "external_ref"),
        ({"external_source": "stripe"}, "external_source"),
        ({"external_ref": "po_4", "external_source": ""}, "external_source"),
        ({"external_ref": "po_4", "external_source": "s" * 65}, "external_source"),
    ],
)
async def test_an_invalid_external_ref_is_refused(
    db: Database, kwargs: dict[str, str], field: str
) -> None:
    await open_books()
    with pytest.raises(InvalidPosting) as refused:
        await post("payment:pay_08:succeeded", card(12_000), **kwargs)
    assert refused.value.code == "ledger_invalid_external_ref"
    assert [e["field"] for e in refused.value.errors or []] == [field]
    with pytest.raises(InvalidPosting) as in_batch:
        async with unit_of_work() as session:
            await ledger.post_transactions(
                session,
                [
                    Posting("payment:pay_09:succeeded", "ok", card(100)),
                    Posting("payment:pay_10:succeeded", "bad", card(100), **kwargs),
                ],
            )
    assert in_batch.value.code == "ledger_invalid_external_ref"
    assert [e["field"] for e in in_batch.value.errors or []] == [f"postings[1].{field}"]


async def test_an_external_ref_cannot_be_attached_afterwards(db: Database) -> None:
    # Append-only: reconciliation records a later match beside the ledger, not in it.
    await open_books()
    await post("payment:pay_11:succeeded", card(12_000))
    with pytest.raises(DBAPIError, match="append-only"):
        async with unit_of_work() as session:
            await session.execute(text("UPDATE ledger_transactions SET external_ref = 'po_5'"))


# --- migration 0003 on a ledger that already holds transactions ------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no schema at all, of each dialect."""
    if request.param == "sqlite":
        yield async_database_url(f"sqlite:///{tmp_path / 'old.db'}")
        return
    import asyncpg

    from tests.conftest import service_url

    base = async_database_url(service_url("postgres"))
    prefix, _, _ = base.rpartition("/")
    name = f"onetrip_test_0003_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{prefix}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


OLD_POSTING = [
    """INSERT INTO ledger_accounts (id, code, name, department, currency, kind, balance,
       created_at) VALUES ('acct_a', 'platform:bank', 'Bank', NULL, 'CNY', 'asset', 100,
       '2025-06-30 09:00:00+00:00')""",
    """INSERT INTO ledger_accounts (id, code, name, department, currency, kind, balance,
       created_at) VALUES ('acct_b', 'platform:suspense', 'Suspense', NULL, 'CNY',
       'liability', -100, '2025-06-30 09:00:00+00:00')""",
    """INSERT INTO ledger_transactions (id, idempotency_key, description, effective_at,
       recorded_at, metadata, reverses_id) VALUES ('txn_old', 'old:1', 'before 0003',
       '2025-06-30 09:00:00+00:00', '2025-06-30 09:00:00+00:00', '{}', NULL)""",
    """INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, effective_at)
       VALUES ('txn_old', 'acct_a', 100, 'CNY', '2025-06-30 09:00:00+00:00'),
              ('txn_old', 'acct_b', -100, 'CNY', '2025-06-30 09:00:00+00:00')""",
]


async def test_migration_0003_keeps_old_transactions_and_the_append_only_guards(
    empty_url: str,
) -> None:
    await upgrade_async(empty_url, "0002")
    engine = make_engine(empty_url)
    try:
        async with engine.connect() as conn, conn.begin():
            for statement in OLD_POSTING:
                await conn.execute(text(statement))
        await upgrade_async(empty_url, "0003")
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT id, external_ref, external_source FROM ledger_transactions")
                )
            ).one()
        assert tuple(row) == ("txn_old", None, None)
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.connect() as conn, conn.begin():
                await conn.execute(text("UPDATE ledger_transactions SET external_ref = 'po_6'"))
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.connect() as conn, conn.begin():
                await conn.execute(text("DELETE FROM ledger_transactions"))
    finally:
        await engine.dispose()
