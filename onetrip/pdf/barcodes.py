"""QR codes (an image mask of the module matrix) and Code 128 barcodes (filled rectangles).

libzint (`zint-bindings`) encodes a QR code in ~0.15 ms; segno (~7 ms) is the fallback
when its wheel is missing. ReportLab's own QR widget (~16-35 ms a code) is never used.
"""

from __future__ import annotations

import functools
import re
from typing import Any

try:  # libzint; optional so a platform without its wheel still renders
    import zint as _zint
except ImportError:  # pragma: no cover - depends on the installed wheels
    _zint = None

QR_QUIET_ZONE = 4  # modules of white margin the QR standard asks for around the symbol


def barcode_backend() -> str:
    """ "zint" when libzint draws barcodes, else "fallback" (segno for QR, ReportLab for 128)."""
    return "zint" if _zint is not None else "fallback"


def _zint_rows(
    symbology: Any, payload: bytes, option_1: int | None = None, *, fast: bool = False
) -> list[str]:
    symbol = _zint_symbol(symbology, payload, option_1, fast)
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


def _zint_symbol(symbology: Any, payload: bytes, option_1: int | None, fast: bool) -> Any:
    symbol = _zint.Symbol()
    symbol.symbology = symbology
    symbol.warn_level = _zint.WarningLevel.FAIL_ALL
    if option_1 is not None:
        symbol.option_1 = option_1
    if fast:
        symbol.input_mode = _zint.InputMode.FAST
    symbol.encode(payload)
    return symbol


#: each byte with its bits in the opposite order: libzint packs a row's modules least
#: significant bit first, an image mask wants the first module in the highest bit
_REVERSED_BITS = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


@functools.lru_cache(maxsize=64)
def _qr_mask(data: str, backend: Any) -> tuple[int, str]:
    """(modules per side, `_mask_hex` of the rows) of the QR code for `data`: from
    libzint's packed rows, each row's bytes bit-reversed in C, without spelling the
    modules out as text; from the rows of the fallback encoder otherwise."""
    if backend is None or not data:
        rows = _module_rows(data)
        return len(rows), _mask_hex(rows)
    symbol = _zint_symbol(
        backend.Symbology.QRCODE, data.encode("utf-8"), option_1=2, fast=True
    )  # the same symbol as `_encoded_rows`
    stride = symbol.encoded_data.shape[1]
    packed = symbol.encoded_data.tobytes()
    width, count = symbol.width, symbol.rows
    size = (width + 7) // 8
    starts = range(0, count * stride, stride)
    rows = bytearray().join([packed[start : start + size] for start in starts])
    if width % 8:  # what follows the last module of a row is padding: light
        last = (1 << width % 8) - 1  # the low bits, before they are reversed
        for index in range(size - 1, len(rows), size):
            rows[index] &= last
    return count, rows.translate(_REVERSED_BITS).hex()


def _module_rows(data: str) -> tuple[str, ...]:
    """The QR code for `data` as rows of "1" (dark) and "0" (light) modules.

    Remembered for a few codes: a page that sizes its QR code by its module count
    (`qr_matrix`) and then draws it (`draw_qr`) encodes it once."""
    if not data:
        raise ValueError("QR data is empty")
    return _encoded_rows(data, _zint)


@functools.lru_cache(maxsize=64)
def _encoded_rows(data: str, backend: Any) -> tuple[str, ...]:
    # `backend` (libzint, or None) is part of the key: a test may take libzint away
    payload = data.encode("utf-8")
    if backend is not None:
        # 2 = level M. FAST: zint's quicker choice of encoding modes, which for a URL is
        # a symbol of the same size in half the time (~0.5 ms of a licence's ~6 ms)
        return tuple(_zint_rows(backend.Symbology.QRCODE, payload, option_1=2, fast=True))
    import segno

    code = segno.make_qr(payload, error="m", boost_error=False)
    return tuple("".join("1" if module else "0" for module in row) for row in code.matrix)


def qr_matrix(data: str) -> list[list[bool]]:
    """The QR code for `data` (UTF-8, byte mode, error correction M) as rows of dark modules.

    Without the quiet zone. M survives ~15 % damage: enough for a folded printed receipt
    while keeping a tracking URL at a small version.
    """
    return [[module == "1" for module in row] for row in _module_rows(data)]


def qr_size(data: str) -> int:
    """Modules per side of `qr_matrix(data)` (no quiet zone), without building the matrix."""
    if not data:
        raise ValueError("QR data is empty")
    return _qr_mask(data, _zint)[0]


_DARK_RUN = re.compile("1+")


def _dark_runs(row: str) -> list[tuple[int, int]]:
    """(start, length) of each run of dark modules in a row of "1"/"0"."""
    return [(run.start(), run.end() - run.start()) for run in _DARK_RUN.finditer(row)]


def _mask_hex(rows: tuple[str, ...]) -> str:
    """The modules as a 1-bit image, row by row from the top, each row padded to whole
    bytes (1 = dark), in hex."""
    padding = "0" * (-len(rows[0]) % 8)
    size = (len(rows[0]) + 7) // 8
    return "".join(int(row + padding, 2).to_bytes(size, "big").hex() for row in rows)


def draw_qr(
    canvas: Any, data: str, x: float, y: float, size: float, *, quiet_zone: int = QR_QUIET_ZONE
) -> int:
    """Draw a QR code for `data` in the square of side `size` with lower-left corner (x, y).

    The square includes `quiet_zone` modules of margin on every side (left unpainted).
    The symbol is an inline image mask, one bit a module (a few hundred bytes), scaled to
    its square: every renderer paints a mask's samples as sharp-edged squares in the
    fill colour, and writing it costs a few microseconds, where ~700 rectangles (one per
    run of dark modules) took ~0.5 ms of a licence's ~6. Returns the number of modules
    per side (no margin).
    """
    if not data:
        raise ValueError("QR data is empty")
    modules, mask = _qr_mask(data, _zint)
    module = size / (modules + 2 * quiet_zone)
    side = modules * module
    canvas.saveState()
    canvas.setFillColorRGB(0, 0, 0)
    canvas.transform(side, 0, 0, side, x + quiet_zone * module, y + quiet_zone * module)
    # /IM true: a stencil mask; /D [1 0]: a 1 bit paints; /F /AHx: the bits in hex, so
    # the content stream stays text
    canvas.addLiteral(f"BI /W {modules} /H {modules} /IM true /D [1 0] /F /AHx ID\n{mask}>\nEI")
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
