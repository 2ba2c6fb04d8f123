"""Stripe money movement in the books: a month of Stripe's itemized payout report
(F2's realistic fixture: PSB bears Stripe's fees, NRB and HCB leave them to the
platform; a joint fee split 60/40 between NRB and HCB) imported through the real
importer, which books fees and payouts in the import's transaction — once."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from ledger import periods
from ledger import service as ledger
from ledger.accounts import BANK_IN_TRANSIT, department_settings
from ledger.models import ExternalRecord, ReconciliationImport, StripeBooking, Transaction
from ledger.reconciliation import imports, stripe_api
from ledger.reconciliation.booking import book_payout_arrival, book_stripe_records
from onetrip.db import unit_of_work
from onetrip.errors import Conflict, NotFound, ValidationFailed
from onetrip.ids import is_id, new_id
from payments import catalogue
from payments.schemas import DepartmentIn
from tests import finance_fixtures as fm


async def balances() -> dict[str, int]:
    async with unit_of_work() as session:
        page = await ledger.list_accounts(session, limit=100)
    return {account.code: account.balance for account in page.items}


async def stripe_postings() -> list[Transaction]:
    async with unit_of_work() as session:
        rows = await session.scalars(
            select(Transaction)
            .where(Transaction.idempotency_key.like("stripe:%"))
            .order_by(Transaction.idempotency_key)
        )
        return list(rows)


async def bookings() -> list[StripeBooking]:
    """The Stripe imports booked, oldest first."""
    async with unit_of_work() as session:
        return list(await session.scalars(select(StripeBooking).order_by(StripeBooking.booked_at)))


def fee_postings(postings: list[Transaction]) -> list[Transaction]:
    return [t for t in postings if t.metadata_["kind"] == "stripe_fees"]


async def import_report(content: bytes, name: str = "report.csv") -> imports.ImportSummary:
    async with unit_of_work() as session:
        return await imports.import_file(
            session,
            source="stripe_payout_recon",
            file=io.BytesIO(content),
            file_name=name,
            imported_by="cli:test",
        )


async def test_a_months_fees_and_payouts_are_booked_once_by_who_bears_them(db: Any) -> None:
    async with unit_of_work() as session:
        month = await fm.build_month(session)
    before = await balances()

    await import_report(month.stripe_report())
    after = await balances()

    def fees(department: str) -> int:
        return sum(p.fee for p in month.payments if p.department == department)

    fees_psb, fees_nrb = fees("PSB"), fees("NRB")  # NRB's payments are the joint ones
    total_fees = fees_psb + fees_nrb
    paid_out = month.p1.net + month.p2.net
    # PSB bears its own fees: they come off what PSB is owed (a debit on its liability).
    assert after["dept:PSB:fees_payable"] - before["dept:PSB:fees_payable"] == fees_psb
    # NRB and HCB leave theirs to the platform: an expense, their accounts untouched.
    assert after["dept:NRB:fees_payable"] == before["dept:NRB:fees_payable"]
    assert after["dept:HCB:fees_payable"] == before["dept:HCB:fees_payable"]
    assert after["platform:stripe_fees"] == fees_nrb
    # Clearing: what was collected, less refunds, fees and what Stripe paid out = 0 now.
    assert after["platform:stripe_clearing"] == (
        before["platform:stripe_clearing"] - total_fees - paid_out
    )
    assert after["platform:stripe_clearing"] == 0
    assert after[BANK_IN_TRANSIT] == paid_out

    postings = await stripe_postings()
    payouts = {t.external_ref: t for t in postings if t.metadata_["kind"] == "stripe_payout"}
    assert set(payouts) == {month.p1.id, month.p2.id}
    assert payouts[month.p1.id].idempotency_key == f"stripe:{month.p1.id}"
    # Fees are summed per hour, department and matter: here every payment has an hour
    # of its own, so each fee posting holds one fee, effective when it was charged.
    fees = fee_postings(postings)
    assert sum(t.metadata_["movements"] for t in fees) == len(month.payments)
    holders = {(t.effective_at, t.metadata_["department"]): t for t in fees}
    for p in month.payments:
        holder = holders[(p.succeeded_at, p.department)]
        assert holder.metadata_["matter_code"] in (p.matter_code, None)
        assert holder.idempotency_key.startswith("stripe:fees:")
    # Their ids are made in SQL, and are ids like every other transaction's.
    assert all(is_id(t.id, "txn") for t in postings)
    [booking] = await bookings()
    assert booking.by_kind == {"stripe_fee": len(month.payments), "stripe_payout": 2}
    assert booking.postings == len(postings)
    async with unit_of_work() as session:
        assert await ledger.verify_balances(session) == []
        settings = await department_settings(session, "PSB")
    assert settings.stripe_fees_borne_by == "department"

    # The same report again, and a second file with the same lines: nothing new.
    again = await import_report(month.stripe_report(), "again.csv")
    assert again.new_records == 0
    assert await balances() == after
    assert len(await stripe_postings()) == len(postings)
    async with unit_of_work() as session:
        count = await session.scalar(select(func.count()).select_from(Transaction))
    assert count == len(postings) + len(month.payments) + len(month.refunds)


def report_row(
    month: fm.FinanceMonth,
    txn: str,
    category: str,
    gross: int,
    fee: int,
    source: str,
    payment_id: str | None,
    payout: str,
    at: str,
) -> dict[str, str]:
    """One more line of Stripe's itemized report, in the fixture's columns."""
    return {
        "automatic_payout_id": payout,
        "automatic_payout_effective_at": "2026-12-02 00:00:00",
        "balance_transaction_id": txn,
        "created_utc": at,
        "available_on_utc": at,
        "currency": "cny",
        "gross": fm.major(gross, ""),
        "fee": fm.major(fee, ""),
        "net": fm.major(gross - fee, ""),
        "reporting_category": category,
        "source_id": source,
        "description": category,
        "charge_id": "",
        "payment_intent_id": "",
        "payment_metadata[payment_id]": payment_id or "",
        "payment_metadata[department]": "",
    }


def render(rows: list[dict[str, str]]) -> bytes:
    lines = [",".join(fm.STRIPE_COLUMNS)]
    lines += [",".join(row[c] for c in fm.STRIPE_COLUMNS) for row in rows]
    return ("\n".join(lines) + "\n").encode()


async def test_disputes_payout_failures_and_adjustments_each_have_their_account(db: Any) -> None:
    async with unit_of_work() as session:
        month = await fm.build_month(session)
    await import_report(month.stripe_report())
    before = await balances()
    psb = next(p for p in month.payments if p.department == "PSB")
    nrb = next(p for p in month.payments if p.department == "NRB")
    p3 = "po_1QdecP3k0l1m2n3o"
    rows = [
        # PSB's applicant disputes the passport fee: Stripe withholds it and charges
        # 15.00 yuan, which PSB bears (its settings); then PSB wins and both come back.
        report_row(month, "txn_3QdecDP01", "dispute", -psb.amount, 1500, "dp_1QdecA", psb.id,
                   p3, "2026-12-01 02:00:00"),
        report_row(month, "txn_3QdecDR01", "dispute_reversal", psb.amount, -1500, "dp_1QdecA",
                   psb.id, p3, "2026-12-01 09:30:00"),
        # A dispute on the joint NRB/HCB fee: its fee is the platform's.
        report_row(month, "txn_3QdecDP02", "dispute", -nrb.amount, 1500, "dp_1QdecB", nrb.id,
                   p3, "2026-12-01 03:00:00"),
        # P2 bounced and came back into the balance; Stripe corrected 0.37 yuan; Radar.
        report_row(month, "txn_3QdecPR01", "payout_reversal", month.p2.net, 0, month.p2.id,
                   None, p3, "2026-12-01 04:00:00"),
        report_row(month, "txn_3QdecAD01", "other_adjustment", -37, 0, "ia_1QdecC", None, p3,
                   "2026-12-01 05:00:00"),
        report_row(month, "txn_3QdecFE01", "fee", -500, 0, "fee_1QdecD", None, p3,
                   "2026-12-01 06:00:00"),
    ]  # fmt: skip
    await import_report(render(rows), "december.csv")
    after = await balances()

    def moved(code: str) -> int:
        return after[code] - before.get(code, 0)

    assert moved("platform:stripe_disputes") == nrb.amount  # PSB's came back
    assert moved("dept:PSB:fees_payable") == 1500 - 1500  # the dispute fee, refunded
    assert moved("platform:stripe_fees") == 1500 + 500
    assert moved("platform:stripe_adjustments") == 37
    # P3 pays out what these lines left in the balance (the report's nets), and P2 is
    # back from the bank: clearing ends where it was.
    p3_net = sum(int(Decimal(r["net"]) * 100) for r in rows)
    assert moved(BANK_IN_TRANSIT) == p3_net - month.p2.net
    assert moved("platform:stripe_clearing") == 0
    december = {t.idempotency_key: t for t in await stripe_postings()}
    failure = december["stripe:txn_3QdecPR01"]
    assert failure.idempotency_key == "stripe:txn_3QdecPR01"
    assert failure.external_ref == month.p2.id
    assert failure.metadata_["kind"] == "stripe_payout_failure"
    assert december["stripe:txn_3QdecDP01"].metadata_["department"] == "PSB"
    assert december[f"stripe:{p3}"].metadata_["kind"] == "stripe_payout"
    dispute_fees = [t for t in fee_postings(list(december.values())) if t.effective_at.day == 1]
    assert {t.metadata_["department"] for t in dispute_fees} == {"PSB", "NRB"}
    async with unit_of_work() as session:
        assert await ledger.verify_balances(session) == []


async def test_a_payout_arrives_at_the_bank_once(db: Any) -> None:
    async with unit_of_work() as session:
        month = await fm.build_month(session)
        await fm.import_month(session, month, problems=True)  # P1 one fen short, twice
    async with unit_of_work() as session:
        lines = await session.scalars(
            select(ExternalRecord)
            .where(ExternalRecord.source == "bank_csv")
            .order_by(ExternalRecord.external_id)
        )
        short, repeated = list(lines)
    before = await balances()

    async with unit_of_work() as session:
        arrival = await book_payout_arrival(session, month.p1.id, short.id)
    after = await balances()
    assert after["platform:bank"] - before.get("platform:bank", 0) == month.p1.net - 1
    assert after[BANK_IN_TRANSIT] - before[BANK_IN_TRANSIT] == -month.p1.net
    assert after["platform:suspense"] - before["platform:suspense"] == 1  # the missing fen
    assert arrival.idempotency_key == f"stripe:{month.p1.id}:arrived"
    assert (arrival.external_ref, arrival.external_source) == (short.external_id, "bank:CCB")
    assert arrival.metadata["difference"] == 1

    async with unit_of_work() as session:
        again = await book_payout_arrival(session, month.p1.id, short.id)
    assert again.id == arrival.id and await balances() == after
    async with unit_of_work() as session:
        with pytest.raises(Conflict) as refused:
            await book_payout_arrival(session, month.p1.id, repeated.id)
    assert refused.value.code == "payout_already_arrived"
    async with unit_of_work() as session:
        with pytest.raises(NotFound) as unknown:
            await book_payout_arrival(session, "po_1QnotBooked000", short.id)
    assert unknown.value.code == "payout_not_booked"
    assert await balances() == after


async def test_api_balance_transactions_book_like_the_report(db: Any) -> None:
    """Records as the Stripe API importer stores them (`created` in Unix seconds, the
    payout as its own balance transaction): the same keys, so the report imported
    afterwards books nothing twice."""
    async with unit_of_work() as session:
        month = await fm.build_month(session)
    psb = next(p for p in month.payments if p.department == "PSB")
    created = int(psb.succeeded_at.timestamp())
    api = [
        {"id": psb.txn_id, "object": "balance_transaction", "amount": psb.amount,
         "fee": psb.fee, "net": psb.amount - psb.fee, "currency": "cny", "created": created,
         "available_on": created + 172800, "reporting_category": "charge", "type": "charge",
         "source": {"id": psb.charge_id, "object": "charge",
                    "metadata": {"payment_id": psb.id}}},
        {"id": month.p1.txn_id, "object": "balance_transaction", "amount": -month.p1.net,
         "fee": 0, "net": -month.p1.net, "currency": "cny", "created": created + 3600,
         "available_on": created + 3600, "reporting_category": "payout", "type": "payout",
         "source": month.p1.id},
    ]  # fmt: skip
    async with unit_of_work() as session:
        import_id = new_id("imp")
        session.add(
            ReconciliationImport(
                id=import_id, source="stripe_balance", namespace="stripe", imported_by="cli:test",
                imported_at=psb.succeeded_at, lines=2, new_records=2, duplicates=0, totals={},
            )
        )  # fmt: skip
        await session.flush()
        for number, txn in enumerate(api, 1):
            row = stripe_api.line_of(number, txn, "CNY").row()
            row.update(id=new_id("rec"), import_id=import_id, source="stripe_balance",
                       namespace="stripe")  # fmt: skip
            await session.execute(insert(ExternalRecord.__table__).values(**row))
        summary = await book_stripe_records(session, import_id)
    assert summary.by_kind == {"stripe_fee": 1, "stripe_payout": 1}
    booked = {t.idempotency_key: t for t in await stripe_postings()}
    [fee] = fee_postings(list(booked.values()))
    assert fee.effective_at == psb.succeeded_at
    assert (fee.metadata_["department"], fee.metadata_["movements"]) == ("PSB", 1)
    payout = booked[f"stripe:{month.p1.id}"]
    assert payout.external_ref == month.p1.id
    assert payout.effective_at == datetime.fromtimestamp(created + 3600, UTC)
    first = await balances()
    assert first["dept:PSB:fees_payable"] - (-sum(
        p.amount for p in month.payments if p.department == "PSB"
    ) + sum(r.amount for r in month.refunds if r.department == "PSB")) == psb.fee  # fmt: skip

    await import_report(month.stripe_report())  # the other fees and P2; P1 is booked
    postings = await stripe_postings()
    assert sum(t.idempotency_key == f"stripe:{month.p1.id}" for t in postings) == 1
    fees = sum(t.metadata_["movements"] for t in fee_postings(postings))
    assert fees == len(month.payments)  # PSB's first fee came with the API, once
    assert (await balances())["platform:stripe_fees"] == sum(
        p.fee for p in month.payments if p.department != "PSB"
    )
    assert (await balances())[BANK_IN_TRANSIT] == month.p1.net + month.p2.net


async def test_fees_in_a_closed_period_refuse_the_whole_import(db: Any) -> None:
    async with unit_of_work() as session:
        month = await fm.build_month(session)
        await periods.close_period(session, department="PSB", period="2026-11", closed_by="t")
    before = await balances()
    with pytest.raises(periods.PeriodClosed):
        await import_report(month.stripe_report())
    assert await balances() == before
    assert await bookings() == []
    async with unit_of_work() as session:
        assert await session.scalar(select(func.count()).select_from(ExternalRecord)) == 0


async def test_the_ledger_keeps_its_own_department_settings(db: Any) -> None:
    async with unit_of_work() as session:
        await catalogue.create_department(
            session,
            DepartmentIn(
                code="URC", name="乌鲁木齐市公安局", timezone="Asia/Urumqi",
                stripe_fees_borne_by="department",
            ),
        )  # fmt: skip
        # Opening the department's accounts in another currency keeps its settings.
        await ledger.open_department_accounts(session, "URC", "乌鲁木齐市公安局", "USD")
    async with unit_of_work() as session:
        urc = await department_settings(session, "URC")
        unknown = await department_settings(session, "XYZ")
    assert (urc.timezone, urc.stripe_fees_borne_by, urc.known) == (
        "Asia/Urumqi",
        "department",
        True,
    )
    assert (unknown.timezone, unknown.stripe_fees_borne_by, unknown.known) == (
        "Asia/Shanghai",
        "platform",
        False,
    )
    async with unit_of_work() as session:
        await ledger.open_department_accounts(
            session, "URC", "乌鲁木齐市公安局", stripe_fees_borne_by="platform"
        )
        with pytest.raises(ValidationFailed) as refused:
            await ledger.open_department_accounts(session, "URC", "x", timezone="Mars/Olympus")
    assert refused.value.code == "invalid_timezone"
    async with unit_of_work() as session:
        urc = await department_settings(session, "URC")
    assert (urc.timezone, urc.stripe_fees_borne_by) == ("Asia/Urumqi", "platform")
