"""Reconciliation runs over a realistic month (tests/finance_fixtures.py), on SQLite and
PostgreSQL: what a run finds, that running again changes nothing, dry runs, department
runs, and resolving the exceptions queue through the suspense account."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from ledger import service as ledger
from ledger.accounts import BANK, BANK_IN_TRANSIT, SUSPENSE
from ledger.models import exceptions, external_records, matches
from ledger.models import runs as run_rows
from ledger.reconciliation import exceptions as queue
from ledger.reconciliation import imports, runs
from ledger.reconciliation.exceptions import ExceptionResolved
from onetrip.db import get_database, unit_of_work
from onetrip.errors import NotFound, ValidationFailed
from payments.booking import book_payment
from tests import finance_fixtures as fx

NOVEMBER = {"date_from": fx.MONTH_START, "date_to": fx.MONTH_END}
WHO = "cli:张会计"


async def month_imported(bank_format: str = "csv", problems: bool = True) -> fx.FinanceMonth:
    async with unit_of_work() as session:
        month = await fx.build_month(session)
        await fx.import_month(session, month, bank_format=bank_format, problems=problems)
    return month


async def run(**kwargs: Any) -> runs.RunView:
    async with unit_of_work() as session:
        return await runs.run(session, **{**NOVEMBER, "started_by": WHO, **kwargs})


async def open_exceptions() -> list[queue.ExceptionView]:
    async with get_database().session() as session:
        return await queue.list_exceptions(session, status="open", limit=200)


async def bank_record(month: fx.FinanceMonth, serial: str) -> str:
    async with get_database().session() as session:
        found = await session.scalar(
            select(external_records.c.id).where(external_records.c.external_id.like(f"%{serial}"))
        )
    assert found is not None
    return str(found)


async def balance(code: str) -> int:
    async with get_database().session() as session:
        return (await ledger.get_account_by_code(session, code)).balance


async def count(table: Any) -> int:
    async with get_database().session() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.mark.parametrize("bank_format", ["csv", "camt053"])
async def test_the_month_finds_exactly_the_missing_line_the_duplicate_and_the_fen_short(
    db: Any, bank_format: str
) -> None:
    month = await month_imported(bank_format)
    found = await run()

    # Stripe against the ledger: every payment and refund matched, nothing else.
    assert found.matched == len(month.payments) + len(month.refunds)
    assert found.new_matches == found.matched
    line = await bank_record(month, "CCB2026111600001")
    copy = await bank_record(month, "CCB2026111600002")
    got = {(e.reason, e.item_kind, e.item_id) for e in await open_exceptions()}
    assert got == {
        ("amount_differs", "bank", line),
        ("duplicate", "bank", copy),
        ("missing_in_bank", "payout", month.p2.id),
    }
    assert found.by_reason == {"amount_differs": 1, "duplicate": 1, "missing_in_bank": 1}
    assert (found.unmatched_ledger, found.unmatched_external, found.discrepancies) == (1, 0, 2)
    # The fen short names the payout it should be, with both amounts.
    [short] = [e for e in await open_exceptions() if e.reason == "amount_differs"]
    assert (short.amount, short.counterpart_amount) == (month.p1.net - 1, month.p1.net)
    assert short.candidates[0]["id"] == month.p1.id
    # Control totals per payout: gross − fees − refunds = net, the payout's amount.
    totals = {p["payout_id"]: p for p in found.payouts}
    for payout in month.payouts:
        assert totals[payout.id]["gross"] == payout.gross
        assert totals[payout.id]["fees"] == payout.fees
        assert totals[payout.id]["refunds"] == payout.refunds
        assert totals[payout.id]["net"] == payout.net == totals[payout.id]["payout_amount"]
        assert totals[payout.id]["balanced"] is True


async def test_running_again_over_the_same_month_adds_nothing(db: Any) -> None:
    await month_imported()
    first = await run()
    before = (await count(matches), await count(exceptions))
    again = await run()
    assert (again.new_matches, again.new_exceptions) == (0, 0)
    assert (await count(matches), await count(exceptions)) == before
    assert (again.matched, again.by_reason) == (first.matched, first.by_reason)
    assert again.id != first.id and again.started_by == WHO


async def test_a_clean_statement_matches_both_payouts_and_books_their_arrival(db: Any) -> None:
    month = await month_imported(problems=False)
    found = await run()
    assert found.by_reason == {}
    assert found.matched == len(month.payments) + len(month.refunds) + 2
    async with get_database().session() as session:
        rules = dict(
            (await session.execute(
                select(matches.c.left_id, matches.c.rule).where(matches.c.left_kind == "payout")
            )).all()
        )  # fmt: skip
    # P1's line names it; P2's does not and is a day late: found by amount and date.
    assert rules == {month.p1.id: "bank_reference", month.p2.id: "bank_amount"}
    assert await balance(BANK) == month.p1.net + month.p2.net
    assert await balance(BANK_IN_TRANSIT) == 0
    again = await run()
    assert again.new_matches == 0
    assert await balance(BANK) == month.p1.net + month.p2.net  # booked once


async def test_a_dry_run_reports_what_a_run_would_find_and_writes_only_its_record(db: Any) -> None:
    month = await month_imported(problems=False)
    dry = await run(dry_run=True)
    assert dry.dry_run and dry.new_matches == len(month.payments) + len(month.refunds) + 2
    assert (await count(matches), await count(exceptions)) == (0, 0)
    assert await balance(BANK) == 0
    assert await count(run_rows) == 1
    real = await run()
    assert (real.matched, real.new_matches, real.by_reason) == (
        dry.matched,
        dry.new_matches,
        dry.by_reason,
    )


async def test_a_department_run_matches_only_that_departments_payments(db: Any) -> None:
    month = await month_imported()
    found = await run(department="PSB")
    psb = [p for p in month.payments if p.department == "PSB"]
    psb_refunds = [r for r in month.refunds if r.department == "PSB"]
    assert found.matched == len(psb) + len(psb_refunds)
    assert found.by_reason == {} and found.payouts == []  # payouts are platform-wide
    async with get_database().session() as session:
        departments = set(
            (await session.execute(select(matches.c.department).distinct())).scalars()
        )
    assert departments == {"PSB"}
    rest = await run()
    assert rest.new_matches == len(month.payments) + len(month.refunds) - found.matched


async def test_what_stripe_lacks_what_the_ledger_lacks_and_a_double_charge_are_each_named(
    db: Any,
) -> None:
    async with unit_of_work() as session:
        month = await fx.build_month(session)
        await fx.import_month(session, month, problems=False)
        # A payment Stripe never reported, a charge for a payment we do not have, and
        # the first payment charged twice.
        extra = fx._payment(900, fx.PASSPORT, datetime(2026, 11, 20, 2, 0, tzinfo=fx.UTC))
        session.add(extra)
        await session.flush()
        await book_payment(session, extra)
        first = month.payments[0]
        rows = [
            fx._stripe_row("", date(2026, 12, 5), "txn_3QnovX0001",
                           datetime(2026, 11, 21, 3, 0, tzinfo=fx.UTC), 12000, 588, "charge",
                           "ch_3QnovX0001", "pay_01unknownunknownunknown00", "PSB"),
            fx._stripe_row("", date(2026, 12, 5), "txn_3QnovX0002", first.succeeded_at,
                           first.amount, fx.stripe_fee(first.amount), "charge",
                           "ch_3QnovX0002", first.id, first.department),
        ]  # fmt: skip
        report = [",".join(fx.STRIPE_COLUMNS)]
        report += [",".join(r.get(c, "") for c in fx.STRIPE_COLUMNS) for r in rows]
        await imports.import_file(
            session,
            source="stripe_payout_recon",
            file=io.BytesIO(("\n".join(report) + "\n").encode()),
            file_name="late.csv",
            imported_by=WHO,
        )
    found = await run()
    got = {(e.reason, e.item_kind) for e in await open_exceptions()}
    assert got == {
        ("missing_in_stripe", "ledger"),
        ("missing_in_ledger", "stripe"),
        ("duplicate", "stripe"),
    }
    assert (found.unmatched_ledger, found.unmatched_external, found.discrepancies) == (1, 1, 1)
    [missing] = [e for e in await open_exceptions() if e.reason == "missing_in_stripe"]
    assert missing.department == "PSB" and missing.amount == fx.PASSPORT["amount"]


async def test_resolving_the_month_through_suspense_leaves_nothing_open(db: Any) -> None:
    month = await month_imported()
    await run()
    by_reason = {e.reason: e for e in await open_exceptions()}

    async with unit_of_work() as session:
        adjusted = await queue.resolve(
            session,
            by_reason["amount_differs"].id,
            action="adjust",
            reason="建设银行少入账 0.01 元，差额暂挂待查",
            resolved_by="key:finance-zhang",
        )
    assert adjusted.status == "resolved" and adjusted.resolution == "adjust"
    assert adjusted.resolved_by == "key:finance-zhang" and adjusted.adjustment_id
    # The bank got one fen less than the payout: that fen waits in suspense.
    assert await balance(BANK) == month.p1.net - 1
    assert await balance(SUSPENSE) == 1
    async with get_database().session() as session:
        correction = await ledger.get_transaction(session, adjusted.adjustment_id)
    assert {e.account_code: e.amount for e in correction.entries} == {
        BANK: month.p1.net - 1,
        BANK_IN_TRANSIT: -month.p1.net,
        SUSPENSE: 1,
    }

    async with unit_of_work() as session:
        await queue.resolve(
            session,
            by_reason["duplicate"].id,
            action="accept",
            reason="银行重复列示，已确认仅入账一次",
            resolved_by="key:finance-zhang",
        )
        missing = await queue.resolve(
            session,
            by_reason["missing_in_bank"].id,
            action="adjust",
            reason="P2 未到账，转入待查",
            resolved_by="key:finance-li",
        )
    assert await balance(BANK_IN_TRANSIT) == 0
    assert await balance(SUSPENSE) == 1 + month.p2.net
    async with get_database().session() as session:
        correction = await ledger.get_transaction(session, missing.adjustment_id)
    assert {e.account_code: e.amount for e in correction.entries} == {
        BANK_IN_TRANSIT: -month.p2.net,
        SUSPENSE: month.p2.net,
    }
    assert not await open_exceptions()
    after = await run()
    assert after.by_reason == {} and after.new_exceptions == 0
    assert (after.unmatched_ledger, after.unmatched_external, after.discrepancies) == (0, 0, 0)
    async with get_database().session() as session:
        assert await ledger.verify_balances(session) == []


async def test_a_late_bank_line_is_matched_by_hand_and_the_payout_stops_being_missing(
    db: Any,
) -> None:
    month = await month_imported()
    await run()
    # P2 reaches the bank ten days late, without its id: beyond every rule's window.
    late = fx.BankLine(
        "CCB2026120900009",
        month.p2.arrival + timedelta(days=10),
        month.p2.net,
        "STRIPE PAYMENTS",
        "境外汇入",
        None,
    )
    async with unit_of_work() as session:
        await imports.import_file(
            session,
            source="bank_csv",
            file=io.BytesIO(fx.bank_csv([late])),
            file_name="建设银行对账单-2026-12.csv",
            imported_by=WHO,
            profile=fx.BANK_PROFILE["name"],  # type: ignore[arg-type]
        )
    december = await run(date_from=date(2026, 12, 1), date_to=date(2026, 12, 31))
    assert december.by_reason == {"missing_in_ledger": 1}
    [unexplained] = [e for e in await open_exceptions() if e.reason == "missing_in_ledger"]
    assert unexplained.item_id == await bank_record(month, "CCB2026120900009")
    async with unit_of_work() as session:
        matched = await queue.resolve(
            session,
            unexplained.id,
            action="match",
            match_with=[month.p2.id],
            reason="P2 晚十天到账，流水号 CCB2026120900009",
            resolved_by="key:finance-li",
        )
    assert (matched.resolution, matched.resolved_by) == ("match", "key:finance-li")
    assert await balance(BANK_IN_TRANSIT) == month.p1.net  # P2 arrived; P1's line differs
    # The payout's own missing_in_bank is resolved with it.
    assert month.p2.id not in {e.item_id for e in await open_exceptions()}
    again = await run()
    assert again.by_reason == {"amount_differs": 1, "duplicate": 1}


async def test_resolutions_that_do_not_fit_are_refused_and_change_nothing(db: Any) -> None:
    month = await month_imported()
    await run()
    by_reason = {e.reason: e for e in await open_exceptions()}
    refusals = [
        ({"action": "match", "reason": "对", "match_with": ["txn_nosuch"]}, "match_with_not_found"),
        ({"action": "match", "reason": "对"}, "match_with_required"),
        ({"action": "accept", "reason": "  "}, "reason_required"),
        ({"action": "delete", "reason": "对"}, "invalid_action"),
    ]
    for body, code in refusals:
        with pytest.raises(ValidationFailed) as refused:
            async with unit_of_work() as session:
                await queue.resolve(session, by_reason["duplicate"].id, resolved_by=WHO, **body)  # type: ignore[arg-type]
        assert refused.value.code == code
    async with unit_of_work() as session:
        await queue.resolve(session, by_reason["duplicate"].id, action="accept", reason="重复",
                            resolved_by=WHO)  # fmt: skip
    with pytest.raises(ExceptionResolved):
        async with unit_of_work() as session:
            await queue.resolve(session, by_reason["duplicate"].id, action="accept",
                                reason="再次", resolved_by=WHO)  # fmt: skip
    with pytest.raises(NotFound):
        async with unit_of_work() as session:
            await queue.resolve(session, by_reason["missing_in_bank"].id, action="accept",
                                reason="看不到", resolved_by=WHO, scope=["PSB"])  # fmt: skip
    assert await balance(SUSPENSE) == 0
    assert month.p2.id in {e.item_id for e in await open_exceptions()}


async def test_a_range_backwards_or_an_unknown_department_is_refused(db: Any) -> None:
    with pytest.raises(ValidationFailed) as backwards:
        await run(date_from=date(2026, 11, 30), date_to=date(2026, 11, 1))
    assert backwards.value.code == "invalid_date_range"
    with pytest.raises(NotFound) as unknown:
        await run(department="NOPE")
    assert unknown.value.code == "department_not_found"
    assert await count(run_rows) == 0


async def test_a_payout_whose_transactions_do_not_add_up_to_it_is_a_discrepancy(db: Any) -> None:
    async with unit_of_work() as session:
        month = await fx.build_month(session)
        rows = month.stripe_rows()
        # Stripe's own payout line says five fen more than its transactions' nets.
        for row in rows:
            if row["reporting_category"] == "payout" and row["source_id"] == month.p1.id:
                wrong = -(month.p1.net + 5)
                row.update(gross=fx.major(wrong, ""), net=fx.major(wrong, ""))
        report = [",".join(fx.STRIPE_COLUMNS)]
        report += [",".join(r.get(c, "") for c in fx.STRIPE_COLUMNS) for r in rows]
        await imports.import_file(
            session,
            source="stripe_payout_recon",
            file=io.BytesIO(("\n".join(report) + "\n").encode()),
            file_name="payout_reconciliation_itemized_2026-11.csv",
            imported_by=WHO,
        )
    found = await run()
    totals = {p["payout_id"]: p for p in found.payouts}
    assert totals[month.p1.id]["balanced"] is False
    assert totals[month.p1.id]["net"] == month.p1.net
    assert totals[month.p1.id]["payout_amount"] == month.p1.net + 5
    assert totals[month.p2.id]["balanced"] is True
    [differs] = [e for e in await open_exceptions() if e.reason == "amount_differs"]
    assert (differs.item_kind, differs.item_id) == ("payout", month.p1.id)
    assert (differs.amount, differs.counterpart_amount) == (month.p1.net + 5, month.p1.net)
    assert "control totals" in differs.detail
