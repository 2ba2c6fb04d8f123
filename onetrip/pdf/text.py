"""Lines of text: drawing one, wrapping a string to a width, and stacking styled lines.

Wrapping follows the rule of mixed Chinese and Latin text: a wide (CJK) character may
break anywhere, a run of Latin letters only at spaces (a word wider than the whole box
is broken where it must be). Widths come from the fonts' own metrics (`stringWidth`), so
a wrapped line never runs past its box. A string is drawn and measured in the runs of
`font_runs`: a character the font lacks (a rare Chinese character of a name) in the first
fallback font that has it, so it prints rather than leaving a blank.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen import textobject
from reportlab.pdfgen.canvas import Canvas

from onetrip.pdf.fonts import font_chain, font_runs, string_width
from onetrip.pdf.numbers import fp_str

# The palette every document shares (RGB, 0..1).
INK = (0.07, 0.07, 0.09)
GREY = (0.42, 0.45, 0.5)
RULE = (0.62, 0.64, 0.68)
SHADE = (0.95, 0.95, 0.96)
SEAL_RED = (0.65, 0.1, 0.1)
LATIN = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"

Colour = tuple[float, float, float]

ELLIPSIS = "…"
# Chinese typesetting keeps closing punctuation off the start of a line and opening
# punctuation off its end (禁则); the wrapper moves a character to honour that.
_NO_LINE_START = frozenset("，。、；：？！）》」』】〕〉”’…%‰·")
_NO_LINE_END = frozenset("（《「『【〔〈“‘")


def draw_text(
    canvas: Any,
    x: float,
    y: float,
    text: str,
    font: str,
    size: float,
    *,
    align: str = "left",
    synthetic_bold: bool = False,
    char_space: float = 0,
) -> float:
    """Draw one line at baseline `y`; `align` is left, centre or right of `x`.

    `synthetic_bold` thickens the glyphs by stroking their outline too, for fonts with no
    bold face (how Chinese office software fakes bold; see `cjk_emphasis`). `char_space`
    spreads letters without inserting spaces, so text extraction still reads the word.
    Characters `font` lacks are drawn in its fallback fonts (`font_runs`). Returns the
    width drawn.
    """
    key = _line_key(canvas, x, y, text, font, size, align, synthetic_bold, char_space)
    if key is not None:
        known = _LINES.get(key)
        if known is not None:  # drawn before, the same way: its operators again
            code, width, leading = known
            canvas._fontname, canvas._fontsize, canvas._leading = font, size, leading
            canvas._code.extend(code)
            return width
        start = len(canvas._code)
    runs = font_runs(text, font)
    width = _runs_width(runs, size) + char_space * max(len(text) - 1, 0)
    if align == "centre":
        x -= width / 2
    elif align == "right":
        x -= width
    elif align != "left":
        raise ValueError(f"unknown align {align!r}")
    canvas.setFont(font, size)
    if synthetic_bold:
        canvas.saveState()
        canvas.setStrokeColor(canvas._fillColorObj)  # outline in the text's own colour
        canvas.setLineWidth(size * 0.035)
        canvas.setLineJoin(1)
        _draw_runs(canvas, x, y, runs, size, mode=2, char_space=char_space)  # fill, stroke
        canvas.restoreState()
    else:
        _draw_runs(canvas, x, y, runs, size, mode=0, char_space=char_space)
    if key is not None:
        if len(_LINES) >= _LINES_MAX:
            _LINES.clear()
        _LINES[key] = (tuple(canvas._code[start:]), width, canvas._leading)
    return width


# A document's labels, headings and notes are drawn at the same place in every document
# of its kind (a licence's ~40 lines: half of them the same on every licence of a
# matter), and each costs ~80,000 instructions of Python to measure, align, split into
# its subset's codes and write. Whatever a line's operators depend on is in its key
# (`_line_key`): the text and its codes in this document's font subsets, the font's name
# in the document, the position, size, alignment, spacing, synthetic bold and then the
# fill colour the outline copies. A line drawn again with the same key writes the same
# operators, remembered, and leaves the canvas's font as drawing it would.
_LINES: dict[tuple[Any, ...], tuple[tuple[str, ...], float, float]] = {}
_LINES_MAX = 4096  # emptied when full: a document's own lines never come back


def _line_key(
    canvas: Any,
    x: float,
    y: float,
    text: str,
    font: str,
    size: float,
    align: str,
    synthetic_bold: bool,
    char_space: float,
) -> tuple[Any, ...] | None:
    """The key of a line `draw_text` may draw from `_LINES`, or None: a line whose
    drawing would change the document (a character, or a font, it uses for the first
    time) or that is not drawn by `draw_string` in one run."""
    if (
        type(text) is not str
        or not isinstance(canvas, Canvas)
        or not _PLAIN_TEXT_OBJECTS
        or not canvas.bottomup
        or canvas._enforceColorSpace
        or "\xa0" in text
    ):
        return None
    fill = None
    if synthetic_bold:
        fill = canvas._fillColorObj
        if type(fill) is not tuple:
            return None
    registered = pdfmetrics.getFont(font)
    doc = canvas._doc
    if registered._dynamicFont:
        chain = font_chain(font)
        if chain is not None and not chain.covers(text):
            return None  # maybe characters of a fallback font: runs of their own
        state = registered.state.get(doc)
        if state is None or state.internalName is None:
            return None
        codes = tuple(map(state.assignments.get, map(ord, text)))
        if None in codes:
            return None
        name: Any = (state.internalName, codes)
    elif (
        not registered._multiByte
        and registered.encName == "WinAnsiEncoding"
        and text.isascii()
        and text.isprintable()
    ):
        name = doc.fontMapping.get(font)  # WinAnsi has every printable ASCII character
        if name is None:
            return None
    else:
        return None
    return (type(canvas), text, font, size, x, y, align, synthetic_bold, char_space, fill, name)


def _draw_runs(
    canvas: Any,
    x: float,
    y: float,
    runs: Sequence[tuple[str, str]],
    size: float,
    *,
    mode: int,
    char_space: float,
) -> None:
    """The runs one after the other in one text object, so the line reads as one string.
    One run in the font asked for (the canvas's, set by `draw_text`) is drawn as before."""
    if len(runs) == 1 and runs[0][0] == canvas._fontname:
        if not _PLAIN_TEXT_OBJECTS or not canvas.bottomup:
            canvas.drawString(x, y, runs[0][1], mode=mode or None, charSpace=char_space)
        else:
            draw_string(canvas, x, y, runs[0][1], mode=mode or None, char_space=char_space)
        return
    line = canvas.beginText(x, y)
    if mode:
        line.setTextRenderMode(mode)
    if char_space:
        line.setCharSpace(char_space)  # after every glyph, as across one run
    for font, text in runs:
        line.setFont(font, size)
        line.textOut(text)
    # Text state outlives the text object in PDF: put it back as drawString does.
    if char_space:
        line.setCharSpace(0)
    if mode:
        line.setTextRenderMode(0)
    canvas.drawText(line)


#: without ReportLab's bidi support (rlbidi), drawString writes the text as given
_PLAIN_TEXT_OBJECTS = not textobject.rtlSupport


def draw_string(
    canvas: Any,
    x: float,
    y: float,
    text: str,
    *,
    mode: int | None = None,
    char_space: float = 0,
) -> None:
    """`canvas.drawString(x, y, text, mode=mode, charSpace=char_space)` in the canvas's
    font, the same operators, without the text object ReportLab builds for it (its
    colour setters, cursor and the width it measures and drops: ~40 lines a licence, a
    sixth of the drawing). Registers the characters in the document's font subsets as
    drawString does. Rendering mode and character spacing are text state that outlives
    the text object: set before the text and put back after it, as drawString does."""
    if mode is not None and mode not in (0, 1, 2, 3):  # a clipping mode: ReportLab's way
        canvas.drawString(x, y, text, mode=mode, charSpace=char_space)
        return
    font = pdfmetrics.getFont(canvas._fontname)
    escape = canvas._escape
    parts = []
    if font._dynamicFont:  # TrueType: subset by subset
        doc = canvas._doc
        current, switch = -1, None
        for subset, chunk in font.splitString(text, doc):
            if subset != current:
                if switch is None:
                    switch = f"{fp_str(canvas._fontsize)} Tf {fp_str(canvas._leading)} TL"
                parts.append(f"{font.getSubsetInternalName(subset, doc)} {switch}")
                current = subset
            parts.append(f"({escape(chunk)}) Tj")
    elif not font._multiByte:  # a standard Type 1 font and its substitutes
        used = font
        for other, chunk in pdfmetrics.unicode2T1(text, [font, *font.substitutionFonts]):
            if other != used:
                parts.append(_type1_switch(canvas, other.fontName))
                used = other
            parts.append(f"({escape(chunk)}) Tj")
        if used != font:
            parts.append(_type1_switch(canvas, canvas._fontname))
    else:  # a CID font: ReportLab's own way
        canvas.drawString(x, y, text, mode=mode, charSpace=char_space)
        return
    before = after = ""
    if char_space:
        before = f"{fp_str(char_space)} Tc "
        after = " 0 Tc"
    if mode:  # the text object starts in mode 0 and writes only a change
        before = f"{mode} Tr {before}"
        after = f"{after} 0 Tr"
    canvas._code.append(f"BT 1 0 0 1 {fp_str(x, y)} Tm {before}{' '.join(parts)} T*{after} ET")


def _type1_switch(canvas: Any, name: str) -> str:
    internal = canvas._doc.getInternalFontName(name)
    return f"{internal} {fp_str(canvas._fontsize)} Tf {fp_str(canvas._leading)} TL"


def _runs_width(runs: Sequence[tuple[str, str]], size: float) -> float:
    if len(runs) == 1:
        font, text = runs[0]
        return string_width(text, font, size)
    return sum(string_width(text, font, size) for font, text in runs)


def text_width(text: str, font: str, size: float) -> float:
    """Width of `text` in points as `draw_text` draws it (each run in its own font)."""
    chain = font_chain(font)
    if chain is None or chain.covers(text):  # wrapping measures often: keep this short
        return string_width(text, font, size)
    return _runs_width(chain.runs(text), size)


def _kind(char: str) -> str:
    if char.isspace():
        return "space"
    return "wide" if unicodedata.east_asian_width(char) in ("W", "F") else "word"


def _tokens(text: str) -> list[str]:
    """Unbreakable pieces: each wide character alone, runs of Latin (a word), runs of spaces."""
    tokens: list[str] = []
    last = ""
    for char in text:
        kind = _kind(char)
        if tokens and kind != "wide" and kind == last:
            tokens[-1] += char
        else:
            tokens.append(char)
        last = kind
    return tokens


def wrap_text(text: str, font: str, size: float, width: float) -> list[str]:
    """Break `text` into lines no wider than `width` (points) in `font` at `size`.

    Chinese breaks between any two characters, Latin at spaces; the spaces at a break are
    dropped and every other character is kept, in order (`"\\n"` forces a break). Only a
    single character wider than `width` can make a line overflow.
    """
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(_wrap_paragraph(paragraph, font, size, width))
    return lines


def _wrap_paragraph(text: str, font: str, size: float, width: float) -> list[str]:
    def fits(candidate: str) -> bool:
        return text_width(candidate, font, size) <= width

    if fits(text):
        return [text]
    lines: list[str] = []
    line: list[str] = []  # tokens of the line being filled
    for token in _tokens(text):
        if token.isspace():
            if line:
                line.append(token)  # kept only if a word follows on this line
            continue
        if fits("".join(line) + token):
            line.append(token)
            continue
        while line and line[-1].isspace():
            line.pop()
        carried = _carry_over(line, token, fits)
        if line:
            lines.append("".join(line))
        line = carried
        if fits("".join(line) + token):
            line.append(token)
            continue
        # A word wider than the box: break it between letters.
        for char in token:
            if line and not fits("".join(line) + char):
                lines.append("".join(line))
                line = []
            line.append(char)
    while line and line[-1].isspace():
        line.pop()
    if line or not lines:
        lines.append("".join(line))
    return lines


def _carry_over(line: list[str], token: str, fits: Any) -> list[str]:
    """Tokens to move from the end of a full `line` to the next one (禁则), popped off it.

    The last token travels with a closing mark that may not start a line, and an opening
    mark never ends one, as long as the line keeps something and the moved text fits.
    """
    moved: list[str] = []
    # Several closing marks in a row (`），`) travel together with the token before them.
    while len(line) > 1 and (moved or [token])[0][0] in _NO_LINE_START:
        moved.insert(0, line.pop())
    while len(line) > 1 and line[-1][-1] in _NO_LINE_END:
        moved.insert(0, line.pop())
    while moved and moved[0].isspace():  # a space is a break point already
        moved.pop(0)
    while line and line[-1].isspace():
        line.pop()
    if moved and not fits("".join(moved) + token):
        line.extend(moved)  # a box too narrow for the nicety: keep the plain break
        return []
    return moved


def fit_text(text: str, font: str, size: float, width: float) -> str:
    """`text` cut short with "…" so it fits `width` (unchanged when it already fits)."""
    if text_width(text, font, size) <= width:
        return text
    return _with_ellipsis(text, font, size, width)


def _with_ellipsis(text: str, font: str, size: float, width: float) -> str:
    cut = text.rstrip()
    while cut and text_width(cut + ELLIPSIS, font, size) > width:
        cut = cut[:-1].rstrip()
    return cut + ELLIPSIS


@dataclass(frozen=True)
class Line:
    """One line of styled text; `leading` is the height it takes in a stack of lines."""

    text: str
    font: str
    size: float
    colour: Colour = INK
    synthetic_bold: bool = False

    @property
    def leading(self) -> float:
        return self.size * 1.3


def wrap_lines(lines: Sequence[Line], width: float, max_lines: int | None = None) -> list[Line]:
    """Wrap each line to `width`; a line that needs more than `max_lines` ends with "…"."""
    # A table's labels (and many of its values) are wrapped the same way in every
    # document: the wrapped lines (frozen) are remembered by the lines and the width.
    key = (tuple(lines), width, max_lines)
    try:
        known = _WRAPPED.get(key)
    except TypeError:  # a line that is no dictionary key (an unhashable colour)
        return _wrap_lines(lines, width, max_lines)
    if known is None:
        known = tuple(_wrap_lines(lines, width, max_lines))
        if len(_WRAPPED) >= _WRAPPED_MAX:
            _WRAPPED.clear()
        _WRAPPED[key] = known
    return list(known)


#: lines wrapped so far: (lines, width, max_lines) -> the wrapped lines, emptied when full
_WRAPPED: dict[tuple[Any, ...], tuple[Line, ...]] = {}
_WRAPPED_MAX = 4096


def _wrap_lines(lines: Sequence[Line], width: float, max_lines: int | None) -> list[Line]:
    out: list[Line] = []
    for line in lines:
        parts = wrap_text(line.text, line.font, line.size, width)
        if max_lines is not None and len(parts) > max_lines:
            last = _with_ellipsis(parts[max_lines - 1], line.font, line.size, width)
            parts = [*parts[: max_lines - 1], last]
        if len(parts) == 1 and parts[0] == line.text:
            out.append(line)  # a line that fits as it is (frozen: shared safely)
        else:
            out.extend(dataclasses.replace(line, text=part) for part in parts)
    return out


def block_height(lines: Sequence[Line]) -> float:
    """Height of `lines` stacked by their leading."""
    return sum(line.leading for line in lines)


def draw_lines(
    canvas: Any, x: float, top: float, lines: Sequence[Line], *, align: str = "left"
) -> float:
    """Stack `lines` down from `top` (each baseline inside its leading); returns the bottom."""
    y = top
    for line in lines:
        y -= line.leading
        canvas.setFillColorRGB(*line.colour)
        baseline = y + line.size * 0.28
        draw_text(
            canvas,
            x,
            baseline,
            line.text,
            line.font,
            line.size,
            align=align,
            synthetic_bold=line.synthetic_bold,
        )
    return y
