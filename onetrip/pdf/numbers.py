"""Numbers as PDF writes them: ReportLab's `fp_str`, remembered.

Every coordinate, size, colour and matrix ReportLab writes goes through `fp_str`, whose
C code costs ~8,000 instructions a number (a licence writes ~250 of them, ~10 % of its
drawing). A document writes the same few hundred values again and again (its layout's
coordinates, its font sizes, its palette), so `fp_str` here remembers the text of each
call's arguments: the same text, from ReportLab's own function, in a dictionary look-up.
`onetrip.pdf` installs it in ReportLab's modules.
"""

from __future__ import annotations

from typing import Any

from reportlab.lib.rl_accel import fp_str as _reportlab_fp_str
from reportlab.pdfgen.canvas import Canvas

#: the text of each argument tuple formatted so far, emptied when it grows past its bound
#: (keys are numbers, or one tuple of numbers; equal numbers, 1 and 1.0 or -0.0 and 0.0,
#: have the same text)
_TEXT: dict[tuple[Any, ...], str] = {}
_TEXT_MAX = 20_000


def fp_str(*numbers: Any) -> str:
    """`reportlab.lib.rl_accel.fp_str(*numbers)`: the numbers in PDF's notation (at most
    6 decimals, no trailing zeros), separated by spaces."""
    try:
        return _TEXT[numbers]
    except KeyError:
        pass
    except TypeError:  # a list or another argument that is no dictionary key
        return _reportlab_fp_str(*numbers)
    text = _reportlab_fp_str(*numbers)
    # one tuple of numbers (a colour) is spelt as those numbers: kept as its own key
    values = numbers[0] if len(numbers) == 1 and type(numbers[0]) is tuple else numbers
    if all(type(number) in _NUMBERS for number in values):
        if len(_TEXT) >= _TEXT_MAX:
            _TEXT.clear()
        _TEXT[numbers] = text
    return text


#: what may be a key: a float subclass or a Decimal could compare equal to a number
#: fp_str writes differently
_NUMBERS = frozenset((int, float, bool))


def set_fill_rgb(canvas: Any, r: float, g: float, b: float, alpha: float | None = None) -> None:
    """`Canvas.setFillColorRGB`: the same operator and state, without the type tests of
    `setFillColor` (a document sets a colour ~50 times)."""
    if alpha is not None or canvas._enforceColorSpace:
        _reportlab_set_fill_rgb(canvas, r, g, b, alpha)
        return
    colour = canvas._fillColorObj = (r, g, b)
    canvas._code.append(f"{fp_str(colour)} rg")


def set_stroke_rgb(canvas: Any, r: float, g: float, b: float, alpha: float | None = None) -> None:
    """`Canvas.setStrokeColorRGB`, as `set_fill_rgb`."""
    if alpha is not None or canvas._enforceColorSpace:
        _reportlab_set_stroke_rgb(canvas, r, g, b, alpha)
        return
    colour = canvas._strokeColorObj = (r, g, b)
    canvas._code.append(f"{fp_str(colour)} RG")


_reportlab_set_fill_rgb = Canvas.setFillColorRGB
_reportlab_set_stroke_rgb = Canvas.setStrokeColorRGB
