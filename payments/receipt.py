"""The payment receipt (缴费凭证): one A4 page, Chinese first, English second.

Only this page's layout lives here; the document, fonts, QR code, wrapping, the labelled
table and the page footer come from `onetrip.pdf`, amounts and their capital form from
`onetrip.money`. Amounts are integer minor units throughout and are never formatted
through float. The same data always renders the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from onetrip.money import Money, chinese_capital, format_amount
from onetrip.pdf import (
    GREY,
    INK,
    LATIN,
    LATIN_BOLD,
    RULE,
    SEAL_RED,
    SHADE,
    Document,
    LabelledTable,
    Line,
    PageInfo,
    cjk_emphasis,
    cjk_font,
    draw_qr,
    draw_text,
    fit_text,
    page_numbers,
)

ISSUER = "OneTrip 政务缴费平台"
ISSUER_EN = "OneTrip Government Payment Platform"
BEIJING = ZoneInfo("Asia/Shanghai")

GATEWAY_LABELS: dict[str, tuple[str, str]] = {
    "stripe": ("银行卡在线支付", "Card, paid online"),
    "sandbox": ("测试支付（沙箱环境，非真实缴费）", "Sandbox test payment, not a real payment"),
    "counter": ("窗口现场缴费", "Paid at the service counter"),
}


@dataclass(frozen=True)
class ReceiptData:
    """Everything a receipt shows. Amounts are integer minor units (fen for CNY)."""

    payment_id: str
    reference: str
    matter_code: str
    matter_name: str
    department_name: str
    applicant_name: str
    quantity: int
    unit_amount: int
    amount: int
    currency: str
    paid_at: datetime
    gateway: str
    tracking_url: str
    fee_split: list[tuple[str, int]] = field(default_factory=list)
    amount_refunded: int = 0
    #: what was paid, when it differs from the fee (a payment accepted after review)
    amount_received: int | None = None
    #: the succeeded refunds, (when, amount), oldest first; they add up to amount_refunded
    refunds: list[tuple[datetime, int]] = field(default_factory=list)
    #: 1 for the first issue; a re-issue (refunds, a better font) keeps the number
    version: int = 1
    #: when this version was issued, shown from version 2 on
    issued_at: datetime | None = None

    def __post_init__(self) -> None:
        # A receipt with numbers that do not add up is worse than no receipt.
        if self.paid_at.tzinfo is None or self.paid_at.utcoffset() is None:
            raise ValueError("paid_at must be timezone-aware")
        if self.gateway not in GATEWAY_LABELS:
            raise ValueError(f"unknown gateway {self.gateway!r}")
        if self.quantity < 1 or self.unit_amount < 0:
            raise ValueError("quantity must be at least 1 and unit_amount not negative")
        if self.amount != self.quantity * self.unit_amount:
            raise ValueError("amount must equal quantity × unit_amount")
        if self.amount_received is not None and self.amount_received < 0:
            raise ValueError("amount_received cannot be negative")
        if not 0 <= self.amount_refunded <= self.paid:
            raise ValueError("amount_refunded must be between 0 and the amount paid")
        if self.fee_split and sum(part for _, part in self.fee_split) != self.paid:
            raise ValueError("fee_split must add up to the amount paid")
        if self.refunds and sum(amount for _, amount in self.refunds) != self.amount_refunded:
            raise ValueError("refunds must add up to amount_refunded")
        if any(amount <= 0 or at.utcoffset() is None for at, amount in self.refunds):
            raise ValueError("each refund needs a positive amount and a timezone-aware date")
        if self.version < 1:
            raise ValueError("version starts at 1")
        if self.issued_at is not None and self.issued_at.utcoffset() is None:
            raise ValueError("issued_at must be timezone-aware")
        Money(self.amount, self.currency)  # refuses a currency that is not ISO 4217

    @property
    def paid(self) -> int:
        """The amount paid: the fee, or what was received if that differs."""
        return self.amount if self.amount_received is None else self.amount_received

    @property
    def net_amount(self) -> int:
        return self.paid - self.amount_refunded

    @property
    def refund_status(self) -> tuple[str, str] | None:
        """(zh, en) of how much was refunded, or None when nothing was."""
        if not self.amount_refunded:
            return None
        if self.amount_refunded == self.paid:
            return "全额退款", "Fully refunded"
        return "部分退款", "Partially refunded"

    def money(self, minor: int) -> Money:
        """`minor` units in this receipt's currency."""
        return Money(minor, self.currency)

    def shown(self, minor: int) -> str:
        """`minor` units as the receipt prints them (`¥1,234.50`)."""
        return format_amount(self.money(minor), "zh-CN")


# --- geometry ---------------------------------------------------------------------------

MARGIN = 48
LABEL_WIDTH = 138
PAD = 8
HEADER_HEIGHT = 115  # issuer, title and QR code, down to the double red rule
FOOTER_HEIGHT = 68  # the notes and tracking address under the table, page number below
FOOTER_NOTES = 58  # from the bottom margin up to the footer's rule
# Row heights to try, loosest first, until everything fits on the one page:
# (a one-line summary row, a fee-split row).
SQUEEZE_STEPS = ((32, 22), (30, 21), (28, 20), (26, 18), (24, 16))
SPLIT_GAP = 12
SPLIT_TITLE_HEIGHT = 22
SPLIT_HEADER_HEIGHT = 26
#: refunds listed one a line; more are summed up in one line (the total counts them all)
MAX_REFUND_LINES = 6


def _bilingual(zh: str, en: str) -> list[Line]:
    return [Line(zh, cjk_font(), 10), Line(en, LATIN, 7, GREY)]


def _paid_at_lines(paid_at: datetime) -> list[Line]:
    local = paid_at.astimezone(BEIJING)
    return [
        Line(f"{local:%Y年%m月%d日 %H:%M:%S}（北京时间）", cjk_font(), 10.5),
        Line(f"{local:%Y-%m-%d %H:%M:%S} Beijing time (UTC+8)", LATIN, 7.5, GREY),
    ]


def _number_lines(data: ReceiptData) -> list[Line]:
    lines = [Line(data.payment_id, LATIN, 10.5)]
    if data.version > 1:
        issued = (data.issued_at or data.paid_at).astimezone(BEIJING)
        lines.append(Line(f"第 {data.version} 版，{issued:%Y年%m月%d日} 重新开具", cjk_font(), 8.5))
        lines.append(Line(f"Version {data.version}, re-issued {issued:%Y-%m-%d}", LATIN, 7, GREY))
    return lines


def _refund_lines(data: ReceiptData, status: tuple[str, str]) -> list[Line]:
    """Each refund (date and amount), then the total and whether it was all."""
    font = cjk_font()
    lines = []
    listed = data.refunds[:MAX_REFUND_LINES]
    for at, amount in listed:
        local = at.astimezone(BEIJING)
        lines.append(Line(f"{local:%Y年%m月%d日 %H:%M}  退款 {data.shown(amount)}", font, 9.5))
    if len(data.refunds) > len(listed):
        more = data.refunds[len(listed) :]
        rest = data.shown(sum(amount for _, amount in more))
        lines.append(Line(f"另有 {len(more)} 笔退款，共 {rest}", font, 9.5))
    lines.append(Line(f"合计 {data.shown(data.amount_refunded)}（{status[0]}）", font, 10.5))
    lines.append(Line(f"{status[1]}, Beijing time", LATIN, 7.5, GREY))
    return lines


def _summary_rows(data: ReceiptData) -> list[tuple[list[Line], list[Line]]]:
    font = cjk_font()
    bold, synthetic = cjk_emphasis()
    method_zh, method_en = GATEWAY_LABELS[data.gateway]
    rows = [
        (_bilingual("凭证号", "Receipt No."), _number_lines(data)),
        (_bilingual("业务流水号", "Reference"), [Line(data.reference, LATIN, 10.5)]),
        (
            _bilingual("办理事项", "Matter"),
            [Line(f"{data.matter_name}（{data.matter_code}）", font, 10.5)],
        ),
        (_bilingual("受理部门", "Department"), [Line(data.department_name, font, 10.5)]),
        (_bilingual("缴款人", "Payer"), [Line(data.applicant_name, font, 10.5)]),
        (
            _bilingual("数量 × 单价", "Quantity × unit price"),
            [Line(f"{data.quantity} × {data.shown(data.unit_amount)}", LATIN, 10.5)],
        ),
        (_bilingual("合计金额", "Total"), [Line(data.shown(data.amount), LATIN_BOLD, 13)]),
    ]
    if data.paid != data.amount:  # accepted after review: the receipt is for what was paid
        rows.append(
            (_bilingual("实际缴纳", "Amount paid"), [Line(data.shown(data.paid), LATIN_BOLD, 13)])
        )
    if data.currency == "CNY":  # only the yuan has a capital form
        words = chinese_capital(data.money(data.paid))
        rows.append(
            (_bilingual("金额大写", "Amount in words"), [Line(words, bold, 11, INK, synthetic)])
        )
    rows.append(
        (
            _bilingual("支付方式", "Payment method"),
            [Line(method_zh, font, 10.5), Line(method_en, LATIN, 7.5, GREY)],
        )
    )
    rows.append((_bilingual("缴费时间", "Paid at"), _paid_at_lines(data.paid_at)))
    status = data.refund_status
    if status is not None:
        if data.refunds:
            refunded = _refund_lines(data, status)
        else:  # the total only (a receipt made before refunds were listed one by one)
            refunded = [
                Line(f"{data.shown(data.amount_refunded)}（{status[0]}）", font, 10.5),
                Line(status[1], LATIN, 7.5, GREY),
            ]
        rows.append((_bilingual("已退款", "Refunded"), refunded))
        rows.append(
            (
                _bilingual("实收金额", "Net amount paid"),
                [Line(data.shown(data.net_amount), LATIN_BOLD, 11)],
            )
        )
    return rows


def _split_height(data: ReceiptData, row_height: float) -> float:
    if len(data.fee_split) <= 1:
        return 0
    rows = len(data.fee_split) + 1  # and the total
    return SPLIT_GAP + SPLIT_TITLE_HEIGHT + SPLIT_HEADER_HEIGHT + rows * row_height


# --- drawing ----------------------------------------------------------------------------


def _draw_header(canvas: Any, data: ReceiptData, doc: Document) -> None:
    """Issuer, title and the tracking QR code, down to the double red rule."""
    font = cjk_font()
    left, right = doc.left, doc.right
    top = doc.place(HEADER_HEIGHT)
    canvas.setFillColorRGB(*INK)
    bold, synthetic = cjk_emphasis()
    draw_text(canvas, left, top - 12, ISSUER, bold, 12, synthetic_bold=synthetic)
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, left, top - 25, ISSUER_EN, LATIN, 8)

    qr_size = 96
    draw_qr(canvas, data.tracking_url, right - qr_size + 9, top - qr_size + 9, qr_size)
    canvas.setFillColorRGB(*INK)
    qr_centre = right - qr_size / 2 + 9
    draw_text(canvas, qr_centre, top - qr_size + 2, "扫码查询办理进度", font, 7.5, align="centre")
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, qr_centre, top - qr_size - 7, "Scan to track", LATIN, 6.5, align="centre")

    centre = doc.page.width / 2
    canvas.setFillColorRGB(*SEAL_RED)
    draw_text(
        canvas,
        centre,
        top - 62,
        "缴费凭证",
        bold,
        26,
        align="centre",
        synthetic_bold=synthetic,
        char_space=8,
    )
    canvas.setFillColorRGB(*GREY)
    draw_text(
        canvas, centre, top - 79, "PAYMENT RECEIPT", LATIN_BOLD, 9.5, align="centre", char_space=2.2
    )
    status = data.refund_status
    if status is not None:  # said under the title, where nobody can miss it
        canvas.setFillColorRGB(*SEAL_RED)
        draw_text(
            canvas,
            centre,
            top - 97,
            f"已{status[0]}  {status[1].upper()}",
            font,
            9,
            align="centre",
        )

    rule_y = top - HEADER_HEIGHT + 3
    canvas.setStrokeColorRGB(*SEAL_RED)
    canvas.setLineWidth(1.6)
    canvas.line(left, rule_y, right, rule_y)
    canvas.setLineWidth(0.5)
    canvas.line(left, rule_y - 3, right, rule_y - 3)


def _draw_fee_split(canvas: Any, data: ReceiptData, doc: Document, row_height: float) -> None:
    """The joint-matter allocation table, squeezed into what is left of the page."""
    font = cjk_font()
    bold, synthetic = cjk_emphasis()
    left, right = doc.left, doc.right
    doc.skip(SPLIT_GAP)
    top = doc.cursor
    canvas.setFillColorRGB(*INK)
    draw_text(canvas, left, top - 14, "费用分配", bold, 11, synthetic_bold=synthetic)
    canvas.setFillColorRGB(*GREY)
    draw_text(
        canvas,
        left + 50,
        top - 14,
        "Fee allocation: this is a joint matter; the fee is shared between departments",
        LATIN,
        7.5,
    )
    number_width, amount_width = 44, 120
    name_x = left + number_width
    amount_x = right - amount_width
    header_top = top - SPLIT_TITLE_HEIGHT
    rows = [*data.fee_split, ("合计 Total", data.amount)]
    # One page always: squeeze the rows rather than spill onto a second page.
    space = header_top - SPLIT_HEADER_HEIGHT - doc.content.bottom
    row_height = min(row_height, space / len(rows))
    size = min(10.0, row_height * 0.5)
    canvas.setFillColorRGB(*SHADE)
    canvas.rect(
        left, header_top - SPLIT_HEADER_HEIGHT, right - left, SPLIT_HEADER_HEIGHT, stroke=0, fill=1
    )
    for x, zh, en, align in (
        (left + PAD, "序号", "No.", "left"),
        (name_x + PAD, "收款部门", "Receiving department", "left"),
        (right - PAD, "金额", "Amount", "right"),
    ):
        canvas.setFillColorRGB(*INK)
        draw_text(canvas, x, header_top - 12, zh, font, 9, align=align)
        canvas.setFillColorRGB(*GREY)
        draw_text(canvas, x, header_top - 21, en, LATIN, 6.5, align=align)
    y = header_top - SPLIT_HEADER_HEIGHT
    canvas.setStrokeColorRGB(*RULE)
    canvas.setLineWidth(0.4)
    for index, (department, part) in enumerate(rows, start=1):
        is_total = index == len(rows)
        canvas.line(left, y, right, y)
        baseline = y - row_height / 2 - size * 0.35
        canvas.setFillColorRGB(*INK)
        if not is_total:
            draw_text(canvas, left + PAD, baseline, str(index), LATIN, size)
        name_font = bold if is_total else font
        name = fit_text(department, name_font, size, amount_x - name_x - 2 * PAD)
        draw_text(
            canvas,
            name_x + PAD,
            baseline,
            name,
            name_font,
            size,
            synthetic_bold=is_total and synthetic,
        )
        amount_font = LATIN_BOLD if is_total else LATIN
        draw_text(canvas, right - PAD, baseline, data.shown(part), amount_font, size, align="right")
        y -= row_height
    canvas.line(left + number_width, header_top, left + number_width, y + row_height)
    canvas.line(amount_x, header_top, amount_x, y)
    canvas.setStrokeColorRGB(*INK)
    canvas.setLineWidth(0.9)
    canvas.rect(left, y, right - left, header_top - y, stroke=1, fill=0)
    doc.cursor = y


def _footer(data: ReceiptData) -> Any:
    """The decoration under the content: how the receipt was issued and where to track."""

    def draw(canvas: Any, page: PageInfo) -> None:
        font = cjk_font()
        left, right = page.margins.left, page.margins.right
        rule_y = page.margins.bottom + FOOTER_NOTES
        canvas.setStrokeColorRGB(*RULE)
        canvas.setLineWidth(0.5)
        canvas.line(left, rule_y, right, rule_y)
        canvas.setFillColorRGB(*INK)
        draw_text(
            canvas,
            left,
            rule_y - 14,
            "本凭证由 OneTrip 政务缴费平台电子开具。扫描右上角二维码可查询办理进度；"
            "咨询时请提供凭证号。",
            font,
            8,
        )
        canvas.setFillColorRGB(*GREY)
        draw_text(
            canvas,
            left,
            rule_y - 25,
            "Issued electronically by OneTrip. Scan the QR code at the top right to track "
            "your application; quote the receipt number in any enquiry.",
            LATIN,
            7,
        )
        label = "查询地址 Tracking: "
        width = draw_text(canvas, left, rule_y - 37, label, font, 7)
        # A long address shrinks (down to 4.5 pt) rather than leave the page.
        room = right - left - width
        size = 7.0
        while size > 4.5 and fit_text(data.tracking_url, LATIN, size, room) != data.tracking_url:
            size -= 0.5
        draw_text(canvas, left + width, rule_y - 37, data.tracking_url, LATIN, size)

    return draw


def _test_watermark(canvas: Any, page: PageInfo) -> None:
    # A decoration drawn last and translucent, so table shading cannot hide it and the
    # text shows through.
    canvas.saveState()
    canvas.setFillColorRGB(*SEAL_RED)
    canvas.setFillAlpha(0.1)
    canvas.translate(page.page.width / 2, page.page.top / 2)
    canvas.rotate(35)
    draw_text(canvas, 0, 20, "测试凭证 无效", cjk_font(), 64, align="centre")
    draw_text(canvas, 0, -50, "TEST RECEIPT · NOT VALID", LATIN_BOLD, 32, align="centre")
    canvas.restoreState()


def render_receipt(data: ReceiptData) -> bytes:
    """The receipt as a one-page A4 PDF, its Chinese text in the embedded CJK font.

    Deterministic: the same data gives the same bytes (its creation date is `paid_at`).
    """
    decorations = [_footer(data), page_numbers()]
    if data.gateway == "sandbox":
        decorations.append(_test_watermark)
    doc = Document(
        title=f"缴费凭证 Payment receipt {data.payment_id}",
        author=ISSUER,
        subject=f"{data.matter_name} {data.reference}",
        creator=ISSUER,
        created=data.paid_at,
        margins=(MARGIN, MARGIN, MARGIN, MARGIN),
        footer_height=FOOTER_HEIGHT,
        decorations=decorations,
    )
    _draw_header(doc.canvas, data, doc)
    doc.skip(14)
    table = LabelledTable.of(
        _summary_rows(data), left=doc.left, width=doc.width, label_width=LABEL_WIDTH, pad=PAD
    )
    # Tighten the rows, step by step, as far as needed to keep everything on one page.
    for min_height, split_row in SQUEEZE_STEPS:
        table = table.with_min_row_height(min_height)
        if table.height + _split_height(data, split_row) <= doc.remaining:
            break
    # Drawn where it is, not `doc.add`ed: a receipt never spills onto a second page.
    doc.cursor = table.draw(doc.canvas, doc.cursor)
    if len(data.fee_split) > 1:
        _draw_fee_split(doc.canvas, data, doc, split_row)
    return doc.render()
