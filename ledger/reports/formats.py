"""The settlement report as JSON, CSV and XLSX: each a rendering of one SettlementReport,
so the formats cannot disagree (the PDF is in ledger/reports/pdf.py).

JSON carries integer minor units, as the whole API does. CSV and XLSX are for people
and spreadsheets: amounts in major units, exactly (Decimal from the currency's
exponent, never float), with the currency beside them.

CSV: one table, every row the same columns, `section` saying what the row is —
`total` (the department), `matter` (detail = its name), `day`, `payout` (amount = its
share, detail = arrived | in_transit) and `open_item` (a reconciling item, detail =
reason and whether it was brought forward).
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from ledger.reports.settlement import SettlementReport, Totals
from onetrip.money import currency_exponent

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}

CSV_COLUMNS = (
    "section",
    "key",
    "currency",
    "collected",
    "refunded",
    "fees",
    "disputes",
    "adjustments",
    "net",
    "payments",
    "refunds",
    "amount",
    "detail",
)


def major(amount: int, currency: str) -> Decimal:
    """Minor units as an exact Decimal in major units (12345 CNY → 123.45)."""
    return Decimal(amount).scaleb(-currency_exponent(currency))


def _totals_dict(totals: Totals) -> dict[str, int]:
    return {
        "collected": totals.collected,
        "refunded": totals.refunded,
        "fees": totals.fees,
        "disputes": totals.disputes,
        "adjustments": totals.adjustments,
        "net": totals.net,
        "payments": totals.payments,
        "refunds": totals.refunds,
    }


def report_dict(report: SettlementReport) -> dict[str, Any]:
    """The JSON shape (minor units), as GET /api/v1/reports/settlement answers it, with
    dates and datetimes as objects (the encoder writes them as RFC 3339)."""
    return {
        "department": report.department,
        "department_name": report.department_name,
        "timezone": report.timezone,
        "currency": report.currency,
        "date_from": report.date_from,
        "date_to": report.date_to,
        "starts_at": report.starts_at,
        "ends_at": report.ends_at,
        "generated_at": report.generated_at,
        "closed": report.closed,
        "totals": _totals_dict(report.totals),
        "platform_fees": report.platform_fees,
        "paid_out": report.paid_out,
        "in_transit": report.in_transit,
        "by_matter": [
            {
                "matter_code": line.matter_code,
                "matter_name": line.matter_name,
                **_totals_dict(line.totals),
            }
            for line in report.by_matter
        ],
        "by_day": [{"day": line.day, **_totals_dict(line.totals)} for line in report.by_day],
        "payouts": [
            {
                "payout_id": p.payout_id,
                "paid_on": p.paid_on,
                "amount": p.amount,
                "arrived": p.arrived,
            }
            for p in report.payouts
        ],
        "open_items": [
            {
                "id": item.id,
                "reason": item.reason,
                "item_kind": item.item_kind,
                "item_id": item.item_id,
                "amount": item.amount,
                "currency": item.currency,
                "on_date": item.on_date,
                "detail": item.detail,
                "brought_forward": item.brought_forward,
                "department": item.department,
            }
            for item in report.open_items
        ],
        "ledger_check": {
            "opening": report.ledger_check.opening,
            "closing": report.ledger_check.closing,
            "movement": report.ledger_check.movement,
        },
    }


def _unit_words(currency: str) -> str:
    """What the human formats' amounts are in: "yuan (CNY), 2 decimals"."""
    name = "yuan (CNY)" if currency == "CNY" else f"{currency} major units"
    return f"{name}, {currency_exponent(currency)} decimals"


def _csv_totals(section: str, key: str, totals: Totals, currency: str) -> dict[str, Any]:
    row: dict[str, Any] = {"section": section, "key": key, "currency": currency}
    for name, value in _totals_dict(totals).items():
        row[name] = value if name in ("payments", "refunds") else major(value, currency)
    return row


def csv_rows(report: SettlementReport) -> list[dict[str, Any]]:
    """The CSV's rows (see the module docstring), amounts in major units."""
    currency = report.currency
    rows = [
        {
            **_csv_totals("total", report.department, report.totals, currency),
            "detail": (
                f"{report.department_name}; amounts in {_unit_words(currency)};"
                f" {report.date_from.isoformat()}..{report.date_to.isoformat()} {report.timezone};"
                f" paid_out={major(report.paid_out, currency)};"
                f" in_transit={major(report.in_transit, currency)};"
                f" platform_fees={major(report.platform_fees, currency)};"
                f" ledger_movement={major(report.ledger_check.movement, currency)}"
            ),
        }
    ]
    rows += [
        {**_csv_totals("matter", m.matter_code, m.totals, currency), "detail": m.matter_name or ""}
        for m in report.by_matter
    ]
    rows += [_csv_totals("day", d.day.isoformat(), d.totals, currency) for d in report.by_day]
    rows += [
        {
            "section": "payout",
            "key": p.payout_id,
            "currency": currency,
            "amount": major(p.amount, currency),
            "detail": f"{p.paid_on.isoformat()} {'arrived' if p.arrived else 'in_transit'}",
        }
        for p in report.payouts
    ]
    rows += [
        {
            "section": "open_item",
            "key": item.id,
            "currency": item.currency,
            "amount": major(item.amount, item.currency),
            "detail": (
                f"{item.reason} {item.item_kind}:{item.item_id} {item.on_date.isoformat()}"
                f"{' brought_forward' if item.brought_forward else ''}; {item.detail}"
            ),
        }
        for item in report.open_items
    ]
    return rows


def render_csv(report: SettlementReport) -> bytes:
    """UTF-8 with a BOM, so spreadsheet programs read the Chinese right."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in csv_rows(report):
        writer.writerow({name: _cell(row.get(name)) for name in CSV_COLUMNS})
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        # A matter code or detail starting like a formula is shown, never evaluated.
        return "'" + value
    return "" if value is None else value


# --- XLSX ------------------------------------------------------------------------------

_TOTAL_HEADERS = (
    ("collected", "收款 Collected"),
    ("refunded", "退款 Refunded"),
    ("fees", "手续费 Fees"),
    ("disputes", "争议 Disputes"),
    ("adjustments", "调整 Adjustments"),
    ("net", "净额 Net"),
)


def render_xlsx(report: SettlementReport) -> bytes:
    """A workbook: Summary, By matter, By day, Payouts, Open items; amounts are numbers
    in major units with the currency's places."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    currency = report.currency
    places = currency_exponent(currency)
    money_format = "#,##0" + ("." + "0" * places if places else "")
    bold = Font(bold=True)
    # Printed, every page names the department and the period, and its page number.
    page_header = (
        f"结算报表 {report.department_name}（{report.department}）"
        f" {report.date_from.isoformat()} – {report.date_to.isoformat()}"
    )
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "Summary"
    facts: list[tuple[str, Any]] = [
        ("部门 Department", f"{report.department} {report.department_name}"),
        ("期间 Period", f"{report.date_from.isoformat()} – {report.date_to.isoformat()}"),
        ("时区 Timezone", report.timezone),
        ("币种 Currency", currency),
        ("已结账 Closed", "是 yes" if report.closed else "否 no"),
    ]
    money_facts: list[tuple[str, int]] = [
        *((label, getattr(report.totals, name)) for name, label in _TOTAL_HEADERS),
        ("平台承担手续费 Platform-borne fees", report.platform_fees),
        ("已出款 Paid out", report.paid_out),
        ("在途 In transit", report.in_transit),
        ("期初余额 Opening (ledger)", report.ledger_check.opening),
        ("期末余额 Closing (ledger)", report.ledger_check.closing),
        ("账簿变动 Ledger movement", report.ledger_check.movement),
    ]
    summary.append(["结算报表 Settlement report"])
    summary["A1"].font = Font(bold=True, size=14)
    facts.append(
        ("金额单位 Amounts in", ("元 " if currency == "CNY" else "") + _unit_words(currency))
    )
    for label, value in facts:
        summary.append([label, value])
    for label, amount in money_facts:
        summary.append([label, major(amount, currency)])
        summary.cell(row=summary.max_row, column=2).number_format = money_format
    summary.append(["笔数 Payments", report.totals.payments])
    summary.append(["退款笔数 Refunds", report.totals.refunds])
    summary.column_dimensions["A"].width = 34
    summary.column_dimensions["B"].width = 28

    def table(title: str, headers: list[str], rows: list[list[Any]], money_cols: set[int]) -> None:
        sheet = book.create_sheet(title)
        sheet.append(headers)
        for cell in sheet[1]:
            cell.font = bold
        for row in rows:
            sheet.append(row)
            for col in money_cols:
                sheet.cell(row=sheet.max_row, column=col + 1).number_format = money_format
        for index in range(len(headers)):
            sheet.column_dimensions[chr(ord("A") + index)].width = 18
        sheet.freeze_panes = "A2"

    total_labels = [f"{label} ({currency})" for _, label in _TOTAL_HEADERS]
    total_cols = set(range(1, 1 + len(_TOTAL_HEADERS)))

    def amounts(totals: Totals) -> list[Any]:
        return [major(getattr(totals, name), currency) for name, _ in _TOTAL_HEADERS]

    table(
        "By matter",
        ["事项 Matter", "名称 Name", *total_labels, "笔数 Payments"],
        [
            [m.matter_code, m.matter_name or "", *amounts(m.totals), m.totals.payments]
            for m in report.by_matter
        ],
        {col + 1 for col in total_cols},
    )
    table(
        "By day",
        ["日期 Day", *total_labels, "笔数 Payments"],
        [[d.day, *amounts(d.totals), d.totals.payments] for d in report.by_day],
        total_cols,
    )
    table(
        "Payouts",
        [
            "出款 Payout",
            "日期 Paid on",
            f"部门份额 Department's share ({currency})",
            "到账 Arrived",
        ],
        [
            [
                p.payout_id,
                p.paid_on,
                major(p.amount, currency),
                "已到账 arrived" if p.arrived else "在途 in transit",
            ]
            for p in report.payouts
        ],
        {2},
    )
    table(
        "Open items",
        [
            "编号 Id",
            "原因 Reason",
            "项目 Item",
            f"金额 Amount ({currency})",
            "日期 Date",
            "结转 Brought forward",
            "说明 Detail",
        ],
        [
            [
                item.id,
                item.reason,
                f"{item.item_kind}:{item.item_id}",
                major(item.amount, item.currency),
                item.on_date,
                "是 yes" if item.brought_forward else "",
                item.detail,
            ]
            for item in report.open_items
        ],
        {3},
    )
    for sheet in book.worksheets:
        sheet.oddHeader.center.text = page_header
        sheet.oddFooter.center.text = "&P / &N"
        if sheet is not summary:
            sheet.print_title_rows = "1:1"
        for row in sheet.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cell.data_type = "s"  # a matter code or detail is text, never a formula
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- every format ---------------------------------------------------------------------


def render(report: SettlementReport, fmt: str) -> bytes:
    """The report's bytes in `fmt` (json | csv | xlsx | pdf)."""
    if fmt == "json":
        import msgspec

        from ledger.reports.schemas import settlement_out

        return msgspec.json.encode(settlement_out(report))
    if fmt == "csv":
        return render_csv(report)
    if fmt == "xlsx":
        return render_xlsx(report)
    from ledger.reports.pdf import render_pdf

    return render_pdf(report)


def file_name(report: SettlementReport, fmt: str) -> str:
    return f"settlement-{report.department}-{report.date_from}-{report.date_to}.{fmt}"
