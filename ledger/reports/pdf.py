"""The settlement report as a PDF (A4, Chinese first, English second), with a bar chart
of daily collections drawn by reportlab.graphics.

Only this report's layout lives here: the document, fonts, wrapping, the labelled
table and page numbers come from the kernel's `onetrip.pdf`. Every number is the
SettlementReport's, formatted exactly with `onetrip.money.format_amount` (the chart's
bar heights are the only floats, and only positions on the page).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from reportlab.graphics import renderPDF
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors

from ledger.reports.settlement import SettlementReport, Totals
from onetrip.money import Money, currency_exponent, format_amount
from onetrip.pdf import (
    GREY,
    INK,
    LATIN,
    RULE,
    SHADE,
    Document,
    LabelledTable,
    Line,
    PageInfo,
    cjk_emphasis,
    cjk_font,
    draw_text,
    fit_text,
    page_numbers,
)

TITLE = "结算报表"
TITLE_EN = "Settlement report"
ISSUER = "OneTrip 政务缴费平台"
BAR = colors.Color(0.16, 0.35, 0.62)


@dataclass(frozen=True)
class Column:
    header: str
    width: float
    align: str = "left"  # left | right


@dataclass(frozen=True)
class GridTable:
    """A ruled table whose header row repeats on every page it continues on."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]
    left: float
    size: float = 8
    row_height: float = 15
    bold_last: bool = False  # a totals row

    @property
    def height(self) -> float:
        return self.row_height * (len(self.rows) + 1)

    def split(self, available: float) -> tuple[GridTable | None, GridTable | None]:
        fits = int(available // self.row_height) - 1  # the header comes along
        if fits <= 0:
            return None, self
        if fits >= len(self.rows):
            return self, None
        head = replace(self, rows=self.rows[:fits], bold_last=False)
        return head, replace(self, rows=self.rows[fits:])

    def draw(self, canvas: Any, top: float) -> float:
        width = sum(c.width for c in self.columns)
        font = cjk_font()
        bold, synthetic = cjk_emphasis()
        canvas.setFillColorRGB(*SHADE)
        canvas.rect(self.left, top - self.row_height, width, self.row_height, stroke=0, fill=1)
        y = top
        for index, cells in enumerate([tuple(c.header for c in self.columns), *self.rows]):
            baseline = y - self.row_height + (self.row_height - self.size) / 2 + 1.5
            strong = index == 0 or (self.bold_last and index == len(self.rows))
            x = self.left
            canvas.setFillColorRGB(*INK)
            for column, text in zip(self.columns, cells, strict=True):
                face = bold if strong else font
                shown = fit_text(text, face, self.size, column.width - 8)
                anchor = x + column.width - 4 if column.align == "right" else x + 4
                draw_text(
                    canvas,
                    anchor,
                    baseline,
                    shown,
                    face,
                    self.size,
                    align=column.align,
                    synthetic_bold=strong and synthetic,
                )
                x += column.width
            y -= self.row_height
            canvas.setStrokeColorRGB(*RULE)
            canvas.setLineWidth(0.4)
            canvas.line(self.left, y, self.left + width, y)
        canvas.setStrokeColorRGB(*INK)
        canvas.setLineWidth(0.8)
        canvas.rect(self.left, y, width, top - y, stroke=1, fill=0)
        return y


@dataclass(frozen=True)
class Heading:
    zh: str
    en: str
    left: float

    @property
    def height(self) -> float:
        return 26

    def draw(self, canvas: Any, top: float) -> float:
        bold, synthetic = cjk_emphasis()
        canvas.setFillColorRGB(*INK)
        width = draw_text(canvas, self.left, top - 16, self.zh, bold, 12, synthetic_bold=synthetic)
        canvas.setFillColorRGB(*GREY)
        draw_text(canvas, self.left + width + 8, top - 16, self.en, LATIN, 8.5)
        return top - self.height


@dataclass(frozen=True)
class Chart:
    """Daily collections as bars: a reportlab.graphics drawing placed in the flow."""

    drawing: Drawing
    left: float

    @property
    def height(self) -> float:
        return float(self.drawing.height)

    def draw(self, canvas: Any, top: float) -> float:
        renderPDF.draw(self.drawing, canvas, self.left, top - self.height)
        return top - self.height


def daily_chart(report: SettlementReport, width: float, height: float = 170) -> Drawing:
    """A bar per day of the amount collected (major units), days labelled by number."""
    drawing = Drawing(width, height)
    chart = VerticalBarChart()
    chart.x, chart.y = 46, 28
    chart.width, chart.height = width - 60, height - 52
    scale = 10 ** currency_exponent(report.currency)
    values = [line.totals.collected / scale for line in report.by_day]
    chart.data = [values or [0]]
    chart.bars[0].fillColor = BAR
    chart.bars[0].strokeColor = None
    chart.valueAxis.valueMin = 0
    top = max([*values, 0])
    chart.valueAxis.valueMax = top * 1.15 if top > 0 else 1
    chart.valueAxis.labels.fontName = LATIN
    chart.valueAxis.labels.fontSize = 6.5
    chart.valueAxis.labelTextFormat = "{:,.0f}".format
    chart.valueAxis.gridStrokeColor = colors.Color(*SHADE)
    chart.valueAxis.visibleGrid = True
    chart.categoryAxis.categoryNames = [f"{line.day.day}" for line in report.by_day]
    chart.categoryAxis.labels.fontName = LATIN
    chart.categoryAxis.labels.fontSize = 6
    step = max(1, len(values) // 16)  # at most ~16 day labels, so they stay legible
    chart.categoryAxis.categoryNames = [
        name if n % step == 0 else "" for n, name in enumerate(chart.categoryAxis.categoryNames)
    ]
    chart.barSpacing = 0.5
    chart.groupSpacing = 2
    drawing.add(chart)
    drawing.add(
        String(
            46,
            height - 12,
            f"每日收款（{report.currency}）",
            fontName=cjk_font(),
            fontSize=8.5,
            fillColor=colors.Color(*INK),
        )
    )
    drawing.add(
        String(
            46 + 9 * 8.5,
            height - 12,
            "Collected per day",
            fontName=LATIN,
            fontSize=7,
            fillColor=colors.Color(*GREY),
        )
    )
    return drawing


def _pair(zh: str, en: str) -> list[Line]:
    return [Line(zh, cjk_font(), 9.5), Line(en, LATIN, 6.5, GREY)]


def render_pdf(report: SettlementReport) -> bytes:
    """The report as PDF bytes; the same report renders the same bytes."""
    currency = report.currency

    def shown(amount: int) -> str:
        return format_amount(Money(amount, currency))

    def header(canvas: Any, page: PageInfo) -> None:
        box = page.margins
        canvas.setFillColorRGB(*GREY)
        # Every page says whose money and which days, so a loose page still reads alone.
        text = (
            f"{ISSUER} · {TITLE} · {report.department_name}（{report.department}） · "
            f"{report.date_from}–{report.date_to} {report.timezone} · 金额单位：元 {currency}"
        )
        draw_text(canvas, box.left, box.top - 8, text, cjk_font(), 7)
        canvas.setStrokeColorRGB(*RULE)
        canvas.setLineWidth(0.4)
        canvas.line(box.left, box.top - 13, box.right, box.top - 13)

    document = Document(
        title=(
            f"{TITLE} {report.department_name}（{report.department}）"
            f" {report.date_from}–{report.date_to}"
        ),
        author=ISSUER,
        subject=f"{TITLE_EN} {report.department} {report.date_from} to {report.date_to}",
        created=report.generated_at,
        margins=(40, 40, 44, 40),
        header_height=20,
        footer_height=10,
        decorations=[header, page_numbers()],
    )
    left, width = document.left, document.width
    bold, synthetic = cjk_emphasis()

    # Title
    top = document.place(48)
    canvas = document.canvas
    canvas.setFillColorRGB(*INK)
    draw_text(canvas, left, top - 20, TITLE, bold, 18, synthetic_bold=synthetic)
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, left + 80, top - 20, TITLE_EN, LATIN, 10)
    subtitle = (
        f"{report.department_name}（{report.department}）  "
        f"{report.date_from:%Y年%m月%d日} 至 {report.date_to:%Y年%m月%d日}  {report.timezone}"
    )
    canvas.setFillColorRGB(*INK)
    draw_text(canvas, left, top - 38, subtitle, cjk_font(), 9.5)

    totals = report.totals
    summary_rows = [
        (_pair("收款", "Collected"), [Line(shown(totals.collected), LATIN, 10)]),
        (_pair("退款", "Refunded"), [Line(shown(totals.refunded), LATIN, 10)]),
        (
            _pair("部门承担手续费", "Fees borne by the department"),
            [Line(shown(totals.fees), LATIN, 10)],
        ),
        (_pair("争议", "Disputes"), [Line(shown(totals.disputes), LATIN, 10)]),
        (_pair("调整", "Adjustments"), [Line(shown(totals.adjustments), LATIN, 10)]),
        (
            _pair("净额", "Net"),
            [Line(shown(totals.net), LATIN, 11, INK, synthetic_bold=True)],
        ),
        (_pair("已出款", "Paid out by Stripe"), [Line(shown(report.paid_out), LATIN, 10)]),
        (_pair("在途", "In transit to the bank"), [Line(shown(report.in_transit), LATIN, 10)]),
        (
            _pair("平台承担手续费", "Fees borne by the platform"),
            [Line(shown(report.platform_fees), LATIN, 10)],
        ),
        (
            _pair("账簿核对", "Ledger check (movement of its accounts)"),
            [
                Line(
                    f"{shown(report.ledger_check.opening)} → {shown(report.ledger_check.closing)}"
                    f"（变动 {shown(report.ledger_check.movement)}）",
                    cjk_font(),
                    9,
                )
            ],
        ),
        (
            _pair("笔数", "Payments / refunds"),
            [Line(f"{totals.payments} / {totals.refunds}", LATIN, 10)],
        ),
        (
            _pair("结账状态", "Period closed"),
            [Line("已结账 closed" if report.closed else "未结账 open", cjk_font(), 9.5)],
        ),
    ]
    document.add(
        LabelledTable.of(summary_rows, left=left, width=width, label_width=170, min_row_height=24),
        space_after=14,
    )
    document.add(Chart(daily_chart(report, width), left), space_after=10)

    amount_cols = [
        Column("收款 Collected", 74, "right"),
        Column("退款 Refunded", 70, "right"),
        Column("手续费 Fees", 64, "right"),
        Column("净额 Net", 78, "right"),
        Column("笔数 Count", 48, "right"),
    ]

    def amounts(t: Totals) -> tuple[str, ...]:
        return (shown(t.collected), shown(t.refunded), shown(t.fees), shown(t.net), str(t.payments))

    first_width = width - sum(c.width for c in amount_cols)
    document.add(Heading("按事项", "By matter", left))
    document.add(
        GridTable(
            columns=(Column("事项 Matter", first_width), *amount_cols),
            rows=(
                *((m.label, *amounts(m.totals)) for m in report.by_matter),
                ("合计 Total", *amounts(totals)),
            ),
            left=left,
            bold_last=True,
        ),
        space_after=12,
    )
    document.add(Heading("按日", "By day", left))
    document.add(
        GridTable(
            columns=(Column("日期 Day", first_width), *amount_cols),
            # Every day of the period, as in the CSV and the workbook: a day with nothing
            # shows its zeros rather than being missing from the list.
            rows=tuple((f"{d.day:%Y-%m-%d}", *amounts(d.totals)) for d in report.by_day)
            or (("—", "", "", "", "", ""),),
            left=left,
        ),
        space_after=12,
    )
    document.add(Heading("出款", "Payouts", left))
    document.add(
        GridTable(
            columns=(
                Column("出款 Payout", width - 250),
                Column("日期 Paid on", 80),
                Column("部门份额 Share", 90, "right"),
                Column("到账 Bank", 80),
            ),
            rows=tuple(
                (
                    p.payout_id,
                    f"{p.paid_on:%Y-%m-%d}",
                    shown(p.amount),
                    "已到账" if p.arrived else "在途",
                )
                for p in report.payouts
            )
            or (("—", "", "", ""),),
            left=left,
        ),
        space_after=12,
    )
    document.add(Heading("未达项（结转）", "Open reconciling items, carried forward", left))
    document.add(_open_items_table(report, left, width), space_after=6)
    return document.render()


def _open_items_table(report: SettlementReport, left: float, width: float) -> GridTable:
    rows: Sequence[tuple[str, ...]] = tuple(
        (
            f"{item.on_date:%Y-%m-%d}",
            item.reason,
            f"{item.item_kind}:{item.item_id}",
            format_amount(Money(item.amount, item.currency)),
            ("上期结转" if item.brought_forward else "本期")
            + ("·平台" if item.department is None else ""),
            item.detail,
        )
        for item in report.open_items
    ) or (("—", "", "", "", "", ""),)
    return GridTable(
        columns=(
            Column("日期 Date", 62),
            Column("原因 Reason", 88),
            Column("项目 Item", 110),
            Column("金额 Amount", 70, "right"),
            Column("来源 From", 64),
            Column("说明 Detail", width - 394),
        ),
        rows=tuple(rows),
        left=left,
    )
