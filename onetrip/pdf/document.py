"""The document builder: metadata, reproducible bytes, pages, and what every page repeats.

A document module creates a `Document`, lays its own content down the pages with
`add` / `place` (a new page starts when the next block does not fit), and calls
`render`. Headers, footers, page numbers and overlays (a watermark) are *decorations*:
functions of the canvas and a `PageInfo`, drawn on every page at `render`, when the page
count is known — so "第 1 页 / 共 2 页" needs no second pass of the layout.

The same input gives the same bytes: ReportLab's invariant mode fixes the file id and
the timestamp, and the creation date written is the document's own (`created`, e.g. the
payment time), never the clock.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from onetrip.pdf.fonts import cjk_font
from onetrip.pdf.layout import Block, SplittableBlock
from onetrip.pdf.text import GREY, draw_text


@dataclass(frozen=True)
class Box:
    """A rectangle on the page in points, origin bottom-left."""

    left: float
    bottom: float
    right: float
    top: float

    @property
    def width(self) -> float:
        return self.right - self.left


@dataclass(frozen=True)
class PageInfo:
    """What a decoration knows about the page it draws on."""

    number: int
    count: int
    page: Box  # the whole sheet
    margins: Box  # the sheet inside its margins; headers and footers sit at its edges
    content: Box  # where the flow goes: inside the margins, header and footer


PageDecoration = Callable[[Any, PageInfo], None]


def page_label(number: int, count: int, locale: str = "both") -> str:
    """`第 1 页 / 共 2 页` (zh-CN), `Page 1 of 2` (en), or both side by side."""
    zh = f"第 {number} 页 / 共 {count} 页"
    en = f"Page {number} of {count}"
    labels = {"zh-CN": zh, "en": en, "both": f"{zh}  {en}"}
    if locale not in labels:
        raise ValueError(f"unknown locale {locale!r}")
    return labels[locale]


def page_numbers(
    *, locale: str = "both", size: float = 7, align: str = "right", drop: float = 4
) -> PageDecoration:
    """A decoration writing `page_label` under the margin box (`drop` points below it),
    at its right edge (or left / centre)."""

    def draw(canvas: Any, page: PageInfo) -> None:
        box = page.margins
        x = {"left": box.left, "centre": (box.left + box.right) / 2, "right": box.right}[align]
        canvas.setFillColorRGB(*GREY)
        text = page_label(page.number, page.count, locale)
        draw_text(canvas, x, box.bottom - drop, text, cjk_font(), size, align=align)

    return draw


def pdf_date(moment: datetime) -> str:
    """A PDF date string (`D:20250314072609+00'00'`) for an aware datetime, in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("the creation date must be timezone-aware")
    return moment.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")


class _HeldPagesCanvas(Canvas):
    """A canvas that keeps each finished page open until `save`, then lets `finish`
    draw on it knowing the page count (the decorations) before it is written out."""

    def __init__(self, *args: Any, finish: Callable[[Canvas, int, int], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._held: list[dict[str, Any]] = []
        self._finish = finish

    def showPage(self) -> None:
        # A page's whole drawing state lives in the canvas's attributes (operators, fonts
        # and colours used, graphics state), and _startPage replaces rather than clears
        # them, so a shallow copy is the page, frozen.
        self._held.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        count = len(self._held)
        for number, state in enumerate(self._held, start=1):
            self.__dict__.update(state)
            self.saveState()
            self._finish(self, number, count)
            self.restoreState()
            super().showPage()
        self._held = []
        super().save()


class Document:
    """One PDF being laid out: a canvas, its content box and a cursor moving down it.

    `margins` are (top, right, bottom, left) points; `header_height` / `footer_height`
    are kept clear inside them for the decorations. `decorations` draw on every page at
    `render`, in order, above the content (put a watermark last).
    """

    def __init__(
        self,
        *,
        title: str,
        author: str,
        subject: str = "",
        creator: str | None = None,
        keywords: Sequence[str] = (),
        created: datetime | None = None,
        pagesize: tuple[float, float] = A4,
        margins: tuple[float, float, float, float] = (48, 48, 48, 48),
        header_height: float = 0,
        footer_height: float = 0,
        decorations: Sequence[PageDecoration] = (),
    ) -> None:
        self._buffer = io.BytesIO()
        self._decorations = tuple(decorations)
        width, height = pagesize
        top, right, bottom, left = margins
        self.page = Box(0, 0, width, height)
        self.margins = Box(left, bottom, width - right, height - top)
        self.content = Box(
            left, bottom + footer_height, width - right, height - top - header_height
        )
        # invariant=1: no clock and no random file id in the output.
        self.canvas = _HeldPagesCanvas(
            self._buffer, pagesize=pagesize, pageCompression=1, invariant=1, finish=self._decorate
        )
        self.canvas.setTitle(title)
        self.canvas.setAuthor(author)
        self.canvas.setSubject(subject)
        self.canvas.setCreator(creator or author)
        if keywords:
            self.canvas.setKeywords(list(keywords))
        if created is not None:
            stamp = pdf_date(created)
            self.canvas.setDateFormatter(lambda *_: stamp)
        self.cursor = self.content.top
        self.page_number = 1
        self._rendered = False

    @property
    def left(self) -> float:
        return self.content.left

    @property
    def right(self) -> float:
        return self.content.right

    @property
    def width(self) -> float:
        return self.content.width

    @property
    def remaining(self) -> float:
        """Points left between the cursor and the bottom of the content box."""
        return self.cursor - self.content.bottom

    @property
    def at_page_top(self) -> bool:
        return self.cursor >= self.content.top

    def new_page(self) -> None:
        """Finish this page and continue at the top of the next."""
        self.canvas.showPage()
        self.page_number += 1
        self.cursor = self.content.top

    def skip(self, points: float) -> None:
        """Leave `points` of space below the cursor (never past the bottom of the page)."""
        self.cursor = max(self.cursor - points, self.content.bottom)

    def place(self, height: float) -> float:
        """Reserve `height` points for a block the caller draws; return its top edge.

        Starts a new page first when the block does not fit below the cursor (a block
        taller than a whole page is placed at a page top and runs over the bottom).
        """
        if height > self.remaining and not self.at_page_top:
            self.new_page()
        top = self.cursor
        self.cursor -= height
        return top

    def add(self, block: Block, *, space_after: float = 0) -> None:
        """Draw `block` at the cursor, on a new page when it does not fit here; a
        splittable block (a table) fills this page and continues on the next."""
        current: Any = block
        while current is not None:
            head: Any = None
            if current.height <= self.remaining:
                head, current = current, None
            elif isinstance(current, SplittableBlock):
                head, current = current.split(self.remaining)
            if head is None and self.at_page_top:
                # Not even a part of it fits a fresh page: draw it and let it run over.
                head, current = current, None
            if head is not None:
                self.cursor = head.draw(self.canvas, self.cursor)
            if current is not None:
                self.new_page()
        self.skip(space_after)

    def _decorate(self, canvas: Canvas, number: int, count: int) -> None:
        info = PageInfo(number, count, self.page, self.margins, self.content)
        for decoration in self._decorations:
            decoration(canvas, info)

    def render(self) -> bytes:
        """Finish the last page, draw the decorations on every page, return the PDF."""
        if self._rendered:
            raise RuntimeError("a Document renders once")
        self._rendered = True
        self.canvas.showPage()
        self.canvas.save()
        return self._buffer.getvalue()
