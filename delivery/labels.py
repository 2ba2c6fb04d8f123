"""The parcel label (100 × 150 mm) and a partner's daily manifest (A4), drawn with the
kernel's PDF toolkit. Pure drawing: callers pass what to print, nothing is read here.

The label carries the tracking number as Code 128 (scanned by the courier) and in
print, the sender department and the recipient's name, phone and address. The manifest
is the hand-over list of one partner's local day: every parcel's tracking number,
recipient and district, the count, and lines for both sides to sign; numbered pages.
The same input gives the same bytes. `label_for` / `manifest_for` gather what to draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.models import CourierPartner, Dispatch, License
from onetrip.pdf import (
    GREY,
    INK,
    LATIN,
    LATIN_BOLD,
    RULE,
    SHADE,
    Document,
    PageInfo,
    cjk_emphasis,
    cjk_font,
    draw_code128,
    draw_text,
    fit_text,
    page_numbers,
    wrap_text,
)
from payments.models import Department

ISSUER = "OneTrip 政务寄递"
LABEL_SIZE = (100 * mm, 150 * mm)


@dataclass(frozen=True)
class LabelData:
    tracking_number: str
    partner_name: str
    sender_department: str
    recipient: str
    phone: str
    address: Mapping[str, Any]
    license_no: str
    handover_date: date
    created_at: datetime


def full_address(address: Mapping[str, Any]) -> str:
    parts = [address.get(k) for k in ("province", "city", "district", "line1", "line2")]
    return "".join(str(p) for p in parts if p)


def masked_phone(phone: str | None) -> str:
    """138****8000: the label travels through many hands (the track page masks it too)."""
    digits = phone or ""
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 8 else digits


def label_pdf(data: LabelData) -> bytes:
    """One 100 × 150 mm page: barcode on top, then sender, recipient and address."""
    doc = Document(
        title=f"运单 {data.tracking_number}",
        author=ISSUER,
        subject=f"{data.partner_name} {data.tracking_number}",
        created=data.created_at,
        pagesize=LABEL_SIZE,
        margins=(6 * mm, 6 * mm, 6 * mm, 6 * mm),
    )
    c = doc.canvas
    left, right, width = doc.left, doc.right, doc.width
    font = cjk_font()
    bold, synthetic = cjk_emphasis()
    top = doc.content.top
    c.setFillColorRGB(*INK)
    draw_text(c, left, top - 12, data.partner_name, bold, 12, synthetic_bold=synthetic)
    draw_text(c, right, top - 12, data.handover_date.isoformat(), LATIN, 8, align="right")
    # Code 128 with ~10 modules of quiet zone either side (the drawing has none).
    bar_top = top - 20
    bar_height = 22 * mm
    quiet = 6 * mm
    draw_code128(
        c, data.tracking_number, left + quiet, bar_top - bar_height, width - 2 * quiet, bar_height
    )
    draw_text(
        c,
        (left + right) / 2,
        bar_top - bar_height - 13,
        data.tracking_number,
        LATIN_BOLD,
        13,
        align="centre",
    )
    y = bar_top - bar_height - 24
    c.setStrokeColorRGB(*RULE)
    c.setLineWidth(0.8)
    c.line(left, y, right, y)

    def section(y: float, label: str, lines: Sequence[tuple[str, str, float]]) -> float:
        c.setFillColorRGB(*GREY)
        draw_text(c, left, y - 10, label, font, 7.5)
        y -= 14
        c.setFillColorRGB(*INK)
        for text, face, size in lines:
            for part in wrap_text(text, face, size, width):
                y -= size + 3
                draw_text(c, left, y, part, face, size)
        return y - 6

    y = section(
        y,
        "收件人 To",
        [
            (f"{data.recipient}  {masked_phone(data.phone)}", bold, 14),
            (full_address(data.address), font, 11),
            *(
                [(f"邮编 {data.address['postal_code']}", font, 9)]
                if data.address.get("postal_code")
                else []
            ),
        ],
    )
    c.line(left, y, right, y)
    y = section(y, "寄件人 From", [(data.sender_department, font, 10.5), (ISSUER, font, 8)])
    c.line(left, y, right, y)
    c.setFillColorRGB(*GREY)
    draw_text(c, left, doc.content.bottom + 2, f"证照编号 {data.license_no}", font, 7.5)
    draw_text(c, right, doc.content.bottom + 2, "政务证照 请当面签收", font, 7.5, align="right")
    return doc.render()


@dataclass(frozen=True)
class ManifestLine:
    tracking_number: str
    recipient: str
    city: str
    district: str
    sender_department: str


COLUMNS = (  # (heading, share of the width)
    ("序号 No.", 0.08),
    ("运单号 Tracking no.", 0.25),
    ("收件人 Recipient", 0.2),
    ("区县 District", 0.25),
    ("寄件部门 Sender", 0.22),
)
ROW = 20


def manifest_pdf(
    partner_code: str,
    partner_name: str,
    day: date,
    lines: Sequence[ManifestLine],
    created: datetime,
) -> bytes:
    """The hand-over list of `partner_name` for its local day `day`."""
    font = cjk_font()
    bold, synthetic = cjk_emphasis()
    title = f"交接清单 {partner_name} {day.isoformat()}"

    def header(c: Any, page: PageInfo) -> None:
        box = page.margins
        c.setFillColorRGB(*INK)
        draw_text(
            c,
            box.left,
            box.top - 16,
            "寄递交接清单  Hand-over manifest",
            bold,
            15,
            synthetic_bold=synthetic,
        )
        draw_text(c, box.right, box.top - 16, day.isoformat(), LATIN_BOLD, 12, align="right")
        c.setFillColorRGB(*GREY)
        draw_text(c, box.left, box.top - 32, f"{partner_name}（{partner_code}）  {ISSUER}", font, 9)

    doc = Document(
        title=title,
        author=ISSUER,
        subject=title,
        created=created,
        pagesize=A4,
        margins=(40, 40, 48, 40),
        header_height=48,
        footer_height=10,
        decorations=(header, page_numbers(locale="both")),
    )
    c = doc.canvas
    widths = [share * doc.width for _, share in COLUMNS]
    lefts = [doc.left + sum(widths[:i]) for i in range(len(widths))]

    def row(cells: Sequence[str], face: str, shade: bool) -> None:
        top = doc.place(ROW)
        if shade:
            c.setFillColorRGB(*SHADE)
            c.rect(doc.left, top - ROW, doc.width, ROW, stroke=0, fill=1)
        c.setFillColorRGB(*INK)
        for cell, x, w in zip(cells, lefts, widths, strict=True):
            draw_text(c, x + 3, top - ROW + 6, fit_text(cell, face, 9, w - 6), face, 9)
        c.setStrokeColorRGB(*RULE)
        c.setLineWidth(0.5)
        c.line(doc.left, top - ROW, doc.right, top - ROW)

    headings = [heading for heading, _ in COLUMNS]
    row(headings, font, True)
    for number, line in enumerate(lines, start=1):
        if doc.remaining < ROW:
            doc.new_page()
            row(headings, font, True)  # the headings again on each new page
        cells = [
            str(number),
            line.tracking_number,
            line.recipient,
            f"{line.city}{line.district}",
            line.sender_department,
        ]
        row(cells, font, False)
    doc.skip(14)
    top = doc.place(90)
    c.setFillColorRGB(*INK)
    draw_text(
        c,
        doc.left,
        top - 14,
        f"共 {len(lines)} 件  Total: {len(lines)} parcels",
        bold,
        12,
        synthetic_bold=synthetic,
    )
    for i, who in enumerate(("交件人签字 Handed over by", "收件人签字 Received by (courier)")):
        x = doc.left + i * doc.width / 2
        draw_text(c, x, top - 50, who, font, 9)
        c.setStrokeColorRGB(*INK)
        c.line(x, top - 74, x + doc.width / 2 - 24, top - 74)
        draw_text(c, x, top - 86, "日期 Date: ____________  时间 Time: ________", font, 8)
    return doc.render()


# --- gathering what to draw ----------------------------------------------------------------


async def _department_name(session: AsyncSession, code: str) -> str:
    # session.get answers from the identity map once a department is loaded.
    department = await session.get(Department, code)
    return department.name if department else code


async def label_for(session: AsyncSession, dispatch: Dispatch) -> bytes:
    """The label of one dispatch."""
    license = await session.get(License, dispatch.license_id)
    partner = await session.get(CourierPartner, dispatch.partner)
    address = dispatch.address or {}
    return label_pdf(
        LabelData(
            tracking_number=dispatch.tracking_number,
            partner_name=partner.name if partner else dispatch.partner,
            sender_department=await _department_name(session, dispatch.department),
            recipient=str(address.get("recipient", "")),
            phone=str(address.get("phone", "")),
            address=address,
            license_no=license.license_no if license else "",
            handover_date=dispatch.handover_date,
            created_at=dispatch.created_at,
        )
    )


async def manifest_for(
    session: AsyncSession, partner: CourierPartner, day: date, dispatches: Sequence[Dispatch]
) -> bytes:
    """The manifest of `dispatches` (one partner's hand-over day), in the given order."""
    lines = [
        ManifestLine(
            tracking_number=d.tracking_number,
            recipient=str((d.address or {}).get("recipient", "")),
            city=str((d.address or {}).get("city", "")),
            district=str((d.address or {}).get("district", "")),
            sender_department=await _department_name(session, d.department),
        )
        for d in dispatches
    ]
    # Dated by its newest parcel, so the same list always gives the same bytes.
    created = max((d.created_at for d in dispatches), default=partner.created_at)
    return manifest_pdf(partner.code, partner.name, day, lines, created)
