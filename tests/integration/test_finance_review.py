"""The finance review (issue 10): corrections read back with the link to what they
correct, the settlement report's human formats (yuan with two decimals, headings, the
department and the period on every page), and the service's public names."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from ledger import service as ledger
from ledger.reports import formats
from ledger.service import STRIPE_CLEARING, Line, department_fees_account
from onetrip.db import unit_of_work
from tests.factories import auth, make_key
from tests.finance_fixtures import MONTH_END, MONTH_START
from tests.integration.test_settlement_report import make_month, report_for

OPENAPI_CONFORMANCE = True

PSB_FEES = department_fees_account("PSB")


async def post_wrong_and_its_correction() -> tuple[str, str]:
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, "PSB", "市公安局")
        wrong = await ledger.post_transaction(
            session,
            idempotency_key="payment:pay_wrong:succeeded",
            description="普通护照 (pay_wrong)",
            lines=[Line(STRIPE_CLEARING, 12_000, "CNY"), Line(PSB_FEES, -12_000, "CNY")],
        )
        correction = await ledger.post_transaction(
            session,
            idempotency_key="correction:pay_wrong",
            description="更正 pay_wrong：多记 1.00 元",
            lines=[Line(PSB_FEES, 100, "CNY"), Line(ledger.SUSPENSE, -100, "CNY")],
            corrects_id=wrong.id,
        )
    return wrong.id, correction.id


async def test_a_correction_read_back_names_what_it_corrects(db: Any) -> None:
    wrong_id, correction_id = await post_wrong_and_its_correction()
    async with db.session() as session:
        read = await ledger.get_transaction(session, correction_id)
        by_key = await ledger.transaction_for_key(session, "correction:pay_wrong")
        original = await ledger.get_transaction(session, wrong_id)
    assert read.corrects_id == wrong_id and by_key.corrects_id == wrong_id
    assert original.corrects_id is None


async def test_the_transaction_view_shows_corrects_id(app_client: Any) -> None:
    wrong_id, correction_id = await post_wrong_and_its_correction()
    finance = await make_key("finance", departments=["PSB"])
    answer = await app_client.get(
        f"/api/v1/ledger/transactions/{correction_id}", headers=auth(finance)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["corrects_id"] == wrong_id
    original = await app_client.get(
        f"/api/v1/ledger/transactions/{wrong_id}", headers=auth(finance)
    )
    assert original.json()["corrects_id"] is None


# --- the settlement report as finance staff open it -------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_every_page_and_sheet_names_the_department_the_period_and_the_unit(
    db: Any, tmp_path: Path
) -> None:
    await make_month()
    report = await report_for("NRB", MONTH_START, MONTH_END)
    name, period = report.department_name, f"{MONTH_START}–{MONTH_END}"

    book = load_workbook(io.BytesIO(formats.render_xlsx(report)))
    for sheet in book.worksheets:
        printed = sheet.oddHeader.center.text or ""
        assert name in printed and "NRB" in printed and MONTH_START.isoformat() in printed
        assert MONTH_END.isoformat() in printed, sheet.title
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True)}
    assert "yuan" in summary["金额单位 Amounts in"]
    headings = [cell.value for cell in book["By day"][1]]
    assert "收款 Collected (CNY)" in headings and "净额 Net (CNY)" in headings
    payout_heading = book["Payouts"]["C1"].value
    assert "share" in payout_heading.lower()  # the department's share, not the payout's amount
    assert round(book["Payouts"]["C2"].value * 100) == report.payouts[0].amount

    text = formats.render_csv(report).decode("utf-8-sig")
    total = next(r for r in csv.DictReader(io.StringIO(text)) if r["section"] == "total")
    assert name in total["detail"] and "yuan" in total["detail"]

    target = tmp_path / "settlement.pdf"
    target.write_bytes(formats.render(report, "pdf"))
    extracted = await asyncio.to_thread(
        subprocess.run,
        ["pdftotext", "-layout", str(target), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    pages = extracted.stdout.split("\f")
    pages = [page for page in pages if page.strip()]
    assert len(pages) >= 2
    for page in pages:
        assert name in page and period in page, page[:300]


# --- access: a finance key bound to departments sees only those -------------------------


async def test_a_department_bound_finance_key_reaches_only_its_departments(
    app_client: Any,
) -> None:
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, "PSB", "市公安局")
        await ledger.open_department_accounts(session, "AMR", "市场监管局")
    psb = auth(await make_key("finance", departments=["PSB"]))
    admin = auth(await make_key("admin"))
    november = {"date_from": "2026-11-01", "date_to": "2026-11-30"}

    async def code_of(answer: Any) -> tuple[int, str | None]:
        body = answer.json()
        return answer.status_code, body.get("code") if isinstance(body, dict) else None

    refused = [
        await app_client.post(
            "/api/v1/ledger/periods", json={"department": "AMR", "period": "2020-01"}, headers=psb
        ),
        await app_client.get("/api/v1/ledger/periods", params={"department": "AMR"}, headers=psb),
        await app_client.get(
            "/api/v1/reports/settlement", params={"department": "AMR", **november}, headers=psb
        ),
        await app_client.post(
            "/api/v1/reconciliation/runs", json={**november, "department": "AMR"}, headers=psb
        ),
        await app_client.post("/api/v1/reconciliation/runs", json=november, headers=psb),
        await app_client.get(
            "/api/v1/reconciliation/exceptions", params={"department": "AMR"}, headers=psb
        ),
        # a department it does not cover is refused before it is looked up (no hint)
        await app_client.get(
            "/api/v1/reports/settlement", params={"department": "NOPE", **november}, headers=psb
        ),
    ]
    for answer in refused:
        assert await code_of(answer) == (403, "department_not_allowed"), answer.text

    closed = await app_client.post(
        "/api/v1/ledger/periods", json={"department": "AMR", "period": "2020-01"}, headers=admin
    )
    assert closed.status_code == 201, closed.text
    platform_run = await app_client.post(
        "/api/v1/reconciliation/runs", json=november, headers=admin
    )
    assert platform_run.status_code == 201, platform_run.text
    own_run = await app_client.post(
        "/api/v1/reconciliation/runs", json={**november, "department": "PSB"}, headers=psb
    )
    assert own_run.status_code == 201, own_run.text

    periods_seen = await app_client.get("/api/v1/ledger/periods", headers=psb)
    assert periods_seen.json()["data"] == []
    runs_seen = await app_client.get("/api/v1/reconciliation/runs", headers=psb)
    assert [run["id"] for run in runs_seen.json()["data"]] == [own_run.json()["id"]]
    hidden = await app_client.get(
        f"/api/v1/reconciliation/runs/{platform_run.json()['id']}", headers=psb
    )
    assert hidden.status_code == 404, hidden.text


def test_the_service_exports_every_account_code_and_the_period_checks() -> None:
    """Other domains import the ledger through ledger.service only: every account code
    ledger/accounts.py defines and the closed-period checks writers must call are there."""
    from ledger import accounts, periods

    codes = {
        name
        for name, value in vars(accounts).items()
        if name.isupper() and isinstance(value, str) and value.startswith("platform:")
    }
    needed = codes | {"refuse_closed", "refuse_closed_transactions", "close_period"}
    needed |= {"PeriodClosed", "first_open_moment", "department_settings"}
    assert needed <= set(ledger.__all__)
    assert ledger.refuse_closed is periods.refuse_closed
    assert all(getattr(ledger, name) is getattr(accounts, name) for name in codes)
