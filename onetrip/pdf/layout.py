"""Blocks a document flows down its pages: the labelled-line table (label: value rows).

A block knows its height and draws itself from a top edge; a block that can continue on
the next page also splits (`Document.add` calls `split` when it does not fit).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from onetrip.pdf.text import INK, RULE, SHADE, Line, block_height, draw_lines, wrap_lines

LABEL_CLEARANCE = 2  # points kept free above and below a label, together


@runtime_checkable
class Block(Protocol):
    """Something `Document.add` can place: a height, and drawing from a top edge."""

    @property
    def height(self) -> float: ...

    def draw(self, canvas: Any, top: float) -> float:
        """Draw with the top edge at `top`; return the bottom edge."""
        ...


@runtime_checkable
class SplittableBlock(Block, Protocol):
    """A block that can end on one page and continue on the next."""

    def split(self, available: float) -> tuple[Any | None, Any | None]:
        """The part that fits in `available` points (None if nothing does), and the rest."""
        ...


@dataclass(frozen=True)
class LabelledRow:
    """One row: a label (e.g. Chinese over English) and its value, as stacked lines."""

    label: tuple[Line, ...]
    value: tuple[Line, ...]


@dataclass(frozen=True)
class LabelledTable:
    """Label: value rows in a ruled box, the label column shaded, each row centred.

    Build it with `LabelledTable.of`, which wraps labels and values to their columns;
    `min_row_height` is the height of a one-line row, so lowering it tightens the table
    (`with_min_row_height`) without wrapping again. Splits between rows.
    """

    rows: tuple[LabelledRow, ...]
    left: float
    width: float
    label_width: float = 138
    pad: float = 8
    min_row_height: float = 32
    shade: tuple[float, float, float] = SHADE
    rule: tuple[float, float, float] = RULE
    border: tuple[float, float, float] = INK

    @classmethod
    def of(
        cls,
        rows: Iterable[tuple[Sequence[Line], Sequence[Line]]],
        *,
        left: float,
        width: float,
        label_width: float = 138,
        pad: float = 8,
        min_row_height: float = 32,
        max_value_lines: int | None = 3,
    ) -> LabelledTable:
        """Wrap each (label lines, value lines) pair to its column; values past
        `max_value_lines` lines (per input line) end with "…" so a page still fits."""
        value_width = width - label_width - 2 * pad
        label_text_width = label_width - 2 * pad
        wrapped = tuple(
            LabelledRow(
                label=tuple(wrap_lines(label, label_text_width)),
                value=tuple(wrap_lines(value, value_width, max_value_lines)),
            )
            for label, value in rows
        )
        return cls(
            rows=wrapped,
            left=left,
            width=width,
            label_width=label_width,
            pad=pad,
            min_row_height=min_row_height,
        )

    def with_min_row_height(self, min_row_height: float) -> LabelledTable:
        """The same rows, tighter or looser."""
        return dataclasses.replace(self, min_row_height=min_row_height)

    def row_height(self, row: LabelledRow) -> float:
        """A row is as tall as its value plus half a one-line row of padding, and at least
        `min_row_height`; the label, a caption in its shaded cell, only has to fit."""
        value = block_height(row.value) + self.min_row_height / 2
        label = block_height(row.label) + LABEL_CLEARANCE
        return max(self.min_row_height, value, label)

    @property
    def height(self) -> float:
        return sum(self.row_height(row) for row in self.rows)

    def split(self, available: float) -> tuple[LabelledTable | None, LabelledTable | None]:
        """The leading rows that fit in `available` points, and the rows left over."""
        used = 0.0
        count = 0
        for row in self.rows:
            used += self.row_height(row)
            if used > available:
                break
            count += 1
        head = dataclasses.replace(self, rows=self.rows[:count]) if count else None
        rest = dataclasses.replace(self, rows=self.rows[count:]) if count < len(self.rows) else None
        return head, rest

    def draw(self, canvas: Any, top: float) -> float:
        """Draw the table with its top edge at `top`; return its bottom edge."""
        left, right = self.left, self.left + self.width
        value_x = left + self.label_width + self.pad
        y = top
        edges = []
        for row in self.rows:
            height = self.row_height(row)
            canvas.setFillColorRGB(*self.shade)
            canvas.rect(left, y - height, self.label_width, height, stroke=0, fill=1)
            for x, lines in ((left + self.pad, row.label), (value_x, row.value)):
                draw_lines(canvas, x, y - (height - block_height(lines)) / 2, lines)
            y -= height
            edges.append(y)
        canvas.setStrokeColorRGB(*self.rule)
        canvas.setLineWidth(0.4)
        for edge in edges[:-1]:
            canvas.line(left, edge, right, edge)
        canvas.line(left + self.label_width, top, left + self.label_width, y)
        canvas.setStrokeColorRGB(*self.border)
        canvas.setLineWidth(0.9)
        canvas.rect(left, y, self.width, top - y, stroke=1, fill=0)
        return y
