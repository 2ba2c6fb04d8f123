"""ledger.service.post_transactions: many postings in one unit of work (SQLite and
PostgreSQL), with the same validation and per-key idempotency as post_transaction, and
no deadlocks between concurrent batches on PostgreSQL."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from ledger import service as ledger
from ledger.models import entries, transactions
from ledger.service import (
    STRIPE_CLEARING,
    STRIPE_FEES,
    AlreadyReversed,
    InvalidPosting,
    Line,
    Posting,
    department_fees_account,
)
from onetrip.db import Database, unit_of_work
from onetrip.errors import IdempotencyKeyReused

PSB_FEES = department_fees_account("PSB")
AMR_FEES = department_fees_account("AMR")


#: PostgreSQL behaviour (row locks, database-level checks): these run on it alone.
on_postgres = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


async def open_books() -> None:
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, "PSB", "公安局")
        await ledger.open_department_accounts(session, "AMR", "市场监管局")


def card(key: str, amount: int, fees: str = PSB_FEES, **kwargs: object) -> Posting:
    return Posting(
        idempotency_key=key,
        description=f"网上缴费 {key}",
        lines=[Line(STRIPE_CLEARING, amount, "CNY"), Line(fees, -amount, "CNY")],
        **kwargs,  # type: ignore[arg-type]
    )


async def post_batch(postings: list[Posting]) -> list[ledger.LedgerTransaction]:
    async with unit_of_work() as session:
        return await ledger.post_transactions(session, postings)


async def balance(code: str) -> int:
    async with unit_of_work() as session:
        return (await ledger.get_account_by_code(session, code)).balance


async def counts() -> tuple[int, int]:
    async with unit_of_work() as session:
        txns = (await session.execute(select(func.count()).select_from(transactions))).scalar()
        lines = (await session.execute(select(func.count()).select_from(entries))).scalar()
    return txns, lines


async def test_a_batch_posts_every_transaction_in_order_and_reads_back(db: Database) -> None:
    await open_books()
    joint = Posting(
        idempotency_key="payment:pay_b3:succeeded",
        description="一窗联办",
        lines=[
            Line(STRIPE_CLEARING, 19_940, "CNY"),
            Line(STRIPE_FEES, 60, "CNY"),
            Line(PSB_FEES, -14_000, "CNY"),
            Line(AMR_FEES, -6_000, "CNY"),
        ],
        metadata={"payment_id": "pay_b3", "departments": ["PSB", "AMR"]},
    )
    batch = [
        card("payment:pay_b1:succeeded", 12_000),
        card("payment:pay_b2:succeeded", 5_000, AMR_FEES),
        joint,
    ]
    posted = await post_batch(batch)
    assert [t.idempotency_key for t in posted] == [p.idempotency_key for p in batch]
    assert len({t.id for t in posted}) == 3
    assert [(e.account_code, e.amount) for e in posted[2].entries] == [
        (STRIPE_CLEARING, 19_940),
        (STRIPE_FEES, 60),
        (PSB_FEES, -14_000),
        (AMR_FEES, -6_000),
    ]
    assert posted[2].entries[2].department == "PSB"
    async with unit_of_work() as session:
        for txn in posted:
            assert await ledger.get_transaction(session, txn.id) == txn
        assert await ledger.verify_balances(session) == []
    assert await balance(STRIPE_CLEARING) == 12_000 + 5_000 + 19_940
    assert await balance(PSB_FEES) == -26_000
    assert await balance(AMR_FEES) == -11_000
    assert await counts() == (3, 8)


async def test_an_empty_batch_posts_nothing(db: Database) -> None:
    await open_books()
    assert await post_batch([]) == []
    assert await counts() == (0, 0)


async def test_a_replayed_batch_returns_the_first_transactions_and_changes_nothing(
    db: Database,
) -> None:
    await open_books()
    single = await post_batch([card("payment:pay_r1:succeeded", 1_000)])
    batch = [card(f"payment:pay_r{n}:succeeded", 1_000 * n) for n in range(1, 5)]
    first = await post_batch(batch)
    assert first[0] == single[0]
    again = await post_batch(batch)
    assert again == first
    assert await balance(STRIPE_CLEARING) == 1_000 + 2_000 + 3_000 + 4_000
    assert await counts() == (4, 8)


async def test_a_key_posted_before_with_other_lines_fails_the_whole_batch(db: Database) -> None:
    await open_books()
    await post_batch([card("payment:pay_k1:succeeded", 1_000)])
    with pytest.raises(IdempotencyKeyReused):
        await post_batch(
            [card("payment:pay_k2:succeeded", 2_000), card("payment:pay_k1:succeeded", 1_001)]
        )
    assert await counts() == (1, 2)


async def test_a_key_repeated_in_a_batch_is_posted_once(db: Database) -> None:
    await open_books()
    posted = await post_batch(
        [card("payment:pay_d1:succeeded", 700), card("payment:pay_d1:succeeded", 700)]
    )
    assert posted[0] == posted[1]
    assert await counts() == (1, 2)
    with pytest.raises(IdempotencyKeyReused):
        await post_batch(
            [card("payment:pay_d2:succeeded", 700), card("payment:pay_d2:succeeded", 701)]
        )


async def test_an_invalid_posting_fails_the_batch_and_names_it(db: Database) -> None:
    await open_books()
    unbalanced = Posting(
        idempotency_key="payment:pay_v2:succeeded",
        description="unbalanced",
        lines=[Line(STRIPE_CLEARING, 100, "CNY"), Line(PSB_FEES, -99, "CNY")],
    )
    with pytest.raises(InvalidPosting) as caught:
        await post_batch([card("payment:pay_v1:succeeded", 100), unbalanced])
    assert caught.value.code == "ledger_unbalanced"
    assert caught.value.detail.startswith("postings[1]: ")
    zero = Posting(
        idempotency_key="payment:pay_v3:succeeded",
        description="zero",
        lines=[Line(STRIPE_CLEARING, 0, "CNY"), Line(PSB_FEES, 0, "CNY")],
    )
    with pytest.raises(InvalidPosting) as caught:
        await post_batch([zero])
    assert caught.value.code == "ledger_zero_amount"
    assert caught.value.errors == [
        {"field": "postings[0].lines[0].amount", "message": "must not be zero"}
    ]
    with pytest.raises(InvalidPosting) as caught:
        await post_batch([card("", 100)])
    assert caught.value.code == "ledger_invalid_idempotency_key"
    assert await counts() == (0, 0)


async def test_an_unknown_account_fails_the_batch_and_writes_nothing(db: Database) -> None:
    await open_books()
    with pytest.raises(InvalidPosting) as caught:
        await post_batch(
            [
                card("payment:pay_u1:succeeded", 100),
                card("payment:pay_u2:succeeded", 100, "dept:XYZ:fees_payable"),
            ]
        )
    assert caught.value.code == "ledger_unknown_account"
    assert "postings[1]" in caught.value.detail
    assert await counts() == (0, 0)
    assert await balance(STRIPE_CLEARING) == 0


async def test_a_batch_can_reverse_transactions_once(db: Database) -> None:
    await open_books()
    original = (await post_batch([card("payment:pay_x1:succeeded", 3_000)]))[0]
    reversal = Posting(
        idempotency_key="refund:pay_x1",
        description="冲正",
        lines=[Line(e.account_code, -e.amount, e.currency) for e in original.entries],
        reverses_id=original.id,
    )
    (posted,) = await post_batch([reversal])
    assert posted.reverses_id == original.id
    assert await balance(STRIPE_CLEARING) == 0
    with pytest.raises(AlreadyReversed):
        await post_batch([Posting(**{**reversal.__dict__, "idempotency_key": "refund:again"})])


@on_postgres
async def test_concurrent_batches_on_the_same_accounts_do_not_deadlock(db: Database) -> None:
    await open_books()
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, "NRB", "自然资源和规划局")
    fees = [PSB_FEES, AMR_FEES, department_fees_account("NRB")]
    rng = random.Random(7)

    def batch(number: int) -> list[Posting]:
        out = []
        for i in range(40):
            # Overlapping keys across batches (every fifth), accounts in varying order.
            n = i if i % 5 == 0 else number * 1000 + i
            amount = 100 + n % 997
            department = fees[n % 3]
            lines = [Line(STRIPE_CLEARING, amount, "CNY"), Line(department, -amount, "CNY")]
            if n % 2:
                lines.reverse()
            if n % 7 == 0:
                lines.append(Line(fees[(n + 1) % 3], -5, "CNY"))
                lines.append(Line(STRIPE_FEES, 5, "CNY"))
            out.append(Posting(f"payment:pay_c{n}:succeeded", f"c{n}", lines))
        rng.shuffle(out)
        return out

    batches = [batch(number) for number in range(1, 9)]
    # Single postings interleave with the batches on the same hot account.
    singles = [card(f"payment:pay_s{n}:succeeded", 50 + n) for n in range(10)]

    async def single(posting: Posting) -> None:
        async with unit_of_work() as session:
            await ledger.post_transaction(
                session,
                idempotency_key=posting.idempotency_key,
                description=posting.description,
                lines=list(posting.lines),
            )

    await asyncio.wait_for(
        asyncio.gather(*(post_batch(b) for b in batches), *(single(s) for s in singles)),
        timeout=60,
    )
    unique = {p.idempotency_key: p for b in batches for p in b} | {
        p.idempotency_key: p for p in singles
    }
    async with unit_of_work() as session:
        assert await ledger.verify_balances(session) == []
    assert await counts() == (len(unique), sum(len(p.lines) for p in unique.values()))
    clearing = sum(
        line.amount for p in unique.values() for line in p.lines if line.account == STRIPE_CLEARING
    )
    assert await balance(STRIPE_CLEARING) == clearing


@on_postgres
async def test_concurrent_identical_batches_record_each_key_once(db: Database) -> None:
    await open_books()
    batch = [card(f"payment:pay_i{n}:succeeded", 100 + n) for n in range(30)]
    results = await asyncio.gather(*(post_batch(batch) for _ in range(5)))
    assert all(r == results[0] for r in results)
    assert await counts() == (30, 60)
    assert await balance(STRIPE_CLEARING) == sum(100 + n for n in range(30))


@on_postgres
async def test_postgres_still_checks_entries_written_in_several_statements_at_commit(
    db: Database,
) -> None:
    await open_books()
    async with unit_of_work() as session:
        ids = {
            a.code: a.id
            for a in [
                await ledger.get_account_by_code(session, STRIPE_CLEARING),
                await ledger.get_account_by_code(session, PSB_FEES),
            ]
        }
    insert_txn = text(
        "INSERT INTO ledger_transactions (id, idempotency_key, description, effective_at,"
        " recorded_at, metadata) VALUES (:id, :id, 'raw', now(), now(), '{}')"
    )
    insert_entry = text(
        "INSERT INTO ledger_entries (transaction_id, account_id, amount, currency,"
        " effective_at) VALUES (:txn, :account, :amount, 'CNY', now())"
    )
    # Balanced at commit, though not after each statement: accepted.
    async with unit_of_work() as session:
        await session.execute(insert_txn, {"id": "txn_split"})
        await session.execute(
            insert_entry, {"txn": "txn_split", "account": ids[STRIPE_CLEARING], "amount": 10}
        )
        await session.execute(
            insert_entry, {"txn": "txn_split", "account": ids[PSB_FEES], "amount": -10}
        )
    # Unbalanced at commit: refused, one statement after the other.
    with pytest.raises(DBAPIError, match="does not sum to zero"):
        async with unit_of_work() as session:
            await session.execute(insert_txn, {"id": "txn_split2"})
            await session.execute(
                insert_entry, {"txn": "txn_split2", "account": ids[STRIPE_CLEARING], "amount": 10}
            )
            await session.execute(
                insert_entry, {"txn": "txn_split2", "account": ids[PSB_FEES], "amount": -9}
            )
    assert await counts() == (1, 2)
