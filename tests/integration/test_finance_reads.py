"""Finance reads at scale (issue 10): the trial balance from cached totals and daily
snapshots is exactly the sum of the entries, whatever the snapshots' state; back-dated
postings invalidate the snapshots they would change; the payments list reads pages
through indexes in its cursor order."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import case, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from ledger import service as ledger
from ledger import snapshots
from ledger.jobs import take_balance_snapshots
from ledger.models import accounts, balance_snapshots, entries, snapshot_invalidations
from ledger.service import STRIPE_CLEARING, STRIPE_FEES, Line, department_fees_account
from onetrip.auth import Principal
from onetrip.db import Database, unit_of_work
from onetrip.ids import new_id
from payments.models import Payment
from payments.queries import list_payments

PSB = "PSB"
AMR = "AMR"
PSB_FEES = department_fees_account(PSB)
AMR_FEES = department_fees_account(AMR)

on_postgres = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def days_ago(days: int, hour: int = 0, minute: int = 0, microsecond: int = 0) -> datetime:
    """A moment `days` UTC midnights back from the real now (the database's clock)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        today
        - timedelta(days=days)
        + timedelta(hours=hour, minutes=minute)
        + timedelta(microseconds=microsecond)
    )


def horizon() -> datetime:
    """The last cut-off due now: a quarter of an hour at least LATE_MARGIN ago."""
    return snapshots.cut_off_before(datetime.now(UTC) - snapshots.LATE_MARGIN)


def cut_offs_between(first: datetime, last: datetime) -> list[datetime]:
    count = int((last - first) / snapshots.EVERY) + 1
    return [first + n * snapshots.EVERY for n in range(count)]


def assert_every_cut_off(
    written: list[datetime], first: datetime, horizon_before: datetime
) -> None:
    """Every cut-off from `first` to the horizon (which may pass a cut-off meanwhile)."""
    assert written[-1] in (horizon_before, horizon()), written[-1]
    assert written == cut_offs_between(first, written[-1])


async def open_books() -> None:
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, PSB, "公安局")
        await ledger.open_department_accounts(session, AMR, "市场监管局")


async def post(key: str, amount: int, effective_at: datetime, fees: str = PSB_FEES) -> None:
    async with unit_of_work() as session:
        await ledger.post_transaction(
            session,
            idempotency_key=key,
            description=f"posting {key}",
            lines=[
                Line(STRIPE_CLEARING, amount, "CNY"),
                Line(fees, -amount + 60, "CNY"),
                Line(STRIPE_FEES, -60, "CNY"),
            ],
            effective_at=effective_at,
        )


async def post_refund(key: str, amount: int, effective_at: datetime) -> None:
    async with unit_of_work() as session:
        await ledger.post_transaction(
            session,
            idempotency_key=key,
            description=f"refund {key}",
            lines=[Line(PSB_FEES, amount, "CNY"), Line(STRIPE_CLEARING, -amount, "CNY")],
            effective_at=effective_at,
        )


async def summed_entries(as_of: datetime) -> dict[str, tuple[int, int]]:
    """The reference: every entry up to as_of, summed here, per account id."""
    async with unit_of_work() as session:
        rows = await session.execute(
            select(
                entries.c.account_id,
                func.sum(case((entries.c.amount > 0, entries.c.amount), else_=0)),
                func.sum(case((entries.c.amount < 0, -entries.c.amount), else_=0)),
            )
            .where(entries.c.effective_at <= as_of)
            .group_by(entries.c.account_id)
        )
        return {account_id: (int(d), int(c)) for account_id, d, c in rows}


async def reported(as_of: datetime) -> dict[str, tuple[int, int]]:
    async with unit_of_work() as session:
        report = await ledger.trial_balance(session, as_of=as_of)
    assert report.total_debits == report.total_credits
    return {line.account_id: (line.debits, line.credits) for line in report.lines}


async def base_cut_off(as_of: datetime) -> datetime | None:
    async with unit_of_work() as session:
        return await snapshots.latest_valid_cut_off(session, as_of)


async def take_all() -> list[datetime]:
    return [cut for run in await snapshots.bring_up_to_date() for cut in run.written]


def moments() -> list[datetime]:
    """as_of values around and between the postings and the cut-offs."""
    found = [days_ago(7), days_ago(6, 12)]
    for day in (5, 3, 1, 0):
        found += [
            days_ago(day),
            days_ago(day) - timedelta(microseconds=1),
            days_ago(day, 3),
            days_ago(day, 15, 30),
        ]
    now = datetime.now(UTC)
    return [*found, now, now + timedelta(days=2)]


async def a_week_of_postings() -> None:
    n = 0
    for day in range(6, 0, -1):
        for hour, amount in ((0, 12_000), (9, 8_000), (23, 20_000)):
            n += 1
            fees = AMR_FEES if n % 3 == 0 else PSB_FEES
            # one posting exactly at midnight, one a microsecond before the next
            moment = days_ago(day, hour) if hour != 23 else days_ago(day - 1, 0, 0, -1)
            await post(f"p{n}", amount + n, moment, fees)
        await post_refund(f"r{day}", 1_000 + day, days_ago(day, 14))
    await post("today", 5_000, datetime.now(UTC) - timedelta(minutes=1))


async def test_the_trial_balance_equals_the_sum_of_entries_with_and_without_snapshots(
    db: Database,
) -> None:
    await open_books()
    await a_week_of_postings()
    for as_of in moments():  # no snapshot yet: cached totals or summed entries
        assert await reported(as_of) == await summed_entries(as_of), as_of

    due = horizon()
    written = await take_all()
    assert_every_cut_off(written, days_ago(6, 0, 15), due)
    assert await take_all() == []  # nothing new is due
    for as_of in moments():
        assert await reported(as_of) == await summed_entries(as_of), as_of
    # the snapshots are what the past is read from
    assert await base_cut_off(days_ago(3, 15, 40)) == days_ago(3, 15, 30)
    assert await base_cut_off(days_ago(3) - timedelta(microseconds=1)) == days_ago(4, 23, 45)


async def test_a_back_dated_posting_invalidates_later_snapshots_until_they_are_rebuilt(
    db: Database,
) -> None:
    await open_books()
    await a_week_of_postings()
    await take_all()

    await post("late", 7_777, days_ago(3, 10))  # a Stripe fee booked days later
    async with unit_of_work() as session:
        invalidated = await session.scalar(select(func.min(snapshot_invalidations.c.earliest)))
    assert invalidated == days_ago(3, 10)
    # snapshots after it are stale: read past them, from the last valid one (its own
    # hour's cut-off covers only what came before it)
    assert await base_cut_off(days_ago(1, 12)) == days_ago(3, 10)
    for as_of in moments():
        assert await reported(as_of) == await summed_entries(as_of), as_of

    due = horizon()
    runs = await snapshots.bring_up_to_date()
    rebuilt = [cut for run in runs for cut in run.written]
    assert_every_cut_off(rebuilt, days_ago(3, 10, 15), due)
    assert (runs[0].invalidated_from, runs[0].removed) == (days_ago(3, 10), len(rebuilt))
    assert await base_cut_off(days_ago(1, 12)) == days_ago(1, 12)
    for as_of in moments():
        assert await reported(as_of) == await summed_entries(as_of), as_of
    async with unit_of_work() as session:
        assert await session.scalar(select(func.count()).select_from(snapshot_invalidations)) == 0


async def test_postings_on_time_leave_the_snapshots_valid(db: Database) -> None:
    await open_books()
    await a_week_of_postings()
    due = horizon()
    await take_all()
    await post("now", 3_000, datetime.now(UTC))
    async with unit_of_work() as session:
        assert await session.scalar(select(func.count()).select_from(snapshot_invalidations)) == 0
        cut_offs = await session.scalar(
            select(func.count(func.distinct(balance_snapshots.c.cut_off)))
        )
    assert cut_offs in (
        len(cut_offs_between(days_ago(6, 0, 15), horizon())),
        len(cut_offs_between(days_ago(6, 0, 15), due)),
    )


async def test_cached_debits_and_credits_follow_every_way_of_posting(db: Database) -> None:
    await open_books()
    await a_week_of_postings()
    async with unit_of_work() as session:
        await ledger.post_transactions(
            session,
            [
                ledger.Posting(
                    idempotency_key=f"batch{i}",
                    description="batch",
                    lines=[Line(STRIPE_CLEARING, 100 + i, "CNY"), Line(AMR_FEES, -100 - i, "CNY")],
                )
                for i in range(5)
            ],
        )
        txn = await ledger.transaction_for_key(session, "p1")
        await ledger.reverse_transaction(
            session, txn.id, idempotency_key="undo-p1", description="reverse"
        )
    reference = await summed_entries(datetime.now(UTC) + timedelta(days=1))
    async with unit_of_work() as session:
        cached = {
            row.id: (row.debits, row.credits)
            for row in await session.execute(
                select(accounts.c.id, accounts.c.debits, accounts.c.credits)
            )
            if row.debits or row.credits
        }
    assert cached == reference


async def test_a_scoped_trial_balance_from_snapshots_still_balances(db: Database) -> None:
    await open_books()
    await a_week_of_postings()
    await take_all()
    async with unit_of_work() as session:
        scoped = await ledger.trial_balance(session, as_of=days_ago(2, 12), scope=[AMR])
        full = await ledger.trial_balance(session, as_of=days_ago(2, 12))
    assert scoped.total_debits == scoped.total_credits == full.total_debits
    assert {line.department for line in scoped.lines} == {AMR, None}


async def test_the_periodic_job_brings_the_snapshots_up_to_date(db: Database) -> None:
    await open_books()
    await a_week_of_postings()
    due = horizon()
    await take_balance_snapshots.fn.__wrapped__()  # type: ignore[attr-defined]
    async with unit_of_work() as session:
        cut_offs = (
            (await session.execute(select(balance_snapshots.c.cut_off).distinct())).scalars().all()
        )
    assert_every_cut_off(sorted(cut_offs), days_ago(6, 0, 15), due)


@on_postgres
async def test_the_snapshot_job_waits_for_a_back_dated_posting_in_flight(db: Database) -> None:
    await open_books()
    await a_week_of_postings()
    await take_all()
    async with db.session() as writer, writer.begin():
        await ledger.post_transaction(
            writer,
            idempotency_key="in-flight",
            description="back-dated, not committed yet",
            lines=[Line(STRIPE_CLEARING, 4_321, "CNY"), Line(PSB_FEES, -4_321, "CNY")],
            effective_at=days_ago(2, 8),
        )
        with pytest.raises(DBAPIError, match="lock"):
            async with unit_of_work() as session:
                await session.execute(text("SET LOCAL lock_timeout = '200ms'"))
                await snapshots.take_snapshots(session)
    # committed now: its invalidation is there for the job and for readers
    assert await base_cut_off(days_ago(0, 12)) == days_ago(2, 8)
    for as_of in (days_ago(1), days_ago(2, 9), days_ago(0, 1)):
        assert await reported(as_of) == await summed_entries(as_of)
    due = horizon()
    runs = await snapshots.bring_up_to_date()
    assert_every_cut_off([cut for run in runs for cut in run.written], days_ago(2, 8, 15), due)


@on_postgres
async def test_concurrent_postings_and_snapshot_runs_stay_exact(db: Database) -> None:
    await open_books()
    await a_week_of_postings()

    async def writer(n: int) -> None:
        for i in range(15):
            moment = days_ago(i % 5, 6) if i % 3 == 0 else datetime.now(UTC)
            await post(f"w{n}-{i}", 1_000 + i, moment, PSB_FEES if n % 2 else AMR_FEES)

    async def snapshotter() -> None:
        for _ in range(4):
            await take_all()
            await asyncio.sleep(0.01)

    await asyncio.gather(writer(1), writer(2), snapshotter())
    for as_of in moments():
        assert await reported(as_of) == await summed_entries(as_of), as_of
    await take_all()
    for as_of in moments():
        assert await reported(as_of) == await summed_entries(as_of), as_of


# --- the payments list: indexes in the cursor's order ---------------------------------


async def _list_plan(db: Database, principal: Principal, **filters: Any) -> tuple[Any, list]:
    """The plan PostgreSQL picks for the payments list's own statement (captured as it
    is sent), with sequential scans priced out as on a large table; and the page."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM payments" in statement:
            sent.append((statement, params))

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        async with unit_of_work() as session:
            page = await list_payments(
                session,
                principal,
                status=filters.get("status"),
                reference=filters.get("reference"),
                created_from=None,
                created_to=None,
                limit=filters.get("limit", 50),
                cursor=filters.get("cursor"),
            )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    ((statement, params),) = sent
    async with db.session() as session:
        conn = await session.connection()
        await conn.exec_driver_sql("SET enable_seqscan = off")
        explained = await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params)
        plan = explained.scalar_one()
        plan = json.loads(plan)[0]["Plan"] if isinstance(plan, str) else plan[0]["Plan"]
    return plan, page["data"]


def _department(i: int) -> str:
    return "PSB" if i % 10 == 0 else "AMR" if i % 10 == 1 else "TAX"


def _status(i: int) -> str:
    return "succeeded" if i % 50 < 2 else "pending"


async def _payments(count: int) -> list[str]:
    """Payments oldest first (time-ordered ids): most of a third department's and
    pending, so that a page of the others is worth an index, as at scale."""
    rows = []
    now = datetime.now(UTC)
    for i in range(count):
        rows.append(
            {
                "id": new_id("pay"),
                "token": new_id("tok"),
                "department": _department(i),
                "matter_code": "passport",
                "matter_name": "护照",
                "reference": f"ref-{i % 50}",
                "quantity": 1,
                "unit_amount": 12_000,
                "amount": 12_000,
                "currency": "CNY",
                "fee_split": [],
                "status": _status(i),
                "applicant": {},
                "delivery": {},
                "return_url": "https://example.gov.cn/",
                "created_at": now,
                "updated_at": now,
                "expires_at": now + timedelta(hours=1),
            }
        )
    async with unit_of_work() as session:
        await session.execute(insert(Payment.__table__), rows)
    return [row["id"] for row in rows]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", ()) for node in _nodes(child))]


def _indexes_scanned(plan: dict[str, Any]) -> set[str]:
    return {node["Index Name"] for node in _nodes(plan) if "Index Name" in node}


def _unbounded_sorts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Sort nodes whose input is not cut to a page by a Limit below them."""
    return [
        node
        for node in _nodes(plan)
        if node["Node Type"] == "Sort"
        and not any(below["Node Type"] == "Limit" for below in _nodes(node)[1:])
    ]


ADMIN = Principal(key_id="key_admin", role="admin")
FINANCE_TWO = Principal(key_id="key_fin", role="finance", departments=("AMR", "PSB"))
DEPARTMENT = Principal(key_id="key_dep", role="department", departments=("PSB",))


@on_postgres
@pytest.mark.parametrize(
    ("principal", "filters", "index"),
    [
        (ADMIN, {"status": "succeeded"}, "ix_payments_status_id"),
        (DEPARTMENT, {"status": "succeeded"}, "ix_payments_department_status_id"),
        (FINANCE_TWO, {"status": "succeeded"}, "ix_payments_department_status_id"),
        (ADMIN, {"reference": "ref-3"}, "ix_payments_reference_id"),
        (DEPARTMENT, {}, "ix_payments_department_id"),
        (FINANCE_TWO, {}, "ix_payments_department_id"),
    ],
)
async def test_a_payments_page_reads_an_index_in_the_cursor_order(
    db: Database, principal: Principal, filters: dict[str, Any], index: str
) -> None:
    ids = await _payments(2000)
    async with unit_of_work() as session:
        await session.execute(text("ANALYZE payments"))
    plan, first = await _list_plan(db, principal, limit=5, **filters)
    assert index in _indexes_scanned(plan), plan
    # newest first straight from the index: no sort of every matching payment (a key of
    # several departments sorts only the few rows of one short page per department)
    assert _unbounded_sorts(plan) == [], plan

    def visible(payment_id: str) -> bool:
        i = ids.index(payment_id)
        return (
            principal.sees_department(_department(i))
            and (filters.get("status") is None or filters["status"] == _status(i))
            and (filters.get("reference") is None or filters["reference"] == f"ref-{i % 50}")
        )

    expected = [payment_id for payment_id in reversed(ids) if visible(payment_id)]
    pages: list[str] = [view.id for view in first]
    cursor = pages[-1]
    while True:
        async with unit_of_work() as session:
            more = (
                await list_payments(
                    session,
                    principal,
                    status=filters.get("status"),
                    reference=filters.get("reference"),
                    created_from=None,
                    created_to=None,
                    limit=200,
                    cursor=cursor,
                )
            )["data"]
        if not more:
            break
        pages += [view.id for view in more]
        cursor = pages[-1]
    assert pages == expected
