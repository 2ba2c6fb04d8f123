"""The ledger on a real database (SQLite and PostgreSQL): postings, balances, reversals,
idempotency, and what the database itself refuses."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from ledger import service as ledger
from ledger.jobs import check_ledger_balances
from ledger.models import accounts, transactions
from ledger.queries import OTHER_ACCOUNTS
from ledger.service import (
    BANK,
    COUNTER_CASH,
    STRIPE_CLEARING,
    STRIPE_FEES,
    AlreadyReversed,
    InvalidPosting,
    Line,
    department_fees_account,
)
from onetrip.db import Database, unit_of_work
from onetrip.errors import IdempotencyKeyReused, NotFound

PSB = "PSB"  # 公安局: passports, exit-entry permits
AMR = "AMR"  # 市场监管局: business licences
PSB_FEES = department_fees_account(PSB)
AMR_FEES = department_fees_account(AMR)
PASSPORT_FEE = 12_000  # 普通护照 120.00 元, in fen


#: PostgreSQL behaviour (database-level checks, row locks): these run on it alone.
on_postgres = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


async def open_books() -> None:
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, PSB, "公安局")
        await ledger.open_department_accounts(session, AMR, "市场监管局")


def card_payment(amount: int = PASSPORT_FEE, fees_account: str = PSB_FEES) -> list[Line]:
    return [Line(STRIPE_CLEARING, amount, "CNY"), Line(fees_account, -amount, "CNY")]


async def balance(code: str, currency: str = "CNY") -> int:
    async with unit_of_work() as session:
        return (await ledger.get_account_by_code(session, code, currency)).balance


async def post(key: str, lines: list[Line], **kwargs: object) -> ledger.LedgerTransaction:
    async with unit_of_work() as session:
        return await ledger.post_transaction(
            session, idempotency_key=key, description=f"posting {key}", lines=lines, **kwargs
        )


async def test_opening_department_accounts_twice_creates_them_once(db: Database) -> None:
    await open_books()
    await open_books()
    async with unit_of_work() as session:
        codes = (await session.execute(select(accounts.c.code))).scalars().all()
        fees = await ledger.get_account_by_code(session, PSB_FEES)
    platform = [code for code, _, _ in ledger.PLATFORM_ACCOUNTS]
    assert {STRIPE_CLEARING, STRIPE_FEES, COUNTER_CASH, BANK, ledger.SUSPENSE} <= set(platform)
    assert sorted(codes) == sorted([AMR_FEES, PSB_FEES, *platform])
    assert fees.name == "Fees payable to 公安局"
    assert (fees.department, fees.kind, fees.currency, fees.balance) == (PSB, "liability", "CNY", 0)


async def test_platform_accounts_have_no_department(db: Database) -> None:
    await open_books()
    async with unit_of_work() as session:
        clearing = await ledger.get_account_by_code(session, STRIPE_CLEARING)
    assert (clearing.department, clearing.kind) == (None, "asset")


async def test_a_card_payment_debits_clearing_and_credits_the_department(db: Database) -> None:
    await open_books()
    txn = await post(
        "payment:pay_01:succeeded",
        card_payment(),
        metadata={"payment_id": "pay_01", "department": PSB},
    )
    assert txn.id.startswith("txn_")
    assert [(e.account_code, e.amount) for e in txn.entries] == [
        (STRIPE_CLEARING, PASSPORT_FEE),
        (PSB_FEES, -PASSPORT_FEE),
    ]
    assert await balance(STRIPE_CLEARING) == PASSPORT_FEE
    assert await balance(PSB_FEES) == -PASSPORT_FEE


async def test_the_posted_transaction_reads_back_with_its_entries(db: Database) -> None:
    await open_books()
    posted = await post(
        "payment:pay_02:succeeded", card_payment(), metadata={"payment_id": "pay_02"}
    )
    async with unit_of_work() as session:
        stored = await ledger.get_transaction(session, posted.id)
    assert stored == posted
    assert stored.effective_at.tzinfo is not None
    assert stored.metadata == {"payment_id": "pay_02"}


async def test_trial_balance_totals_are_equal_after_a_joint_fee_and_a_refund(db: Database) -> None:
    await open_books()
    # A joint matter: 公安局 70 %, 市场监管局 30 %, paid by card; Stripe keeps its fee.
    await post(
        "payment:pay_03:succeeded",
        [
            Line(STRIPE_CLEARING, 19_940, "CNY"),
            Line(STRIPE_FEES, 60, "CNY"),
            Line(PSB_FEES, -14_000, "CNY"),
            Line(AMR_FEES, -6_000, "CNY"),
        ],
    )
    await post("payment:pay_04:succeeded", card_payment(5_000, AMR_FEES))
    await post(
        "refund:rf_01:succeeded",
        [Line(AMR_FEES, 5_000, "CNY"), Line(STRIPE_CLEARING, -5_000, "CNY")],
    )
    async with unit_of_work() as session:
        report = await ledger.trial_balance(session)
    assert report.total_debits == report.total_credits == 19_940 + 60 + 5_000 + 5_000
    by_code = {line.code: line for line in report.lines}
    assert (by_code[AMR_FEES].debits, by_code[AMR_FEES].credits) == (5_000, 11_000)
    assert report.departments is None


async def test_trial_balance_as_of_leaves_out_later_entries(db: Database) -> None:
    await open_books()
    june = datetime(2025, 6, 30, 8, 0, tzinfo=UTC)
    await post("payment:pay_05:succeeded", card_payment(), effective_at=june)
    await post(
        "payment:pay_06:succeeded", card_payment(3_000), effective_at=june + timedelta(days=2)
    )
    async with unit_of_work() as session:
        end_of_june = await ledger.trial_balance(
            session, as_of=datetime(2025, 6, 30, 16, 0, tzinfo=UTC)
        )
    assert end_of_june.total_debits == end_of_june.total_credits == PASSPORT_FEE


async def test_trial_balance_for_a_department_scope_covers_only_its_accounts(db: Database) -> None:
    await open_books()
    await post("payment:pay_07:succeeded", card_payment())
    await post("payment:pay_08:succeeded", card_payment(8_000, AMR_FEES))
    async with unit_of_work() as session:
        report = await ledger.trial_balance(session, scope=[PSB])
        everything = await ledger.trial_balance(session)
    # Its own accounts line by line; the rest (clearing, AMR) in one line without detail.
    assert [line.code for line in report.lines] == [PSB_FEES, OTHER_ACCOUNTS]
    assert report.total_debits == report.total_credits == PASSPORT_FEE + 8_000
    other = report.lines[-1]
    assert (other.account_id, other.department, other.currency) == ("other", None, "CNY")
    assert (other.debits, other.credits) == (PASSPORT_FEE + 8_000, 8_000)
    assert report.departments == (PSB,)
    # The view of every account is unchanged: each account once, no "other" line.
    assert [line.code for line in everything.lines] == sorted([AMR_FEES, PSB_FEES, STRIPE_CLEARING])
    assert report.lines[0] == next(line for line in everything.lines if line.code == PSB_FEES)


async def test_a_scoped_trial_balance_balances_in_every_currency(db: Database) -> None:
    await open_books()
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, PSB, "公安局", "USD")
    await post("payment:pay_cny:succeeded", card_payment(8_000, AMR_FEES))
    await post("payment:pay_psb:succeeded", card_payment())
    await post(
        "payment:pay_usd:succeeded",
        [Line(STRIPE_CLEARING, 2_500, "USD"), Line(PSB_FEES, -2_500, "USD")],
    )
    async with unit_of_work() as session:
        report = await ledger.trial_balance(session, scope=[AMR])
    # One "other" line per currency, so each currency balances on its own too.
    assert [(line.code, line.currency) for line in report.lines] == [
        (AMR_FEES, "CNY"),
        (OTHER_ACCOUNTS, "CNY"),
        (OTHER_ACCOUNTS, "USD"),
    ]
    for currency in ("CNY", "USD"):
        in_currency = [line for line in report.lines if line.currency == currency]
        assert sum(line.debits for line in in_currency) == sum(line.credits for line in in_currency)
    assert (report.lines[2].debits, report.lines[2].credits) == (2_500, 2_500)
    assert report.total_debits == report.total_credits == 8_000 + PASSPORT_FEE + 2_500


async def test_reposting_the_same_key_returns_the_first_transaction_and_changes_nothing(
    db: Database,
) -> None:
    await open_books()
    first = await post("payment:pay_09:succeeded", card_payment())
    again = await post("payment:pay_09:succeeded", card_payment())
    assert again == first
    assert await balance(PSB_FEES) == -PASSPORT_FEE
    async with unit_of_work() as session:
        count = (await session.execute(select(func.count()).select_from(transactions))).scalar()
    assert count == 1


async def test_reusing_a_key_for_other_lines_is_refused(db: Database) -> None:
    await open_books()
    await post("payment:pay_10:succeeded", card_payment())
    with pytest.raises(IdempotencyKeyReused):
        await post("payment:pay_10:succeeded", card_payment(PASSPORT_FEE + 1))


async def test_posting_to_an_unknown_account_is_refused(db: Database) -> None:
    await open_books()
    with pytest.raises(InvalidPosting) as caught:
        await post("payment:pay_11:succeeded", card_payment(fees_account="dept:XYZ:fees_payable"))
    assert caught.value.code == "ledger_unknown_account"
    assert await balance(STRIPE_CLEARING) == 0


async def test_posting_in_another_currency_than_the_account_is_refused(db: Database) -> None:
    await open_books()
    async with unit_of_work() as session:
        await ledger.ensure_platform_accounts(session, "HKD")
    lines = [Line(STRIPE_CLEARING, 10_000, "HKD"), Line(PSB_FEES, -10_000, "HKD")]
    with pytest.raises(InvalidPosting) as caught:
        await post("payment:pay_12:succeeded", lines)
    assert caught.value.code == "ledger_currency_mismatch"


async def test_an_unbalanced_posting_is_refused_before_the_database(db: Database) -> None:
    await open_books()
    with pytest.raises(InvalidPosting) as caught:
        await post(
            "payment:pay_13:succeeded",
            [Line(STRIPE_CLEARING, 100, "CNY"), Line(PSB_FEES, -99, "CNY")],
        )
    assert caught.value.code == "ledger_unbalanced"


async def test_reversing_a_transaction_restores_balances_and_links_the_original(
    db: Database,
) -> None:
    await open_books()
    original = await post(
        "payment:pay_14:succeeded", card_payment(), metadata={"payment_id": "pay_14"}
    )
    async with unit_of_work() as session:
        reversal = await ledger.reverse_transaction(
            session, original.id, idempotency_key="correction:pay_14", description="误记冲正"
        )
    assert reversal.reverses_id == original.id
    assert [e.amount for e in reversal.entries] == [-PASSPORT_FEE, PASSPORT_FEE]
    assert reversal.metadata == {"payment_id": "pay_14", "reverses": original.id}
    assert await balance(STRIPE_CLEARING) == 0
    assert await balance(PSB_FEES) == 0


async def test_repeating_a_reversal_with_its_key_returns_the_same_reversal(db: Database) -> None:
    await open_books()
    original = await post("payment:pay_15:succeeded", card_payment())
    reversals = []
    for _ in range(2):
        async with unit_of_work() as session:
            reversals.append(
                await ledger.reverse_transaction(
                    session, original.id, idempotency_key="correction:pay_15", description="冲正"
                )
            )
    assert reversals[0] == reversals[1]
    assert await balance(PSB_FEES) == 0


async def test_a_transaction_cannot_be_reversed_twice(db: Database) -> None:
    await open_books()
    original = await post("payment:pay_16:succeeded", card_payment())
    async with unit_of_work() as session:
        await ledger.reverse_transaction(
            session, original.id, idempotency_key="c1", description="冲正"
        )
    with pytest.raises(AlreadyReversed):
        async with unit_of_work() as session:
            await ledger.reverse_transaction(
                session, original.id, idempotency_key="c2", description="冲正"
            )


async def test_reversing_an_unknown_transaction_is_not_found(db: Database) -> None:
    await open_books()
    with pytest.raises(NotFound):
        async with unit_of_work() as session:
            await ledger.reverse_transaction(
                session, "txn_missing", idempotency_key="c", description="x"
            )


async def test_entries_are_listed_newest_first_with_a_cursor(db: Database) -> None:
    await open_books()
    for number in range(5):
        await post(f"payment:pay_2{number}:succeeded", card_payment(1_000 + number))
    async with unit_of_work() as session:
        fees = await ledger.get_account_by_code(session, PSB_FEES)
        first = await ledger.list_entries(session, fees.id, limit=3)
        rest = await ledger.list_entries(session, fees.id, limit=3, cursor=first.next_cursor)
    assert [e.amount for e in first.items] == [-1_004, -1_003, -1_002]
    assert [e.amount for e in rest.items] == [-1_001, -1_000]
    assert rest.next_cursor is None


async def test_database_refuses_to_update_an_entry(db: Database) -> None:
    await open_books()
    await post("payment:pay_30:succeeded", card_payment())
    with pytest.raises(DBAPIError, match="append-only"):
        async with unit_of_work() as session:
            await session.execute(text("UPDATE ledger_entries SET amount = amount * 2"))


async def test_database_refuses_to_delete_an_entry(db: Database) -> None:
    await open_books()
    await post("payment:pay_31:succeeded", card_payment())
    with pytest.raises(DBAPIError, match="append-only"):
        async with unit_of_work() as session:
            await session.execute(text("DELETE FROM ledger_entries"))


async def test_database_refuses_to_update_or_delete_a_transaction(db: Database) -> None:
    await open_books()
    await post("payment:pay_32:succeeded", card_payment())
    with pytest.raises(DBAPIError, match="append-only"):
        async with unit_of_work() as session:
            await session.execute(text("UPDATE ledger_transactions SET description = 'edited'"))
    with pytest.raises(DBAPIError, match="append-only"):
        async with unit_of_work() as session:
            await session.execute(text("DELETE FROM ledger_transactions"))


async def _account_id(code: str) -> str:
    async with unit_of_work() as session:
        return (await ledger.get_account_by_code(session, code)).id


@on_postgres
async def test_postgres_refuses_to_commit_an_unbalanced_transaction_written_with_raw_sql(
    db: Database,
) -> None:
    await open_books()
    clearing = await _account_id(STRIPE_CLEARING)
    fees = await _account_id(PSB_FEES)
    with pytest.raises(DBAPIError, match="does not sum to zero"):
        async with unit_of_work() as session:
            await session.execute(
                text(
                    "INSERT INTO ledger_transactions (id, idempotency_key, description,"
                    " effective_at, recorded_at, metadata)"
                    " VALUES ('txn_raw', 'raw', 'bypass', now(), now(), '{}')"
                )
            )
            await session.execute(
                text(
                    "INSERT INTO ledger_entries (transaction_id, account_id, amount, currency,"
                    " effective_at) VALUES ('txn_raw', :clearing, 12000, 'CNY', now()),"
                    " ('txn_raw', :fees, -11000, 'CNY', now())"
                ),
                {"clearing": clearing, "fees": fees},
            )
    async with unit_of_work() as session:
        assert (await session.execute(select(func.count()).select_from(transactions))).scalar() == 0


@on_postgres
async def test_postgres_refuses_to_commit_a_transaction_without_entries(db: Database) -> None:
    with pytest.raises(DBAPIError, match="at least 2 are required"):
        async with unit_of_work() as session:
            await session.execute(
                text(
                    "INSERT INTO ledger_transactions (id, idempotency_key, description,"
                    " effective_at, recorded_at, metadata)"
                    " VALUES ('txn_empty', 'empty', 'no legs', now(), now(), '{}')"
                )
            )


@on_postgres
async def test_postgres_refuses_an_entry_added_later_to_a_balanced_transaction(
    db: Database,
) -> None:
    await open_books()
    txn = await post("payment:pay_33:succeeded", card_payment())
    clearing = await _account_id(STRIPE_CLEARING)
    with pytest.raises(DBAPIError, match="does not sum to zero"):
        async with unit_of_work() as session:
            await session.execute(
                text(
                    "INSERT INTO ledger_entries (transaction_id, account_id, amount, currency,"
                    " effective_at) VALUES (:txn, :clearing, 100, 'CNY', now())"
                ),
                {"txn": txn.id, "clearing": clearing},
            )


@on_postgres
async def test_concurrent_postings_keep_cached_balances_equal_to_the_entries(db: Database) -> None:
    await open_books()

    async def pay(number: int) -> None:
        # Alternate the account order so lock ordering, not luck, prevents deadlocks.
        department = PSB_FEES if number % 2 else AMR_FEES
        lines = card_payment(1_000 + number, department)
        if number % 3 == 0:
            lines = [
                *reversed(lines),
                Line(STRIPE_FEES, 10, "CNY"),
                Line(STRIPE_CLEARING, -10, "CNY"),
            ]
        await post(f"payment:pay_c{number}:succeeded", lines)

    await asyncio.gather(*(pay(number) for number in range(50)))
    async with unit_of_work() as session:
        assert await ledger.verify_balances(session) == []
        count = (await session.execute(select(func.count()).select_from(transactions))).scalar()
    assert count == 50
    assert await balance(STRIPE_CLEARING) == sum(1_000 + n for n in range(50)) - 10 * 17
    assert await balance(PSB_FEES) == -sum(1_000 + n for n in range(50) if n % 2)


@on_postgres
async def test_concurrent_postings_with_one_key_record_one_transaction(db: Database) -> None:
    await open_books()
    posted = await asyncio.gather(
        *(post("payment:pay_dup:succeeded", card_payment()) for _ in range(10))
    )
    assert len({txn.id for txn in posted}) == 1
    assert await balance(PSB_FEES) == -PASSPORT_FEE


async def test_verify_balances_reports_an_account_whose_cached_balance_drifted(
    db: Database,
) -> None:
    await open_books()
    await post("payment:pay_40:succeeded", card_payment())
    async with unit_of_work() as session:
        await session.execute(
            accounts.update()
            .where(accounts.c.code == PSB_FEES)
            .values(balance=accounts.c.balance - 1)
        )
    async with unit_of_work() as session:
        mismatches = await ledger.verify_balances(session)
    assert [(m.code, m.cached_balance, m.sum_of_entries) for m in mismatches] == [
        (PSB_FEES, -PASSPORT_FEE - 1, -PASSPORT_FEE)
    ]


async def test_the_hourly_check_logs_an_error_per_drifted_account(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await open_books()
    await post("payment:pay_41:succeeded", card_payment())
    async with unit_of_work() as session:
        await session.execute(accounts.update().where(accounts.c.code == BANK).values(balance=500))
    with caplog.at_level(logging.ERROR, logger="ledger.jobs"):
        await check_ledger_balances.fn.__wrapped__()  # type: ignore[attr-defined]
    assert [r.getMessage() for r in caplog.records if r.name == "ledger.jobs"] == [
        f"ledger account {await _account_id(BANK)} ({BANK}, CNY) caches balance 500"
        " but its entries sum to 0"
    ]
