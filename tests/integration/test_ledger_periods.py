"""Closed periods (issue 10): closing a department's month or day refuses postings
effective inside it, on every posting path; corrections post in the open period with
`corrects_id`; cut-offs are the department's own midnights; the HTTP API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ledger import periods
from ledger import service as ledger
from ledger.models import transactions
from ledger.periods import PeriodClosed
from ledger.service import (
    STRIPE_CLEARING,
    STRIPE_FEES,
    Line,
    Posting,
    department_fees_account,
)
from onetrip.db import Database, unit_of_work
from onetrip.errors import Conflict, ValidationFailed
from tests.factories import auth, make_key

OPENAPI_CONFORMANCE = True

PSB_FEES = department_fees_account("PSB")
AMR_FEES = department_fees_account("AMR")

# October 2026 in Asia/Shanghai (UTC+8): 2026-09-30T16:00Z .. 2026-10-31T16:00Z.
OCT_START = datetime(2026, 9, 30, 16, tzinfo=UTC)
OCT_END = datetime(2026, 10, 31, 16, tzinfo=UTC)
TICK = timedelta(microseconds=1)


async def open_books() -> None:
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, "PSB", "公安局")
        await ledger.open_department_accounts(session, "AMR", "市场监管局")


async def close(department: str, period: str, who: str = "cli:test") -> periods.ClosedPeriod:
    async with unit_of_work() as session:
        closed, _ = await periods.close_period(
            session, department=department, period=period, closed_by=who
        )
    return closed


def card(key: str, amount: int, at: datetime | None, fees: str = PSB_FEES) -> Posting:
    return Posting(
        idempotency_key=key,
        description=f"网上缴费 {key}",
        lines=[Line(STRIPE_CLEARING, amount, "CNY"), Line(fees, -amount, "CNY")],
        effective_at=at,
    )


async def post(posting: Posting, **extra: Any) -> ledger.LedgerTransaction:
    async with unit_of_work() as session:
        return await ledger.post_transaction(
            session,
            idempotency_key=posting.idempotency_key,
            description=posting.description,
            lines=list(posting.lines),
            effective_at=posting.effective_at,
            **extra,
        )


async def count_transactions() -> int:
    async with unit_of_work() as session:
        return len((await session.execute(select(transactions.c.id))).all())


async def balance(code: str) -> int:
    async with unit_of_work() as session:
        return (await ledger.get_account_by_code(session, code)).balance


async def test_a_closed_month_refuses_postings_inside_it_in_the_departments_timezone(
    db: Database,
) -> None:
    await open_books()
    closed = await close("PSB", "2026-10")
    assert (closed.kind, closed.timezone) == ("month", "Asia/Shanghai")
    assert (closed.starts_at, closed.ends_at) == (OCT_START, OCT_END)
    before = await count_transactions()
    for n, moment in enumerate((OCT_START, OCT_END - TICK, datetime(2026, 10, 15, tzinfo=UTC))):
        with pytest.raises(PeriodClosed) as refused:
            await post(card(f"inside-{n}", 100, moment))
        assert refused.value.status == 409 and refused.value.code == "period_closed"
        assert "2026-10" in refused.value.detail
    assert await count_transactions() == before
    assert await balance(PSB_FEES) == 0
    # Midnight Shanghai on either side is open: the last instant of September, the first
    # of November.
    await post(card("september", 100, OCT_START - TICK))
    await post(card("november", 200, OCT_END))
    assert await balance(PSB_FEES) == -300


async def test_cut_offs_are_the_departments_own_midnights(db: Database) -> None:
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, "TKO", "东京办事处", timezone="Asia/Tokyo")
    closed = await close("TKO", "2026-10")
    assert closed.timezone == "Asia/Tokyo"
    assert (closed.starts_at, closed.ends_at) == (
        datetime(2026, 9, 30, 15, tzinfo=UTC),
        datetime(2026, 10, 31, 15, tzinfo=UTC),
    )
    tko = department_fees_account("TKO")
    with pytest.raises(PeriodClosed):
        await post(card("tokyo-last-instant", 100, closed.ends_at - TICK, fees=tko))
    # 23:30 on 31 October in Shanghai is already 1 November in Tokyo: open.
    await post(card("tokyo-november", 100, datetime(2026, 10, 31, 15, 30, tzinfo=UTC), fees=tko))


async def test_a_closed_day_refuses_only_that_day(db: Database) -> None:
    await open_books()
    closed = await close("PSB", "2026-10-07")
    assert closed.kind == "day"
    assert closed.starts_at == datetime(2026, 10, 6, 16, tzinfo=UTC)
    with pytest.raises(PeriodClosed):
        await post(card("day-inside", 100, datetime(2026, 10, 7, 3, tzinfo=UTC)))
    await post(card("day-after", 100, datetime(2026, 10, 7, 16, tzinfo=UTC)))
    await post(card("day-before", 100, datetime(2026, 10, 6, 15, 59, tzinfo=UTC)))


async def test_any_department_touched_being_closed_refuses_the_posting(db: Database) -> None:
    await open_books()
    await close("PSB", "2026-10")
    inside = datetime(2026, 10, 20, tzinfo=UTC)
    joint = [
        Line(STRIPE_CLEARING, 10_000, "CNY"),
        Line(PSB_FEES, -3_000, "CNY"),
        Line(AMR_FEES, -7_000, "CNY"),
    ]
    with pytest.raises(PeriodClosed):
        async with unit_of_work() as session:
            await ledger.post_transaction(
                session, idempotency_key="joint", description="联办", lines=joint,
                effective_at=inside,
            )  # fmt: skip
    # AMR is open, and platform accounts belong to no department.
    await post(card("amr-only", 500, inside, fees=AMR_FEES))
    async with unit_of_work() as session:
        await ledger.post_transaction(
            session,
            idempotency_key="fee",
            description="Stripe fee",
            lines=[Line(STRIPE_FEES, 30, "CNY"), Line(STRIPE_CLEARING, -30, "CNY")],
            effective_at=inside,
        )
    assert await balance(AMR_FEES) == -500


async def test_a_batch_with_one_posting_in_a_closed_period_writes_nothing(db: Database) -> None:
    await open_books()
    await close("PSB", "2026-10")
    before = await count_transactions()
    batch = [
        card("batch-open", 100, OCT_END + timedelta(days=1)),
        card("batch-closed", 100, OCT_END - timedelta(days=1)),
    ]
    with pytest.raises(PeriodClosed):
        async with unit_of_work() as session:
            await ledger.post_transactions(session, batch)
    assert await count_transactions() == before
    assert await balance(PSB_FEES) == 0


async def test_a_replay_of_a_posting_made_before_the_close_is_not_refused(db: Database) -> None:
    await open_books()
    inside = datetime(2026, 10, 3, tzinfo=UTC)
    first = await post(card("before-close", 700, inside))
    async with unit_of_work() as session:
        [batched] = await ledger.post_transactions(session, [card("batched", 50, inside)])
    await close("PSB", "2026-10")
    assert (await post(card("before-close", 700, inside))).id == first.id
    async with unit_of_work() as session:
        again = await ledger.post_transactions(
            session, [card("batched", 50, inside), card("before-close", 700, inside)]
        )
    assert [t.id for t in again] == [batched.id, first.id]
    assert await balance(PSB_FEES) == -750


async def test_a_correction_posts_in_the_open_period_and_links_what_it_corrects(
    db: Database,
) -> None:
    await open_books()
    wrong = await post(card("overbooked", 1_000, datetime(2026, 10, 9, tzinfo=UTC)))
    await close("PSB", "2026-10")
    with pytest.raises(PeriodClosed):
        async with unit_of_work() as session:
            await ledger.reverse_transaction(  # a reversal posts now: open…
                session, wrong.id, idempotency_key="undo", description="撤销"
            )
            # …but anything dated back into October is refused.
            await ledger.post_transaction(
                session,
                idempotency_key="backdated",
                description="补记",
                lines=[Line(PSB_FEES, 100, "CNY"), Line(STRIPE_CLEARING, -100, "CNY")],
                effective_at=datetime(2026, 10, 9, tzinfo=UTC),
                corrects_id=wrong.id,
            )
    async with unit_of_work() as session:
        correction = await ledger.post_transaction(
            session,
            idempotency_key="correction",
            description="更正 多记 100",
            lines=[Line(PSB_FEES, 100, "CNY"), Line(STRIPE_CLEARING, -100, "CNY")],
            corrects_id=wrong.id,
        )
        [batched] = await ledger.post_transactions(
            session,
            [
                Posting(
                    idempotency_key="correction-2",
                    description="更正 2",
                    lines=[Line(PSB_FEES, 1, "CNY"), Line(STRIPE_CLEARING, -1, "CNY")],
                    corrects_id=wrong.id,
                )
            ],
        )
    assert correction.corrects_id == wrong.id and batched.corrects_id == wrong.id
    async with unit_of_work() as session:
        stored = (
            await session.execute(
                select(transactions.c.idempotency_key, transactions.c.corrects_id).where(
                    transactions.c.corrects_id.is_not(None)
                )
            )
        ).all()
    assert sorted(stored) == [("correction", wrong.id), ("correction-2", wrong.id)]
    assert await balance(PSB_FEES) == -1_000 + 101


async def test_closing_rules(db: Database) -> None:
    await open_books()
    first = await close("PSB", "2026-10")
    again = await close("PSB", "2026-10", who="cli:someone-else")
    assert again == first  # closing again returns it unchanged
    with pytest.raises(Conflict) as inside_closed_month:
        await close("PSB", "2026-10-05")
    assert inside_closed_month.value.code == "period_already_closed"
    for bad in ("2026-13", "2026-02-30", "26-10", "2026/10", "2026-10-1"):
        with pytest.raises(ValidationFailed) as invalid:
            await close("PSB", bad)
        assert invalid.value.code == "invalid_period", bad
    today = datetime.now(UTC).astimezone(periods.zone(None)).date()
    for not_over in (today.isoformat(), today.strftime("%Y-%m"), "2999-01"):
        with pytest.raises(ValidationFailed) as open_still:
            await close("PSB", not_over)
        assert open_still.value.code == "period_not_ended"
    with pytest.raises(Exception) as unknown:
        await close("XYZ", "2026-10")
    assert getattr(unknown.value, "code", None) == "department_not_found"


async def test_the_set_based_check_over_written_transactions(db: Database) -> None:
    await open_books()
    inside = datetime(2026, 10, 3, tzinfo=UTC)
    written = await post(card("written-before", 100, inside))
    outside = await post(card("outside", 100, OCT_END))
    await close("PSB", "2026-10")
    async with unit_of_work() as session:
        await periods.refuse_closed_transactions(session, [outside.id])
        await periods.refuse_closed_transactions(session, [])
        with pytest.raises(PeriodClosed):
            await periods.refuse_closed_transactions(session, [outside.id, written.id])
        with pytest.raises(PeriodClosed):
            await periods.refuse_closed_transactions(
                session, select(transactions.c.id).where(transactions.c.id == written.id)
            )
        await periods.refuse_closed(session, [card("x", 1, OCT_END), card("y", 1, None)])
        with pytest.raises(PeriodClosed):
            await periods.refuse_closed(session, [card("z", 1, inside.replace(tzinfo=None))])


async def test_stripe_booking_into_a_closed_period_refuses_the_whole_import(
    db: Database,
) -> None:
    """F1's set-based booking of Stripe fees calls the same check: PSB bears its fees,
    so booking November's after November is closed is refused, and the import with it."""
    from ledger.models import external_records
    from tests.finance_fixtures import build_month, import_month

    async with unit_of_work() as session:
        month = await build_month(session)
    await close("PSB", "2026-11")
    before = await count_transactions()
    with pytest.raises(PeriodClosed):
        async with unit_of_work() as session:
            await import_month(session, month, problems=False)
    assert await count_transactions() == before
    async with unit_of_work() as session:
        assert (await session.execute(select(external_records.c.id))).first() is None


on_postgres = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@on_postgres
async def test_a_close_waits_for_postings_in_flight_and_refuses_those_after(
    db: Database,
) -> None:
    """The check runs after the write: a posting in flight while the period closes
    either commits before the close takes effect or is refused — never slips in."""
    await open_books()
    inside = datetime(2026, 10, 3, tzinfo=UTC)
    wrote = asyncio.Event()
    release = asyncio.Event()

    async def slow_posting() -> None:
        async with unit_of_work() as session:
            await ledger.post_transaction(
                session,
                idempotency_key="in-flight",
                description="in flight",
                lines=[Line(STRIPE_CLEARING, 5, "CNY"), Line(PSB_FEES, -5, "CNY")],
                effective_at=inside,
            )
            wrote.set()
            await release.wait()

    posting = asyncio.create_task(slow_posting())
    await wrote.wait()
    closing = asyncio.create_task(close("PSB", "2026-10"))
    await asyncio.sleep(0.3)
    assert not closing.done()  # waits for the in-flight posting's row locks
    release.set()
    await posting
    await closing
    with pytest.raises(PeriodClosed):
        await post(card("after-close", 5, inside))
    assert await balance(PSB_FEES) == -5


# --- HTTP --------------------------------------------------------------------------


async def test_the_periods_api(app_client: Any, db: Database) -> None:
    await open_books()
    admin = await make_key("admin")
    psb_finance = await make_key("finance", ["PSB"])
    amr_finance = await make_key("finance", ["AMR"])
    created = await app_client.post(
        "/api/v1/ledger/periods",
        json={"department": "PSB", "period": "2026-10"},
        headers=auth(psb_finance),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["period"] == "2026-10" and body["kind"] == "month"
    assert body["starts_at"].startswith("2026-09-30T16:00:00")
    assert body["closed_by"].startswith("key:")
    again = await app_client.post(
        "/api/v1/ledger/periods",
        json={"department": "PSB", "period": "2026-10"},
        headers=auth(admin),
    )
    assert again.status_code == 201 and again.json()["id"] == body["id"]
    other = await app_client.post(
        "/api/v1/ledger/periods",
        json={"department": "PSB", "period": "2026-09"},
        headers=auth(amr_finance),
    )
    assert other.status_code == 403 and other.json()["code"] == "department_not_allowed"
    for bad, code in (("2026-14", "invalid_period"), ("2999-01", "period_not_ended")):
        refused = await app_client.post(
            "/api/v1/ledger/periods",
            json={"department": "PSB", "period": bad},
            headers=auth(admin),
        )
        assert refused.status_code == 422 and refused.json()["code"] == code
    unknown = await app_client.post(
        "/api/v1/ledger/periods", json={"department": "PSB", "period": "2026-10", "x": 1},
        headers=auth(admin),
    )  # fmt: skip
    assert unknown.status_code in (400, 422)
    await app_client.post(
        "/api/v1/ledger/periods",
        json={"department": "AMR", "period": "2026-10-01"},
        headers=auth(admin),
    )
    listed = await app_client.get("/api/v1/ledger/periods", headers=auth(admin))
    assert [p["department"] for p in listed.json()["data"]] == ["AMR", "PSB"]
    mine = await app_client.get("/api/v1/ledger/periods", headers=auth(psb_finance))
    assert [p["id"] for p in mine.json()["data"]] == [body["id"]]
    page = await app_client.get("/api/v1/ledger/periods", params={"limit": 1}, headers=auth(admin))
    assert page.json()["next_cursor"]
    rest = await app_client.get(
        "/api/v1/ledger/periods",
        params={"limit": 1, "cursor": page.json()["next_cursor"]},
        headers=auth(admin),
    )
    assert [p["department"] for p in rest.json()["data"]] == ["PSB"]


async def test_a_payment_learnt_after_its_day_was_closed_books_in_the_open_period(
    db: Database,
) -> None:
    """A card payment whose webhook came after its day was closed: refusing its posting
    would lose it, so it is booked at the first open moment, saying when it happened."""
    from payments.booking import book_payment
    from tests.finance_fixtures import PASSPORT, _payment, seed_departments

    async with unit_of_work() as session:
        await seed_departments(session)
    await close("PSB", "2026-10-07")
    happened = datetime(2026, 10, 7, 3, tzinfo=UTC)  # 11:00 in Hangzhou, inside the day
    payment = _payment(1, PASSPORT, happened)
    async with unit_of_work() as session:
        session.add(payment)
        await session.flush()
        await book_payment(session, payment)
    async with unit_of_work() as session:
        booked = await ledger.transaction_for_key(session, f"payment:{payment.id}:succeeded")
    assert booked.effective_at == datetime(2026, 10, 7, 16, tzinfo=UTC)  # the next midnight
    assert booked.metadata["occurred_at"] == happened.isoformat()

    on_time = _payment(2, PASSPORT, datetime(2026, 10, 8, 3, tzinfo=UTC))
    async with unit_of_work() as session:
        session.add(on_time)
        await session.flush()
        await book_payment(session, on_time)
        kept = await ledger.transaction_for_key(session, f"payment:{on_time.id}:succeeded")
    assert kept.effective_at == on_time.succeeded_at and "occurred_at" not in kept.metadata
