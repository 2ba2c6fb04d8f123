"""The licence (A4) and its cover sheet: pure drawing, data in and PDF bytes out.

Only these pages' layout lives here; fonts, the QR code, wrapping, the labelled table
and the document builder come from `onetrip.pdf`. The same data renders the same bytes
(the document's date is the licence's issue time, never the clock).

The cover sheet is a DIN 5008 form B letter head: the address block is the DIN 5008
address field (20 mm from the left edge, 45 mm from the top, 85 × 45 mm), which shows
through the window of a DL envelope (DIN 678: window 90 × 45 mm, 20 mm from the left,
15 mm from the bottom) once the A4 is folded in three at the marks (105 mm and 210 mm),
and through a C5 window envelope (the same window) once folded in half; the punch mark
sits at 148.5 mm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from reportlab.lib.units import mm

from onetrip.pdf import (
    GREY,
    INK,
    LATIN,
    LATIN_BOLD,
    RULE,
    SEAL_RED,
    Document,
    LabelledTable,
    Line,
    PageInfo,
    cjk_emphasis,
    cjk_font,
    draw_code128,
    draw_qr,
    draw_text,
    fit_text,
    qr_size,
    reserve_characters,
)

ISSUER = "OneTrip 政务服务平台"
ISSUER_EN = "OneTrip Government Services"
BEIJING = ZoneInfo("Asia/Shanghai")

MARGIN = 20 * mm
#: the printed width of the QR symbol itself (its quiet zone comes on top)
QR_WIDTH = 25 * mm
QUIET_ZONE = 4

# DIN 5008 form B, measured from the sheet's top-left corner
WINDOW_LEFT = 20 * mm
WINDOW_TOP = 45 * mm
WINDOW_WIDTH = 85 * mm
WINDOW_HEIGHT = 45 * mm
RETURN_LINE_HEIGHT = 5 * mm  # the sender's line at the top of the field
FOLD_MARKS = (105 * mm, 210 * mm)
PUNCH_MARK = 148.5 * mm


@dataclass(frozen=True)
class LicenseData:
    """Everything the licence and its cover sheet show."""

    license_id: str
    license_no: str
    title: str
    department_name: str
    holder_name: str
    #: the licence's own fields, in order: (label, value)
    fields: list[tuple[str, str]] = field(default_factory=list)
    valid_from: date | None = None
    valid_until: date | None = None
    issued_at: datetime | None = None
    verify_url: str = ""
    matter_name: str = ""
    delivery_method: str = "courier"
    #: recipient, phone, province, city, district, line1, postal_code
    address: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.issued_at is not None and self.issued_at.utcoffset() is None:
            raise ValueError("issued_at must be timezone-aware")
        if not self.verify_url:
            raise ValueError("a licence needs its verify URL (the QR code)")


def _bilingual(zh: str, en: str) -> list[Line]:
    return [Line(zh, cjk_font(), 10), Line(en, LATIN, 7, GREY)]


def _day(value: date | None) -> str:
    return f"{value:%Y年%m月%d日}" if value else "长期"


def validity_text(data: LicenseData) -> tuple[str, str]:
    """(zh, en) of the validity: `2026年12月01日 至 2032年11月30日`."""
    if data.valid_from is None and data.valid_until is None:
        return "长期有效", "No expiry"
    zh = f"{_day(data.valid_from)} 至 {_day(data.valid_until)}"
    en = f"{data.valid_from or '—'} to {data.valid_until or 'no expiry'}"
    return zh, en


def _document(
    data: LicenseData, title: str, subject: str, decorations: tuple[Any, ...] = ()
) -> Document:
    return Document(
        title=title,
        author=data.department_name,
        subject=subject,
        creator=ISSUER_EN,
        keywords=[data.license_no],
        created=data.issued_at,
        margins=(MARGIN, MARGIN, MARGIN, MARGIN),
        footer_height=14,
        decorations=decorations,
    )


# --- the licence ------------------------------------------------------------------------


def _rows(data: LicenseData) -> list[tuple[list[Line], list[Line]]]:
    font = cjk_font()
    bold, synthetic = cjk_emphasis()
    zh, en = validity_text(data)
    rows = [
        (_bilingual("持证人", "Holder"), [Line(data.holder_name, bold, 13, INK, synthetic)]),
        # a licence number may hold Chinese (浙公驾 …): never a Latin-only font for it
        (_bilingual("证照编号", "Licence No."), [Line(data.license_no, bold, 11, INK, synthetic)]),
        (_bilingual("证照名称", "Licence"), [Line(data.title, font, 10.5)]),
    ]
    if data.matter_name and data.matter_name != data.title:
        rows.append((_bilingual("办理事项", "Matter"), [Line(data.matter_name, font, 10.5)]))
    for label, value in data.fields:
        rows.append(([Line(label, font, 10)], [Line(value, font, 10.5)]))
    rows.append(
        (_bilingual("有效期限", "Valid"), [Line(zh, font, 10.5), Line(en, LATIN, 7.5, GREY)])
    )
    rows.append((_bilingual("发证机关", "Issued by"), [Line(data.department_name, font, 10.5)]))
    if data.issued_at is not None:
        local = data.issued_at.astimezone(BEIJING)
        rows.append(
            (
                _bilingual("发证日期", "Issued on"),
                [
                    Line(f"{local:%Y年%m月%d日}", font, 10.5),
                    Line(f"{local:%Y-%m-%d}", LATIN, 7.5, GREY),
                ],
            )
        )
    return rows


@functools.lru_cache(maxsize=16)
def qr_modules(data: str) -> int:
    """Modules per side of the QR code of `data` (the kernel remembers the encoding, so
    `draw_qr` does not encode it again)."""
    return qr_size(data)


def qr_side(data: str) -> float:
    """The side of the square `draw_qr` needs so the symbol prints `QR_WIDTH` wide."""
    modules = qr_modules(data)
    return QR_WIDTH * (modules + 2 * QUIET_ZONE) / modules


_VERIFY_TITLE = "真伪核验"
_VERIFY_NOTES = (
    "扫描右侧二维码即可核验本证照的真伪与当前状态（有效、已吊销或已过期）。",
    "二维码内容经数字签名，离线亦可用公开密钥核验。",
)
_VERIFY_NOTES_EN = (
    "Scan the QR code to check that this licence is genuine and still valid.",
    "The code is digitally signed (Ed25519) and can be checked offline.",
)
_SCAN_CAPTION = "扫码核验 Scan to verify"


def _draw_verification(canvas: Any, data: LicenseData, doc: Document) -> None:
    """The QR code at the bottom right with how to check it, above the page's foot."""
    font = cjk_font()
    side = qr_side(data.verify_url)
    module = side / (qr_modules(data.verify_url) + 2 * QUIET_ZONE)
    x = doc.right - side + QUIET_ZONE * module  # the symbol's right edge on the margin
    y = doc.content.bottom + 18
    draw_qr(canvas, data.verify_url, x, y, side, quiet_zone=QUIET_ZONE)
    left = doc.left
    top = y + side - QUIET_ZONE * module
    canvas.setFillColorRGB(*INK)
    bold, synthetic = cjk_emphasis()
    draw_text(canvas, left, top - 12, _VERIFY_TITLE, bold, 12, synthetic_bold=synthetic)
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, left + 54, top - 12, "Verify this licence", LATIN, 8)
    canvas.setFillColorRGB(*INK)
    room = x - left - 16
    (scan, signed), (scan_en, signed_en) = _VERIFY_NOTES, _VERIFY_NOTES_EN
    notes = [(scan, font, 9), (scan_en, LATIN, 7.5), (signed, font, 9), (signed_en, LATIN, 7.5)]
    baseline = top - 30
    for text, face, size in notes:
        canvas.setFillColorRGB(*(INK if face != LATIN else GREY))
        draw_text(canvas, left, baseline, fit_text(text, face, size, room), face, size)
        baseline -= size * 1.6
    canvas.setFillColorRGB(*GREY)
    draw_text(
        canvas,
        x + side / 2 - QUIET_ZONE * module,
        y - 4,
        _SCAN_CAPTION,
        font,
        7,
        align="centre",
    )


def _licence_footer(data: LicenseData) -> Any:
    def draw(canvas: Any, page: PageInfo) -> None:
        box = page.margins
        canvas.setStrokeColorRGB(*RULE)
        canvas.setLineWidth(0.5)
        canvas.line(box.left, box.bottom + 10, box.right, box.bottom + 10)
        canvas.setFillColorRGB(*GREY)
        draw_text(canvas, box.left, box.bottom, f"{ISSUER} · {data.license_id}", cjk_font(), 6.5)
        draw_text(canvas, box.right, box.bottom, data.license_no, cjk_font(), 6.5, align="right")

    return draw


#: what the licence's dates and numbers draw besides the holder's own: digits, the
#: date's 年月日, the validity's 至 and 长期有效 (`validity_text`, `_day`)
_DATE_TEXT = "0123456789年月日至长期有效"


def _template_text(data: LicenseData, rows: list[tuple[list[Line], list[Line]]]) -> str:
    """What every licence of this department and matter draws in the Chinese fonts,
    whoever holds it: the rows' labels, the header, the verification block, the dates'
    characters. Reserved first (`reserve_characters`), it makes the first font subset
    the same file on all of them, made and compressed once; what is the holder's own
    (name, number, the fields' values) goes to a second subset. A character left out
    here is still drawn, in that second subset: only the sharing is lost."""
    labels = (line.text for label, _ in rows for line in label)
    fixed = (data.department_name, ISSUER, data.title, data.matter_name or "", "编号 ·")
    verification = (_VERIFY_TITLE, *_VERIFY_NOTES, _SCAN_CAPTION)
    return "".join((*fixed, *labels, *verification, _DATE_TEXT))


def render_license(data: LicenseData) -> bytes:
    """The licence: one A4 page (a table too long for it continues on a second)."""
    doc = _document(
        data, f"{data.title} {data.license_no}", "证照 Licence", (_licence_footer(data),)
    )
    canvas = doc.canvas
    font = cjk_font()
    bold, synthetic = cjk_emphasis()
    rows = _rows(data)
    reserve_characters(canvas, (font, bold), _template_text(data, rows))
    centre = doc.page.width / 2
    top = doc.place(150)
    canvas.setFillColorRGB(*INK)
    draw_text(
        canvas,
        centre,
        top - 16,
        data.department_name,
        bold,
        15,
        align="centre",
        synthetic_bold=synthetic,
    )
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, centre, top - 30, ISSUER_EN, LATIN, 8, align="centre")
    canvas.setFillColorRGB(*SEAL_RED)
    title = fit_text(data.title, bold, 30, doc.width)
    draw_text(
        canvas,
        centre,
        top - 78,
        title,
        bold,
        30,
        align="centre",
        synthetic_bold=synthetic,
        char_space=6,
    )
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, centre, top - 98, "LICENCE", LATIN_BOLD, 10, align="centre", char_space=3)
    canvas.setFillColorRGB(*INK)
    draw_text(canvas, centre, top - 122, f"编号 No. {data.license_no}", font, 11, align="centre")
    rule_y = top - 140
    canvas.setStrokeColorRGB(*SEAL_RED)
    canvas.setLineWidth(1.6)
    canvas.line(doc.left, rule_y, doc.right, rule_y)
    canvas.setLineWidth(0.5)
    canvas.line(doc.left, rule_y - 3, doc.right, rule_y - 3)
    doc.skip(6)
    table = LabelledTable.of(rows, left=doc.left, width=doc.width, label_width=120)
    side = qr_side(data.verify_url)
    reserved = side + 40  # the verification block under the table
    if table.height > doc.remaining - reserved:
        table = table.with_min_row_height(26)
    doc.add(table, space_after=12)
    if doc.remaining < reserved:
        doc.new_page()
    _draw_verification(canvas, data, doc)
    return doc.render()


# --- the cover sheet --------------------------------------------------------------------


def _address_lines(data: LicenseData) -> list[tuple[str, str, float, bool]]:
    """The address field's lines, top down: (text, font, size, synthetic bold)."""
    font = cjk_font()
    bold, synthetic = cjk_emphasis()
    address = data.address or {}
    if data.delivery_method != "courier" or not address:
        return [
            (data.holder_name, bold, 13, synthetic),
            ("窗口领取", font, 11, False),
            ("请持本人身份证件到发证机关领取", font, 9.5, False),
            ("To be collected at the department's window", LATIN, 8, False),
        ]
    place = "".join(str(address.get(k) or "") for k in ("province", "city", "district"))
    lines = [
        (f"{address.get('recipient', '')}  收", bold, 13, synthetic),
        (str(address.get("phone") or ""), LATIN, 10, False),
        (place, font, 11, False),
        (str(address.get("line1") or ""), font, 11, False),
    ]
    if address.get("line2"):
        lines.append((str(address["line2"]), font, 11, False))
    if address.get("postal_code"):
        lines.append((f"邮编 {address['postal_code']}", font, 10, False))
    return lines


def _draw_address_field(canvas: Any, data: LicenseData, page_height: float) -> None:
    left = WINDOW_LEFT + 5 * mm  # inner margin: the text stays in the window when it shifts
    top = page_height - WINDOW_TOP
    width = WINDOW_WIDTH - 10 * mm
    canvas.setFillColorRGB(*GREY)
    sender = fit_text(f"寄件：{data.department_name}", cjk_font(), 7, width)
    draw_text(canvas, left, top - 3.5 * mm, sender, cjk_font(), 7)
    canvas.setStrokeColorRGB(*RULE)
    canvas.setLineWidth(0.3)
    canvas.line(left, top - RETURN_LINE_HEIGHT, left + width, top - RETURN_LINE_HEIGHT)
    y = top - RETURN_LINE_HEIGHT - 2 * mm
    bottom = top - WINDOW_HEIGHT + 2 * mm
    canvas.setFillColorRGB(*INK)
    for text, face, size, synthetic in _address_lines(data):
        if y - size * 1.25 < bottom:
            break
        y -= size * 1.25
        line = fit_text(text, face, size, width)
        draw_text(canvas, left, y, line, face, size, synthetic_bold=synthetic)


def _draw_marks(canvas: Any, page_width: float, page_height: float) -> None:
    canvas.setStrokeColorRGB(*GREY)
    canvas.setLineWidth(0.4)
    for offset in FOLD_MARKS:
        canvas.line(0, page_height - offset, 5 * mm, page_height - offset)
    canvas.line(0, page_height - PUNCH_MARK, 8 * mm, page_height - PUNCH_MARK)


def render_cover(data: LicenseData) -> bytes:
    """The cover sheet: the address in the window position, and what the envelope holds."""
    doc = _document(data, f"封面 Cover {data.license_no}", "邮寄封面 Cover sheet")
    canvas = doc.canvas
    width, height = doc.page.width, doc.page.top
    font = cjk_font()
    bold, synthetic = cjk_emphasis()
    _draw_marks(canvas, width, height)
    canvas.setFillColorRGB(*INK)
    draw_text(canvas, WINDOW_LEFT, height - 20 * mm, ISSUER, bold, 11, synthetic_bold=synthetic)
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, WINDOW_LEFT, height - 25 * mm, ISSUER_EN, LATIN, 7.5)
    _draw_address_field(canvas, data, height)

    # beside the window: the parcel's contents reference, for the packer
    info_left = 125 * mm
    top = height - WINDOW_TOP
    canvas.setFillColorRGB(*INK)
    draw_text(canvas, info_left, top - 10, "内附证照", bold, 10, synthetic_bold=synthetic)
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, info_left + 46, top - 10, "Enclosed", LATIN, 7.5)
    canvas.setFillColorRGB(*INK)
    room = width - MARGIN - info_left
    draw_text(canvas, info_left, top - 26, fit_text(data.title, font, 10, room), font, 10)
    draw_text(canvas, info_left, top - 40, fit_text(data.license_no, font, 9, room), font, 9)
    draw_text(canvas, info_left, top - 54, fit_text(data.department_name, font, 9, room), font, 9)
    draw_code128(canvas, data.license_id, info_left, top - 92, min(room, 62 * mm), 28)
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, info_left, top - 102, data.license_id, LATIN, 7)

    # under the address field, below the first fold: a short letter
    y = height - 115 * mm
    canvas.setFillColorRGB(*INK)
    letter = [
        (f"{data.holder_name}：", font, 11),
        (
            f"您申办的《{data.title}》已制证完成，随本函寄送，请查收。"
            if data.delivery_method == "courier" and data.address
            else f"您申办的《{data.title}》已制证完成，请持本人身份证件到发证机关窗口领取。",
            font,
            10.5,
        ),
        ("证照右下角二维码可用于核验真伪；如有疑问请联系发证机关。", font, 10.5),
        (
            "Your licence is enclosed. Its QR code lets anyone check that it is genuine."
            if data.delivery_method == "courier" and data.address
            else "Your licence is ready: collect it at the department with your ID card.",
            LATIN,
            8.5,
        ),
    ]
    for text, face, size in letter:
        draw_text(
            canvas, WINDOW_LEFT, y, fit_text(text, face, size, width - 2 * WINDOW_LEFT), face, size
        )
        y -= size * 2
    canvas.setFillColorRGB(*GREY)
    draw_text(canvas, width - MARGIN, 12 * mm, data.department_name, font, 8, align="right")
    return doc.render()
