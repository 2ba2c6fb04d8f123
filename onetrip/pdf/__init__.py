"""PDF kernel: what receipts, licences, labels, manifests and settlement reports share.

Every document draws with ReportLab on a plain canvas (a page in ~5 ms; platypus and
HTML renderers are many times slower) and only lays out its own page; this package
knows nothing of payments or matters.

- `fonts`: the embedded Chinese font (configured path, then Debian's TrueType CJK
  packages; STSong-Light, not embedded, only as a logged fallback), and the chain of
  fallback fonts a character it lacks is drawn in (`font_runs`).
- `barcodes`: QR and Code 128 from libzint's module matrix, drawn as rectangles.
- `text`: drawing and measuring a line (`text_width`, through the fallback chain),
  wrapping (CJK anywhere, Latin at spaces), styled line stacks.
- `layout`: blocks for the flow, the labelled-line table.
- `document`: the builder — metadata, reproducible bytes, new pages when a block does
  not fit, headers / footers / page numbers / watermarks drawn once the page count is
  known.
"""

from __future__ import annotations

import zlib

from reportlab import rl_config
from reportlab.pdfbase import pdfdoc

from onetrip.pdf.barcodes import (
    QR_QUIET_ZONE,
    barcode_backend,
    draw_code128,
    draw_qr,
    qr_matrix,
    qr_size,
)
from onetrip.pdf.document import (
    Box,
    Document,
    PageDecoration,
    PageInfo,
    page_label,
    page_numbers,
    pdf_date,
)
from onetrip.pdf.fonts import (
    CID_FALLBACK_FONT,
    DEBIAN_CJK_FONTS,
    DEBIAN_FALLBACK_FONTS,
    MISSING_FONT_ADVICE,
    CjkFont,
    FontChain,
    FontInUse,
    cjk_bold_font,
    cjk_emphasis,
    cjk_font,
    cjk_font_embedded,
    cjk_font_in_use,
    current_cjk_font,
    find_cjk_font,
    font_chain,
    font_runs,
    parse_font_list,
    parse_font_spec,
    reset_cjk_font,
)
from onetrip.pdf.layout import Block, LabelledRow, LabelledTable, SplittableBlock
from onetrip.pdf.text import (
    GREY,
    INK,
    LATIN,
    LATIN_BOLD,
    RULE,
    SEAL_RED,
    SHADE,
    Line,
    block_height,
    draw_lines,
    draw_text,
    fit_text,
    text_width,
    wrap_lines,
    wrap_text,
)

# ReportLab wraps compressed streams in ASCII85, a relic of 7-bit mail transports: its
# pure-Python encoder costs ~2 ms a receipt and makes those streams 25 % bigger.
rl_config.useA85 = 0


try:  # ISA-L's deflate: the same zlib streams, ~8× faster than zlib's at level 1
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - depends on the installed wheels
    _deflate = zlib


def _flate_fast(self: pdfdoc.PDFStreamFilterZCompress, text: str | bytes) -> bytes:
    return _deflate.compress(text.encode("utf8") if isinstance(text, str) else text, 1)


def flate_backend() -> str:
    """ "isal" when ISA-L compresses the PDF streams, else "zlib"."""
    return "zlib" if _deflate is zlib else "isal"


# Flate at level 1, not zlib's default 6, and through ISA-L when its wheel is installed:
# the embedded Chinese font subset (~43 KB, mostly glyph outlines that compress by ~30 %)
# is most of a document's bytes. zlib took 1.7 ms to compress it, a quarter of a
# licence's rendering on this machine; ISA-L takes 0.2 ms for 1 % more bytes
# (benchmarks/RESULTS.md). Still deterministic: the same input, the same bytes. Any
# reader inflates it: it is a plain zlib stream.
pdfdoc.PDFStreamFilterZCompress.encode = _flate_fast  # type: ignore[method-assign]

_reportlab_array_format = pdfdoc.PDFArray.format


def _array_format(
    self: pdfdoc.PDFArray, document: pdfdoc.PDFDocument, IND: bytes = b"\n "
) -> bytes:
    # An array of plain ints (a font subset's ~200 glyph Widths) formats each number
    # through pdfdoc.format and fp_str, ~0.2 ms a licence; fp_str(int) is str(int), so
    # writing them directly gives the same bytes (layout as ReportLab's, below) in 1/4.
    sequence = self.sequence
    if not sequence or not all(type(element) is int for element in sequence):
        return _reportlab_array_format(self, document, IND)
    items = [b"%d" % element for element in sequence]
    if (self.multiline and rl_config.pdfMultiLine) or self.multiline == "forced":
        return b"[ " + IND.join(items) + b" ]"
    for index in reversed(range(10, len(items), 10)):  # a line break every 10 numbers
        items.insert(index, b"\n ")
    return b"[ " + b" ".join(items) + b" ]"


pdfdoc.PDFArray.format = _array_format  # type: ignore[method-assign]

__all__ = [
    "CID_FALLBACK_FONT",
    "DEBIAN_CJK_FONTS",
    "DEBIAN_FALLBACK_FONTS",
    "GREY",
    "INK",
    "LATIN",
    "LATIN_BOLD",
    "MISSING_FONT_ADVICE",
    "QR_QUIET_ZONE",
    "RULE",
    "SEAL_RED",
    "SHADE",
    "Block",
    "Box",
    "CjkFont",
    "Document",
    "FontChain",
    "FontInUse",
    "LabelledRow",
    "LabelledTable",
    "Line",
    "PageDecoration",
    "PageInfo",
    "SplittableBlock",
    "barcode_backend",
    "block_height",
    "cjk_bold_font",
    "cjk_emphasis",
    "cjk_font",
    "cjk_font_embedded",
    "cjk_font_in_use",
    "current_cjk_font",
    "draw_code128",
    "draw_lines",
    "draw_qr",
    "draw_text",
    "find_cjk_font",
    "fit_text",
    "flate_backend",
    "font_chain",
    "font_runs",
    "page_label",
    "page_numbers",
    "parse_font_list",
    "parse_font_spec",
    "pdf_date",
    "qr_matrix",
    "qr_size",
    "reset_cjk_font",
    "text_width",
    "wrap_lines",
    "wrap_text",
]
