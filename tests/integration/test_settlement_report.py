"""The settlement report (issue 10): a realistic month (tests/finance_fixtures.py) —
payments booked by payments' own code, refunds, Stripe's payout report imported and
booked (fees, payouts), a bank line booked as a payout's arrival — reported per
department, in every format from the same numbers, which agree with the trial balance.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from ledger import periods
from ledger import service as ledger
from ledger.models import exceptions, external_records
from ledger.reconciliation import exceptions as reconciliation_exceptions
from ledger.reconciliation import runs
from ledger.reconciliation.booking import book_payout_arrival
from ledger.reports import formats
from ledger.reports.pdf import render_pdf
from ledger.reports.settlement import UNKNOWN_MATTER, SettlementReport, build_settlement
from onetrip.db import Database, unit_of_work
from onetrip.ids import new_id
from onetrip.money import split_by_bps
from tests.factories import auth, make_key
from tests.finance_fixtures import (
    MONTH_END,
    MONTH_START,
    FinanceMonth,
    build_month,
    import_month,
)

OPENAPI_CONFORMANCE = True

TICK = timedelta(microseconds=1)


async def make_month(*, arrive_p1: bool = True, problems: bool = False) -> FinanceMonth:
    async with unit_of_work() as session:
        month = await build_month(session)
        await import_month(session, month, problems=problems)
    if arrive_p1:
        async with unit_of_work() as session:
            bank_line = (
                await session.execute(
                    select(external_records.c.id).where(
                        external_records.c.source == "bank_csv",
                        external_records.c.amount == month.p1.net,
                    )
                )
            ).scalar_one()
            await book_payout_arrival(session, month.p1.id, bank_line)
    return month


async def report_for(department: str, date_from: date, date_to: date) -> SettlementReport:
    async with unit_of_work() as session:
        return await build_settlement(
            session, department=department, date_from=date_from, date_to=date_to
        )


async def movement_in_trial_balance(department: str, starts_at: datetime, ends_at: datetime) -> int:
    """Credits − debits of the department's accounts between two trial balances."""

    async def owed(moment: datetime) -> int:
        async with unit_of_work() as session:
            tb = await ledger.trial_balance(session, as_of=moment, scope=[department])
        return sum(line.credits - line.debits for line in tb.lines if line.department == department)

    # trial_balance counts entries effective up to and including as_of
    return await owed(ends_at - TICK) - await owed(starts_at - TICK)


def department_share(month: FinanceMonth, department: str) -> dict[str, int]:
    """payment id → the department's part of it (the fee split as payments books it)."""
    shares: dict[str, int] = {}
    for p in month.payments:
        split = [(p.department, 10_000)]
        if p.matter_code == "real-estate-transfer":
            split = [("NRB", 6000), ("HCB", 4000)]
        part = dict(split_by_bps(p.amount, split)).get(department)
        if part:
            shares[p.id] = part
    return shares


async def test_the_month_agrees_with_the_payments_made_and_with_the_trial_balance(
    db: Database,
) -> None:
    month = await make_month()
    psb = await report_for("PSB", MONTH_START, MONTH_END)
    passports = [p for p in month.payments if p.department == "PSB"]
    psb_refunds = [r for r in month.refunds if r.department == "PSB"]
    assert psb.totals.collected == sum(p.amount for p in passports)
    assert psb.totals.payments == len(passports)
    assert psb.totals.refunded == sum(r.amount for r in psb_refunds)
    assert psb.totals.refunds == len(psb_refunds)
    # PSB bears Stripe's fees itself; NRB and HCB leave them to the platform.
    assert psb.totals.fees == sum(p.fee for p in passports)
    assert psb.platform_fees == 0
    assert psb.totals.net == psb.totals.collected - psb.totals.refunded - psb.totals.fees
    assert psb.ledger_check.movement == psb.totals.net
    assert psb.totals.net == await movement_in_trial_balance("PSB", psb.starts_at, psb.ends_at)
    assert (psb.starts_at, psb.ends_at) == (
        datetime(2026, 10, 31, 16, tzinfo=UTC),
        datetime(2026, 11, 30, 16, tzinfo=UTC),
    )

    for department in ("NRB", "HCB"):
        report = await report_for(department, MONTH_START, MONTH_END)
        shares = department_share(month, department)
        assert report.totals.collected == sum(shares.values())
        assert report.totals.fees == 0
        assert report.platform_fees == (
            sum(p.fee for p in month.payments if p.department == department)
        )
        assert report.totals.net == await movement_in_trial_balance(
            department, report.starts_at, report.ends_at
        )
        assert [(m.matter_code, m.matter_name) for m in report.by_matter] == [
            ("real-estate-transfer", "存量房转移登记（一窗联办）")
        ]

    # by matter and by day add up to the totals
    assert [(m.matter_code, m.matter_name) for m in psb.by_matter] == [("passport", "普通护照签发")]
    assert psb.by_matter[0].totals.net == psb.totals.net
    assert len(psb.by_day) == 30
    assert sum(d.totals.collected for d in psb.by_day) == psb.totals.collected
    assert sum(d.totals.net for d in psb.by_day) == psb.totals.net
    assert psb.by_day[0].day == MONTH_START and psb.by_day[0].totals.payments == 1
    assert psb.by_day[-1].totals.collected == 0  # the 30th: nothing was paid

    # Stripe paid out PSB's share of both payouts; P2 has not reached the bank.
    p1_share = sum(p.amount - p.fee for p in passports if p.payout_id == month.p1.id) - sum(
        r.amount for r in psb_refunds if r.payout_id == month.p1.id
    )
    p2_share = sum(p.amount - p.fee for p in passports if p.payout_id == month.p2.id) - sum(
        r.amount for r in psb_refunds if r.payout_id == month.p2.id
    )
    assert [(p.payout_id, p.amount, p.arrived) for p in psb.payouts] == [
        (month.p1.id, p1_share, True),
        (month.p2.id, p2_share, False),
    ]
    assert (psb.paid_out, psb.in_transit) == (p1_share + p2_share, p2_share)


async def test_the_report_covers_the_period_in_the_departments_own_days(db: Database) -> None:
    month = await make_month(arrive_p1=False)
    first_half = await report_for("PSB", MONTH_START, date(2026, 11, 15))
    second_half = await report_for("PSB", date(2026, 11, 16), MONTH_END)
    whole = await report_for("PSB", MONTH_START, MONTH_END)
    assert first_half.totals.net + second_half.totals.net == whole.totals.net
    assert first_half.ledger_check.closing == second_half.ledger_check.opening
    assert [p.payout_id for p in first_half.payouts] == []  # P1 was paid on the 16th
    assert [p.payout_id for p in second_half.payouts] == [month.p1.id, month.p2.id]
    assert all(not p.arrived for p in second_half.payouts)
    one_day = await report_for("PSB", date(2026, 11, 3), date(2026, 11, 3))
    assert one_day.totals.payments == 1 and len(one_day.by_day) == 1
    assert one_day.totals.net == await movement_in_trial_balance(
        "PSB", one_day.starts_at, one_day.ends_at
    )


async def test_a_correction_after_closing_shows_in_the_open_period(db: Database) -> None:
    month = await make_month()
    async with unit_of_work() as session:
        await periods.close_period(
            session, department="PSB", period="2026-11", closed_by="cli:test"
        )
    november = await report_for("PSB", MONTH_START, MONTH_END)
    assert november.closed
    wrong = next(p for p in month.payments if p.department == "PSB")
    async with unit_of_work() as session:
        booked = await ledger.transaction_for_key(session, f"payment:{wrong.id}:succeeded")
    lines = [
        ledger.Line(ledger.department_fees_account("PSB"), 100, "CNY"),
        ledger.Line(ledger.SUSPENSE, -100, "CNY"),
    ]
    with pytest.raises(periods.PeriodClosed):
        async with unit_of_work() as session:
            await ledger.post_transaction(
                session, idempotency_key="fix-in-november", description="更正",
                lines=lines, effective_at=wrong.succeeded_at, corrects_id=booked.id,
            )  # fmt: skip
    async with unit_of_work() as session:
        correction = await ledger.post_transaction(
            session,
            idempotency_key="fix-in-december",
            description="更正 多记 1 元",
            lines=lines,
            effective_at=datetime(2026, 12, 2, 2, tzinfo=UTC),
            corrects_id=booked.id,
        )
    assert correction.corrects_id == booked.id
    after = await report_for("PSB", MONTH_START, MONTH_END)
    assert replace(november, generated_at=after.generated_at) == after  # untouched
    december = await report_for("PSB", date(2026, 12, 1), date(2026, 12, 31))
    assert not december.closed
    assert (december.totals.adjustments, december.totals.net) == (-100, -100)
    assert december.ledger_check.opening == november.ledger_check.closing
    assert december.totals.net == await movement_in_trial_balance(
        "PSB", december.starts_at, december.ends_at
    )


async def test_open_reconciling_items_carry_forward_until_resolved(db: Database) -> None:
    await make_month()
    async with unit_of_work() as session:
        for n, (on_date, status, resolved_at) in enumerate(
            (
                (date(2026, 10, 20), "open", None),  # from October, still open
                (date(2026, 11, 12), "open", None),  # November's
                (date(2026, 11, 5), "resolved", datetime(2026, 11, 20, tzinfo=UTC)),
                (date(2026, 11, 6), "resolved", datetime(2026, 12, 3, tzinfo=UTC)),
            )
        ):
            await session.execute(
                exceptions.insert().values(
                    id=new_id("rexc"),
                    run_id=new_id("rrun"),
                    reason="amount_differs",
                    status=status,
                    item_kind="ledger",
                    item_id=f"txn_item_{n}",
                    department="PSB",
                    currency="CNY",
                    amount=1_000 + n,
                    counterpart_amount=999,
                    on_date=on_date,
                    detail=f"差 1 分 #{n}",
                    candidates=[],
                    created_at=datetime(2026, 11, 1, tzinfo=UTC)
                    if on_date.month == 10
                    else datetime.combine(on_date, datetime.min.time(), tzinfo=UTC),
                    resolved_at=resolved_at,
                    resolution="accept" if resolved_at else None,
                    resolved_by="key:x" if resolved_at else None,
                    resolution_reason="ok" if resolved_at else None,
                )
            )
    november = await report_for("PSB", MONTH_START, MONTH_END)
    assert [(i.item_id, i.brought_forward) for i in november.open_items] == [
        ("txn_item_0", True),
        ("txn_item_3", False),  # resolved only in December: open at November's end
        ("txn_item_1", False),
    ]
    december = await report_for("PSB", date(2026, 12, 1), date(2026, 12, 31))
    assert [(i.item_id, i.brought_forward) for i in december.open_items] == [
        ("txn_item_0", True),
        ("txn_item_1", True),
    ]
    nrb = await report_for("NRB", MONTH_START, MONTH_END)
    assert nrb.open_items == []


async def test_the_platforms_open_items_show_in_the_reports_of_departments_they_concern(
    db: Database,
) -> None:
    """A real run over the statement with problems: P1's bank line one fen short (and
    listed twice), P2 missing. Both payouts carried PSB's and NRB's money."""
    month = await make_month(arrive_p1=False, problems=True)
    async with unit_of_work() as session:
        await runs.run(
            session, date_from=MONTH_START, date_to=MONTH_END, started_by="cli:finance-test"
        )
    november = await report_for("PSB", MONTH_START, MONTH_END)
    found = {(i.reason, i.department, i.brought_forward) for i in november.open_items}
    assert found == {("amount_differs", None, False), ("missing_in_bank", None, False)}
    missing = next(i for i in november.open_items if i.reason == "missing_in_bank")
    assert (missing.item_kind, missing.item_id, missing.amount) == (
        "payout",
        month.p2.id,
        month.p2.net,
    )
    december = await report_for("NRB", date(2026, 12, 1), date(2026, 12, 31))
    assert {(i.reason, i.brought_forward) for i in december.open_items} == {
        ("amount_differs", True),
        ("missing_in_bank", True),
    }
    async with unit_of_work() as session:
        await reconciliation_exceptions.resolve(
            session,
            missing.id,
            action="accept",
            reason="P2 到账于 12 月，下期对账",
            resolved_by="cli:finance-test",
        )
    # resolved now: no longer open at the end of today (the clock is the real one)
    today = datetime.now(UTC).astimezone(periods.zone(None)).date()
    current = await report_for("NRB", today, today)
    assert [i.reason for i in current.open_items] == ["amount_differs"]
    # November's report, looked at again, still shows what was open at its end
    again = await report_for("PSB", MONTH_START, MONTH_END)
    assert {i.reason for i in again.open_items} == {"amount_differs", "missing_in_bank"}


#: rendering does not depend on the database: these run on SQLite alone
on_sqlite = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@on_sqlite
async def test_every_format_renders_the_same_numbers(db: Database, tmp_path: Path) -> None:
    await make_month()
    report = await report_for("PSB", MONTH_START, MONTH_END)
    as_json = formats.report_dict(report)
    assert as_json["totals"]["net"] == report.totals.net
    assert as_json["paid_out"] == report.paid_out
    assert sum(d["collected"] for d in as_json["by_day"]) == report.totals.collected
    # the matter by its name as well as its code, in every format
    assert [(m["matter_code"], m["matter_name"]) for m in as_json["by_matter"]] == [
        ("passport", "普通护照签发")
    ]

    text = formats.render_csv(report).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    total = next(r for r in rows if r["section"] == "total")
    assert Decimal(total["net"]) * 100 == report.totals.net
    assert Decimal(total["collected"]) * 100 == report.totals.collected
    days = [r for r in rows if r["section"] == "day"]
    assert len(days) == len(report.by_day)
    assert sum(Decimal(r["collected"]) for r in days) * 100 == report.totals.collected
    payouts = [r for r in rows if r["section"] == "payout"]
    assert sum(Decimal(r["amount"]) for r in payouts) * 100 == report.paid_out
    assert [(r["key"], r["detail"]) for r in rows if r["section"] == "matter"] == [
        ("passport", "普通护照签发")
    ]

    book = load_workbook(io.BytesIO(formats.render_xlsx(report)))
    assert book.sheetnames == ["Summary", "By matter", "By day", "Payouts", "Open items"]
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True)}
    assert round(summary["净额 Net"] * 100) == report.totals.net
    assert round(summary["已出款 Paid out"] * 100) == report.paid_out
    assert round(summary["在途 In transit"] * 100) == report.in_transit
    by_day = list(book["By day"].iter_rows(min_row=2, values_only=True))
    assert len(by_day) == len(report.by_day)
    assert round(sum(row[1] for row in by_day) * 100) == report.totals.collected
    by_matter = list(book["By matter"].iter_rows(values_only=True))
    assert by_matter[0][:3] == ("事项 Matter", "名称 Name", "收款 Collected (CNY)")
    assert by_matter[1][:2] == ("passport", "普通护照签发")
    assert round(by_matter[1][2] * 100) == report.totals.collected
    assert book["By matter"]["C2"].number_format == book["By day"]["B2"].number_format

    pdf = render_pdf(report)
    assert pdf.startswith(b"%PDF")
    assert render_pdf(report) == pdf  # reproducible
    target = tmp_path / "settlement.pdf"
    target.write_bytes(pdf)
    extracted = (
        await asyncio.to_thread(
            subprocess.run,
            ["pdftotext", "-layout", str(target), "-"],
            capture_output=True,
            text=True,
            check=True,
        )
    ).stdout
    assert "结算报表" in extracted
    assert formats_amount(report.totals.net) in extracted
    assert formats_amount(report.in_transit) in extracted
    matters_listed = extracted.split("按事项")[1].split("按日")[0]
    assert UNKNOWN_MATTER not in matters_listed
    assert "普通护照签发 passport" in matters_listed
    # every day of the period, as in the CSV and the workbook, the empty ones included
    days_listed = extracted.split("按日")[1].split("出款")[0]
    assert any(d.totals.collected == 0 for d in report.by_day)
    assert all(f"{d.day:%Y-%m-%d}" in days_listed for d in report.by_day)


def formats_amount(amount: int) -> str:
    from onetrip.money import Money, format_amount

    return format_amount(Money(amount, "CNY"))


# --- HTTP and the CLI -------------------------------------------------------------


@on_sqlite
async def test_the_settlement_api(app_client: Any, db: Database) -> None:
    await make_month()
    psb_finance = await make_key("finance", ["PSB"])
    admin = await make_key("admin")
    params = {"department": "PSB", "date_from": "2026-11-01", "date_to": "2026-11-30"}
    as_json = await app_client.get(
        "/api/v1/reports/settlement", params=params, headers=auth(psb_finance)
    )
    assert as_json.status_code == 200, as_json.text
    body = as_json.json()
    report = await report_for("PSB", MONTH_START, MONTH_END)
    assert body["totals"]["net"] == report.totals.net
    assert body["ledger_check"]["movement"] == report.totals.net
    for fmt, media in (
        ("csv", "text/csv"),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("pdf", "application/pdf"),
    ):
        rendered = await app_client.get(
            "/api/v1/reports/settlement", params={**params, "format": fmt}, headers=auth(admin)
        )
        assert rendered.status_code == 200, rendered.text
        assert rendered.headers["content-type"].startswith(media)
        assert "settlement-PSB-2026-11-01-2026-11-30" in rendered.headers["content-disposition"]
    other = await app_client.get(
        "/api/v1/reports/settlement", params={**params, "department": "NRB"},
        headers=auth(psb_finance),
    )  # fmt: skip
    assert other.status_code == 403 and other.json()["code"] == "department_not_allowed"
    for bad, code in (
        ({"date_to": "2026-10-01"}, "invalid_report_period"),
        ({"date_to": "2028-01-01"}, "invalid_report_period"),
        ({"date_from": "2026-11-31"}, "invalid_date"),
        ({"format": "docx"}, None),
        ({"department": "XYZ"}, "department_not_found"),
    ):
        refused = await app_client.get(
            "/api/v1/reports/settlement", params={**params, **bad}, headers=auth(admin)
        )
        assert refused.status_code in (400, 404, 422), (bad, refused.text)
        if code:
            assert refused.json()["code"] == code, refused.text


@on_sqlite
async def test_the_cli(db: Database, db_url: str, tmp_path: Path) -> None:
    """`onetrip report settlement` in a process of its own, on the same database."""
    await make_month()
    report = await report_for("PSB", MONTH_START, MONTH_END)
    environment = {**os.environ, "DATABASE_URL": db_url}

    async def onetrip(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "onetrip.cli", "report", "settlement", *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=environment,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        return int(process.returncode or 0), stderr.decode()

    period = ["--department", "PSB", "--from", "2026-11-01", "--to", "2026-11-30"]
    out = tmp_path / "psb.xlsx"
    (written, written_err), (failed, failed_err) = await asyncio.gather(
        onetrip(*period, "--format", "xlsx", "--out", str(out)),
        onetrip("--department", "XYZ", "--from", "2026-11-01", "--to", "2026-11-30"),
    )
    assert written == 0, written_err
    assert load_workbook(out).sheetnames[0] == "Summary"
    assert formats_amount(report.totals.net) in written_err  # the summary table
    assert failed != 0
    assert "XYZ" in failed_err
