"""The payment receipt (缴费凭证): one A4 page, Chinese first, English second.

`render_receipt` draws straight onto a ReportLab canvas (~5 ms a page) with the embedded
Chinese font and QR code from `onetrip.pdf`. Amounts are integer minor units throughout
and are never formatted through float.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from zoneinfo import ZoneInfo

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from onetrip.pdf import cjk_emphasis, cjk_font, draw_qr, draw_text

ISSUER = "OneTrip 政务缴费平台"
ISSUER_EN = "OneTrip Government Payment Platform"
BEIJING = ZoneInfo("Asia/Shanghai")

GATEWAY_LABELS: dict[str, tuple[str, str]] = {
    "stripe": ("银行卡在线支付", "Card, paid online"),
    "sandbox": ("测试支付（沙箱环境，非真实缴费）", "Sandbox test payment, not a real payment"),
    "counter": ("窗口现场缴费", "Paid at the service counter"),
}

# ISO 4217 currencies without minor units; every other one here has two decimals.
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "XAF", "XOF"})
_SYMBOLS = {"CNY": "¥"}

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SECTION_UNITS = ("仟", "佰", "拾", "")


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
        if not 0 <= self.amount_refunded <= self.amount:
            raise ValueError("amount_refunded must be between 0 and amount")
        if self.fee_split and sum(part for _, part in self.fee_split) != self.amount:
            raise ValueError("fee_split must add up to amount")

    @property
    def net_amount(self) -> int:
        return self.amount - self.amount_refunded


def format_amount(minor: int, currency: str) -> str:
    """`123450, "CNY"` -> `¥1,234.50`; other currencies as `EUR 12.50`. Exact: no float."""
    sign = "-" if minor < 0 else ""
    symbol = _SYMBOLS.get(currency, f"{currency} ")
    if currency in _ZERO_DECIMAL:
        return f"{sign}{symbol}{abs(minor):,}"
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{symbol}{whole:,}.{cents:02d}"


def _section_words(number: int) -> str:
    """1..9999 in capital numerals; inner runs of zeros read as one 零, trailing ones not."""
    words = []
    pending_zero = False
    for unit, digit in zip(_SECTION_UNITS, f"{number:04d}", strict=True):
        if digit == "0":
            pending_zero = bool(words)
            continue
        if pending_zero:
            words.append("零")
            pending_zero = False
        words.append(_DIGITS[int(digit)] + unit)
    return "".join(words)


def _integer_words(number: int) -> str:
    """A positive whole number in capital numerals with 万 and 亿 (亿 may repeat: 万亿)."""
    if number >= 10**8:
        high, low = divmod(number, 10**8)
        head = _integer_words(high) + "亿"
        if not low:
            return head
        return head + ("零" if low < 10**7 else "") + _integer_words(low)
    if number >= 10**4:
        high, low = divmod(number, 10**4)
        head = _section_words(high) + "万"
        if not low:
            return head
        return head + ("零" if low < 1000 else "") + _section_words(low)
    return _section_words(number)


def amount_in_chinese_words(fen: int) -> str:
    """A CNY amount in fen as the capital-numeral words of Chinese bills (大写金额).

    Follows the People's Bank rules for writing amounts: 壹拾 not 拾; one 零 for each run
    of inner zeros (壹万零伍元整); 零 after 元 when the jiao digit is zero but fen is not
    (壹佰元零伍分); 整 when the amount ends at 元 or 角. No 人民币 prefix.
    """
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("fen must be an int")
    if fen < 0:
        raise ValueError("amount cannot be negative")
    if fen == 0:
        return "零元整"
    yuan, rest = divmod(fen, 100)
    jiao, cents = divmod(rest, 10)
    words = _integer_words(yuan) + "元" if yuan else ""
    if jiao:
        words += _DIGITS[jiao] + "角"
    if cents:
        if yuan and not jiao:
            words += "零"
        words += _DIGITS[cents] + "分"
    else:
        words += "整"
    return words


# --- drawing ---------------------------------------------------------------------------

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 48
LEFT, RIGHT = MARGIN, PAGE_WIDTH - MARGIN
LABEL_WIDTH = 138
PAD = 8

INK = (0.07, 0.07, 0.09)
GREY = (0.42, 0.45, 0.5)
RULE = (0.62, 0.64, 0.68)
SHADE = (0.95, 0.95, 0.96)
SEAL_RED = (0.65, 0.1, 0.1)
LATIN = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"


@dataclass(frozen=True)
class _Line:
    text: str
    font: str
    size: float
    colour: tuple[float, float, float] = INK
    synthetic_bold: bool = False

    @property
    def leading(self) -> float:
        return self.size * 1.3


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break `text` to fit `width`: anywhere between Chinese characters, at spaces in Latin."""
    if stringWidth(text, font, size) <= width:
        return [text]
    lines: list[str] = []
    line, line_width = "", 0.0
    for char in text:
        char_width = stringWidth(char, font, size)
        if line and line_width + char_width > width:
            space = line.rfind(" ")
            if space > 0 and char.isascii() and char != " " and line[-1].isascii():
                lines.append(line[:space])
                line = line[space + 1 :]
            else:
                lines.append(line.rstrip())
                line = ""
            line_width = stringWidth(line, font, size)
            if not line and char == " ":
                continue
        line += char
        line_width += char_width
    lines.append(line)
    return lines


MAX_VALUE_LINES = 3


def _wrapped(lines: Sequence[_Line], width: float) -> list[_Line]:
    """Wrap each line of a value; past MAX_VALUE_LINES end with "…" so the page still fits."""
    out = []
    for line in lines:
        parts = _wrap(line.text, line.font, line.size, width)
        if len(parts) > MAX_VALUE_LINES:
            last = parts[MAX_VALUE_LINES - 1]
            while stringWidth(last + "…", line.font, line.size) > width:
                last = last[:-1]
            parts = [*parts[: MAX_VALUE_LINES - 1], last + "…"]
        out.extend(dataclasses.replace(line, text=part) for part in parts)
    return out


def _paid_at_lines(paid_at: datetime) -> list[_Line]:
    local = paid_at.astimezone(BEIJING)
    font = cjk_font()
    return [
        _Line(f"{local:%Y年%m月%d日 %H:%M:%S}（北京时间）", font, 10.5),
        _Line(f"{local:%Y-%m-%d %H:%M:%S} Beijing time (UTC+8)", LATIN, 7.5, GREY),
    ]


def _summary_rows(data: ReceiptData) -> list[tuple[str, str, list[_Line]]]:
    font = cjk_font()
    bold, synthetic = cjk_emphasis()
    money = partial(format_amount, currency=data.currency)
    method_zh, method_en = GATEWAY_LABELS[data.gateway]
    rows: list[tuple[str, str, list[_Line]]] = [
        ("凭证号", "Receipt No.", [_Line(data.payment_id, LATIN, 10.5)]),
        ("业务流水号", "Reference", [_Line(data.reference, LATIN, 10.5)]),
        ("办理事项", "Matter", [_Line(f"{data.matter_name}（{data.matter_code}）", font, 10.5)]),
        ("受理部门", "Department", [_Line(data.department_name, font, 10.5)]),
        ("缴款人", "Payer", [_Line(data.applicant_name, font, 10.5)]),
        (
            "数量 × 单价",
            "Quantity × unit price",
            [_Line(f"{data.quantity} × {money(data.unit_amount)}", LATIN, 10.5)],
        ),
        ("合计金额", "Total", [_Line(money(data.amount), LATIN_BOLD, 13)]),
    ]
    if data.currency == "CNY":
        words = "人民币" + amount_in_chinese_words(data.amount)
        rows.append(
            ("金额大写", "Amount in words", [_Line(words, bold, 11, synthetic_bold=synthetic)])
        )
    rows.append(
        (
            "支付方式",
            "Payment method",
            [_Line(method_zh, font, 10.5), _Line(method_en, LATIN, 7.5, GREY)],
        )
    )
    rows.append(("缴费时间", "Paid at", _paid_at_lines(data.paid_at)))
    if data.amount_refunded:
        full = data.amount_refunded == data.amount
        status = ("全额退款", "Fully refunded") if full else ("部分退款", "Partially refunded")
        rows.append(
            (
                "已退款",
                "Refunded",
                [
                    _Line(f"{money(data.amount_refunded)}（{status[0]}）", font, 10.5),
                    _Line(status[1], LATIN, 7.5, GREY),
                ],
            )
        )
        rows.append(
            ("实收金额", "Net amount paid", [_Line(money(data.net_amount), LATIN_BOLD, 11)])
        )
    return rows


def _draw_lines(canvas: Canvas, x: float, top: float, lines: Sequence[_Line]) -> None:
    y = top
    for line in lines:
        y -= line.leading
        canvas.setFillColorRGB(*line.colour)
        baseline = y + line.size * 0.28
        draw_text(
            canvas, x, baseline, line.text, line.font, line.size, synthetic_bold=line.synthetic_bold
        )


def _block_height(lines: Sequence[_Line]) -> float:
    return sum(line.leading for line in lines)


_SummaryRow = tuple[str, str, list[_Line]]


def _wrapped_summary(data: ReceiptData) -> list[_SummaryRow]:
    value_width = RIGHT - LEFT - LABEL_WIDTH - 2 * PAD
    return [(zh, en, _wrapped(value, value_width)) for zh, en, value in _summary_rows(data)]


def _row_height(lines: Sequence[_Line], min_height: float) -> float:
    return max(min_height, _block_height(lines) + min_height / 2)


def _draw_summary_table(
    canvas: Canvas, rows: Sequence[_SummaryRow], top: float, min_height: float
) -> float:
    """The labelled rows; returns the y of the table's bottom edge."""
    font = cjk_font()
    y = top
    row_edges = []
    for label_zh, label_en, lines in rows:
        height = _row_height(lines, min_height)
        canvas.setFillColorRGB(*SHADE)
        canvas.rect(LEFT, y - height, LABEL_WIDTH, height, stroke=0, fill=1)
        canvas.setFillColorRGB(*INK)
        draw_text(canvas, LEFT + PAD, y - height / 2 + 1.5, label_zh, font, 10)
        canvas.setFillColorRGB(*GREY)
        draw_text(canvas, LEFT + PAD, y - height / 2 - 9, label_en, LATIN, 7)
        block = _block_height(lines)
        _draw_lines(canvas, LEFT + LABEL_WIDTH + PAD, y - (height - block) / 2, lines)
        y -= height
        row_edges.append(y)
    canvas.setStrokeColorRGB(*RULE)
    canvas.setLineWidth(0.4)
    for edge in row_edges[:-1]:
        canvas.line(LEFT, edge, RIGHT, edge)
    canvas.line(LEFT + LABEL_WIDTH, top, LEFT + LABEL_WIDTH, y)
    canvas.setStrokeColorRGB(*INK)
    canvas.setLineWidth(0.9)
    canvas.rect(LEFT, y, RIGHT - LEFT, top - y, stroke=1, fill=0)
    return y


SPLIT_TITLE_HEIGHT = 22
SPLIT_HEADER_HEIGHT = 26


def _draw_fee_split(
    canvas: Canvas, data: ReceiptData, top: float, bottom: float, row_height: float
) -> float:
    """The joint-matter allocation table; returns the y of its bottom edge."""
    font = cjk_font()
    money = partial(format_amount, currency=data.currency)
    canvas.setFillColorRGB(*INK)
    bold, synthetic = cjk_emphasis()
    draw_text(canvas, LEFT, top - 14, "费用分配", bold, 11, synthetic_bold=synthetic)
    canvas.setFillColorRGB(*GREY)
    draw_text(
        canvas,
        LEFT + 50,
        top - 14,
        "Fee allocation: this is a joint matter; the fee is shared between departments",
        LATIN,
        7.5,
    )
    number_width, amount_width = 44, 120
    name_x = LEFT + number_width
    amount_x = RIGHT - amount_width
    header_top = top - SPLIT_TITLE_HEIGHT
    rows = [*data.fee_split, ("合计 Total", data.amount)]
    # One page always: squeeze the rows rather than spill onto a second page.
    space = header_top - SPLIT_HEADER_HEIGHT - bottom
    row_height = min(row_height, space / len(rows))
    size = min(10.0, row_height * 0.5)
    canvas.setFillColorRGB(*SHADE)
    canvas.rect(
        LEFT, header_top - SPLIT_HEADER_HEIGHT, RIGHT - LEFT, SPLIT_HEADER_HEIGHT, stroke=0, fill=1
    )
    for x, zh, en, align in (
        (LEFT + PAD, "序号", "No.", "left"),
        (name_x + PAD, "收款部门", "Receiving department", "left"),
        (RIGHT - PAD, "金额", "Amount", "right"),
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
        canvas.line(LEFT, y, RIGHT, y)
        baseline = y - row_height / 2 - size * 0.35
        canvas.setFillColorRGB(*INK)
        if not is_total:
            draw_text(canvas, LEFT + PAD, baseline, str(index), LATIN, size)
        name = department
        while stringWidth(name, font, size) > amount_x - name_x - 2 * PAD and len(name) > 1:
            name = name[:-2] + "…"
        if is_total:
            draw_text(canvas, name_x + PAD, baseline, name, bold, size, synthetic_bold=synthetic)
        else:
            draw_text(canvas, name_x + PAD, baseline, name, font, size)
        amount_font = LATIN_BOLD if is_total else LATIN
        draw_text(canvas, RIGHT - PAD, baseline, money(part), amount_font, size, align="right")
        y -= row_height
    canvas.line(LEFT + number_width, header_top, LEFT + number_width, y + row_height)
    canvas.line(amount_x, header_top, amount_x, y)
    canvas.setStrokeColorRGB(*INK)
    canvas.setLineWidth(0.9)
    canvas.rect(LEFT, y, RIGHT - LEFT, header_top - y, stroke=1, fill=0)
    return y


def _draw_header(canvas: Canvas, data: ReceiptData) -> float:
    """Issuer, title and the tracking QR code; returns the y below the header rules."""
    font = cjk_font()
    top = PAGE_HEIGHT - MARGIN
    canvas.setFillColorRGB(*INK)
    bold, synthetic = cjk_emphasis()
    draw_text(canvas, LEFT, top - 12, ISSUER, bold, 12, synthetic_bold=synthetic)
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, LEFT, top - 25, ISSUER_EN, LATIN, 8)

    qr_size = 96
    draw_qr(canvas, data.tracking_url, RIGHT - qr_size + 9, top - qr_size + 9, qr_size)
    canvas.setFillColorRGB(*INK)
    qr_centre = RIGHT - qr_size / 2 + 9
    draw_text(canvas, qr_centre, top - qr_size + 2, "扫码查询办理进度", font, 7.5, align="centre")
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, qr_centre, top - qr_size - 7, "Scan to track", LATIN, 6.5, align="centre")

    centre = PAGE_WIDTH / 2
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

    rule_y = top - 112
    canvas.setStrokeColorRGB(*SEAL_RED)
    canvas.setLineWidth(1.6)
    canvas.line(LEFT, rule_y, RIGHT, rule_y)
    canvas.setLineWidth(0.5)
    canvas.line(LEFT, rule_y - 3, RIGHT, rule_y - 3)
    return rule_y - 3


def _draw_test_watermark(canvas: Canvas) -> None:
    # Drawn last and translucent, so table shading cannot hide it and text shows through.
    canvas.saveState()
    canvas.setFillColorRGB(*SEAL_RED)
    canvas.setFillAlpha(0.1)
    canvas.translate(PAGE_WIDTH / 2, PAGE_HEIGHT / 2)
    canvas.rotate(35)
    draw_text(canvas, 0, 20, "测试凭证 无效", cjk_font(), 64, align="centre")
    draw_text(canvas, 0, -50, "TEST RECEIPT · NOT VALID", LATIN_BOLD, 32, align="centre")
    canvas.restoreState()


FOOTER_TOP = MARGIN + 58


def _draw_footer(canvas: Canvas, data: ReceiptData) -> None:
    font = cjk_font()
    canvas.setStrokeColorRGB(*RULE)
    canvas.setLineWidth(0.5)
    canvas.line(LEFT, FOOTER_TOP, RIGHT, FOOTER_TOP)
    canvas.setFillColorRGB(*INK)
    draw_text(
        canvas,
        LEFT,
        FOOTER_TOP - 14,
        "本凭证由 OneTrip 政务缴费平台电子开具。扫描右上角二维码可查询办理进度；"
        "咨询时请提供凭证号。",
        font,
        8,
    )
    canvas.setFillColorRGB(*GREY)
    draw_text(
        canvas,
        LEFT,
        FOOTER_TOP - 25,
        "Issued electronically by OneTrip. Scan the QR code at the top right to track "
        "your application; quote the receipt number in any enquiry.",
        LATIN,
        7,
    )
    url = data.tracking_url
    size = 7.0
    label = "查询地址 Tracking: "
    room = RIGHT - LEFT - stringWidth(label, font, size)
    while stringWidth(url, LATIN, size) > room and size > 4.5:
        size -= 0.5
    width = draw_text(canvas, LEFT, FOOTER_TOP - 37, label, font, 7)
    draw_text(canvas, LEFT + width, FOOTER_TOP - 37, url, LATIN, size)
    draw_text(canvas, RIGHT, MARGIN - 4, "第 1 页 / 共 1 页  Page 1 of 1", font, 7, align="right")


def render_receipt(data: ReceiptData) -> bytes:
    """The receipt as a one-page A4 PDF, its Chinese text in the embedded CJK font."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1)
    canvas.setTitle(f"缴费凭证 Payment receipt {data.payment_id}")
    canvas.setAuthor(ISSUER)
    canvas.setSubject(f"{data.matter_name} {data.reference}")
    canvas.setCreator(ISSUER)
    y = _draw_header(canvas, data) - 14
    rows = _wrapped_summary(data)
    split = len(data.fee_split) > 1
    bottom = FOOTER_TOP + 10
    # Tighten the rows, step by step, as far as needed to keep everything on one page.
    for min_height, split_row in ((32, 22), (30, 21), (28, 20), (26, 18), (24, 16)):
        split_height = 12 + SPLIT_TITLE_HEIGHT + SPLIT_HEADER_HEIGHT
        split_height = split_height + (len(data.fee_split) + 1) * split_row if split else 0
        summary_height = sum(_row_height(lines, min_height) for *_, lines in rows)
        if y - summary_height - split_height >= bottom:
            break
    y = _draw_summary_table(canvas, rows, y, min_height)
    if split:
        _draw_fee_split(canvas, data, y - 12, bottom, split_row)
    _draw_footer(canvas, data)
    if data.gateway == "sandbox":
        _draw_test_watermark(canvas)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
