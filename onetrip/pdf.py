"""PDF kernel: the Chinese font, QR codes and Code 128 barcodes, for every document we draw.

Receipts, licences and shipping labels all draw with ReportLab on a plain canvas; this
module holds what they share and knows nothing of payments or matters.

Fonts: a document that must print anywhere needs its Chinese font *embedded*, so we look
for a TrueType CJK font (the configured path, then Debian's packages) and only fall back
to ReportLab's CID font STSong-Light, which is not embedded and shows as blank text in
viewers without the Adobe Asian font pack.

Barcodes: drawn as filled rectangles from the module matrix. libzint (`zint-bindings`)
encodes a QR code in ~0.15 ms; segno (~7 ms) is the fallback when its wheel is missing.
ReportLab's own QR widget (~16-35 ms a code) is never used.
"""

from __future__ import annotations

import logging
import re
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportlab import rl_config
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont

from onetrip.settings import get_settings

try:  # libzint; optional so a platform without its wheel still renders
    import zint as _zint
except ImportError:  # pragma: no cover - depends on the installed wheels
    _zint = None

log = logging.getLogger(__name__)

# ReportLab wraps compressed streams in ASCII85, a relic of 7-bit mail transports: its
# pure-Python encoder costs ~2 ms a receipt and makes those streams 25 % bigger.
rl_config.useA85 = 0

# Debian packages with TrueType (not CFF) outlines that ReportLab can embed, best first.
# Noto CJK ships as OpenType/CFF, which ReportLab's TTFont cannot read.
DEBIAN_CJK_FONTS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # fonts-wqy-microhei
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",  # fonts-wqy-zenhei
    "/usr/share/fonts/truetype/arphic/uming.ttc",  # fonts-arphic-uming
    "/usr/share/fonts/truetype/arphic/ukai.ttc",  # fonts-arphic-ukai
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",  # fonts-droid-fallback
)

CID_FALLBACK_FONT = "STSong-Light"

QR_QUIET_ZONE = 4  # modules of white margin the QR standard asks for around the symbol


@dataclass(frozen=True)
class CjkFont:
    """A registered ReportLab font for Chinese text."""

    name: str
    bold_name: str
    embedded: bool
    path: str | None

    @property
    def has_real_bold(self) -> bool:
        return self.bold_name != self.name


def parse_font_spec(spec: str) -> tuple[str, int]:
    """Split `path#index` (a face inside a .ttc collection) into path and index (default 0)."""
    path, sep, index = spec.rpartition("#")
    if sep and index.isdigit():
        return path, int(index)
    return spec, 0


def _register_ttf(path: str, index: int) -> str:
    """Register one TrueType face under a stable name and return the name (loads once)."""
    # The path's checksum keeps two files that share a file name apart.
    name = f"OneTripCJK-{Path(path).stem}-{index}-{zlib.crc32(path.encode()):08x}"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, path, subfontIndex=index))
    return name


def _bold_sibling(path: str) -> str | None:
    """A bold face shipped beside the regular one (`X-Regular.ttf` -> `X-Bold.ttf`), if any."""
    regular = Path(path)
    stem = regular.stem
    base = stem.removesuffix("-Regular").removesuffix("Regular")
    for candidate in (f"{base}-Bold", f"{base}Bold", f"{base}-bold"):
        sibling = regular.with_name(candidate + regular.suffix)
        if sibling != regular and sibling.is_file():
            return str(sibling)
    return None


def find_cjk_font(configured: str | None, candidates: Iterable[str] | None = None) -> CjkFont:
    """Register and describe the best Chinese font available.

    `configured` (`path` or `path#index` for a .ttc face) wins when it loads; then the
    first of `candidates` (default `DEBIAN_CJK_FONTS`) that exists. With none, the CID
    font STSong-Light is returned, not embedded, and a WARNING is logged.
    """
    specs: list[tuple[str, int, bool]] = []
    if configured:
        path, index = parse_font_spec(configured)
        specs.append((path, index, True))
    if candidates is None:
        candidates = DEBIAN_CJK_FONTS
    specs.extend((path, 0, False) for path in candidates)
    for path, index, was_configured in specs:
        if not Path(path).is_file():
            if was_configured:
                log.warning("ONETRIP_CJK_FONT %s does not exist; trying system fonts", path)
            continue
        try:
            name = _register_ttf(path, index)
        except Exception as exc:  # TTFError, OSError, or a face index out of range
            log.warning("cannot use %s#%d as a CJK font: %s", path, index, exc)
            continue
        bold_name = name
        bold_path = _bold_sibling(path)
        if bold_path is not None:
            try:
                bold_name = _register_ttf(bold_path, index)
            except Exception as exc:
                log.warning("cannot use bold face %s: %s", bold_path, exc)
        return CjkFont(name=name, bold_name=bold_name, embedded=True, path=path)

    log.warning(
        "no TrueType CJK font found (set ONETRIP_CJK_FONT or install fonts-wqy-microhei); "
        "using %s, which is not embedded: Chinese text will not display in viewers "
        "or print servers without the Asian font pack",
        CID_FALLBACK_FONT,
    )
    if CID_FALLBACK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK_FONT))
    return CjkFont(name=CID_FALLBACK_FONT, bold_name=CID_FALLBACK_FONT, embedded=False, path=None)


_font_lock = threading.Lock()
_font: CjkFont | None = None


def current_cjk_font() -> CjkFont:
    """The process's Chinese font, chosen and registered on first use."""
    global _font
    if _font is None:
        with _font_lock:
            if _font is None:
                _font = find_cjk_font(get_settings().cjk_font_path)
    return _font


def reset_cjk_font() -> None:
    """Forget the chosen font (tests change ONETRIP_CJK_FONT between cases)."""
    global _font
    with _font_lock:
        _font = None


def cjk_font() -> str:
    """ReportLab font name to draw Chinese (and Latin) text with."""
    return current_cjk_font().name


def cjk_bold_font() -> str:
    """Bold face of `cjk_font()`, or the same name when the font has no bold face."""
    return current_cjk_font().bold_name


def cjk_emphasis() -> tuple[str, bool]:
    """Font for bold Chinese text, and whether it must be drawn with `synthetic_bold`."""
    font = current_cjk_font()
    return font.bold_name, not font.has_real_bold


def cjk_font_embedded() -> bool:
    """True when the Chinese font is embedded TrueType (prints anywhere)."""
    return current_cjk_font().embedded


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
    Returns the width drawn.
    """
    width = pdfmetrics.stringWidth(text, font, size) + char_space * max(len(text) - 1, 0)
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
        canvas.drawString(x, y, text, mode=2, charSpace=char_space)  # 2 = fill then stroke
        canvas.restoreState()
    else:
        canvas.drawString(x, y, text, charSpace=char_space)
    return width


# --- barcodes --------------------------------------------------------------------------


def barcode_backend() -> str:
    """ "zint" when libzint draws barcodes, else "fallback" (segno for QR, ReportLab for 128)."""
    return "zint" if _zint is not None else "fallback"


def _zint_rows(symbology: Any, payload: bytes, option_1: int | None = None) -> list[str]:
    symbol = _zint.Symbol()
    symbol.symbology = symbology
    symbol.warn_level = _zint.WarningLevel.FAIL_ALL
    if option_1 is not None:
        symbol.option_1 = option_1
    symbol.encode(payload)
    # Rows of bit-packed modules, least significant bit first: read each row as one
    # little-endian integer and spell it out, which beats testing modules one by one.
    stride = symbol.encoded_data.shape[1]
    packed = symbol.encoded_data.tobytes()
    width = symbol.width
    rows = []
    for row in range(symbol.rows):
        start = row * stride
        value = int.from_bytes(packed[start : start + (width + 7) // 8], "little")
        rows.append(format(value, "b").zfill(width)[::-1][:width])
    return rows


def _module_rows(data: str) -> list[str]:
    """The QR code for `data` as rows of "1" (dark) and "0" (light) modules."""
    if not data:
        raise ValueError("QR data is empty")
    payload = data.encode("utf-8")
    if _zint is not None:
        return _zint_rows(_zint.Symbology.QRCODE, payload, option_1=2)  # 2 = level M
    import segno

    code = segno.make_qr(payload, error="m", boost_error=False)
    return ["".join("1" if module else "0" for module in row) for row in code.matrix]


def qr_matrix(data: str) -> list[list[bool]]:
    """The QR code for `data` (UTF-8, byte mode, error correction M) as rows of dark modules.

    Without the quiet zone. M survives ~15 % damage: enough for a folded printed receipt
    while keeping a tracking URL at a small version.
    """
    return [[module == "1" for module in row] for row in _module_rows(data)]


_DARK_RUN = re.compile("1+")


def _dark_runs(row: str) -> list[tuple[int, int]]:
    """(start, length) of each run of dark modules in a row of "1"/"0"."""
    return [(run.start(), run.end() - run.start()) for run in _DARK_RUN.finditer(row)]


def draw_qr(
    canvas: Any, data: str, x: float, y: float, size: float, *, quiet_zone: int = QR_QUIET_ZONE
) -> int:
    """Draw a QR code for `data` in the square of side `size` with lower-left corner (x, y).

    The square includes `quiet_zone` modules of margin on every side (left unpainted).
    Each horizontal run of dark modules is one rectangle, all in one filled path, so the
    code costs a few hundred bytes. Returns the number of modules per side (no margin).
    """
    matrix = _module_rows(data)
    modules = len(matrix)
    module = size / (modules + 2 * quiet_zone)
    # Draw in module units (origin at the symbol's top-left, y down) so every rectangle
    # is four small integers: formatting ~300 float rectangles costs more than encoding.
    operators = [
        f"{start} {row} {length} 1 re"
        for row, cells in enumerate(matrix)
        for start, length in _dark_runs(cells)
    ]
    canvas.saveState()
    canvas.setFillColorRGB(0, 0, 0)
    canvas.transform(module, 0, 0, -module, x + quiet_zone * module, y + size - quiet_zone * module)
    canvas.addLiteral("\n".join(operators) + "\nf")
    canvas.restoreState()
    return modules


def draw_code128(canvas: Any, data: str, x: float, y: float, width: float, height: float) -> None:
    """Draw a Code 128 barcode of `data` (printable ASCII) filling width x height at (x, y).

    No quiet zone and no human-readable text: leave ~10 modules of white either side and
    print the text yourself.
    """
    if not data or not data.isascii() or not data.isprintable():
        raise ValueError("Code 128 data must be non-empty printable ASCII")
    if _zint is None:
        from reportlab.graphics.barcode.code128 import Code128

        probe = Code128(data, barWidth=1, barHeight=height, quiet=False, humanReadable=False)
        barcode = Code128(
            data,
            barWidth=width / probe.width,
            barHeight=height,
            quiet=False,
            humanReadable=False,
        )
        barcode.drawOn(canvas, x, y)
        return
    (row,) = _zint_rows(_zint.Symbology.CODE128, data.encode("ascii"))
    operators = [f"{start} 0 {length} 1 re" for start, length in _dark_runs(row)]
    canvas.saveState()
    canvas.setFillColorRGB(0, 0, 0)
    canvas.transform(width / len(row), 0, 0, height, x, y)
    canvas.addLiteral("\n".join(operators) + "\nf")
    canvas.restoreState()
