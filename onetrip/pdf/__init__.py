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

import functools
import re
import zlib
from collections import OrderedDict
from typing import Any

from reportlab import rl_config
from reportlab.pdfbase import pdfdoc, pdfmetrics
from reportlab.pdfgen import canvas as _canvas
from reportlab.pdfgen import pathobject, textobject

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
    reserve_characters,
    reset_cjk_font,
)
from onetrip.pdf.layout import Block, LabelledRow, LabelledTable, SplittableBlock
from onetrip.pdf.numbers import fp_str, set_fill_rgb, set_stroke_rgb
from onetrip.pdf.subsets import SubsetFile, SubsetText, forget_oldest
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
    if type(text) in _SHARED:  # a font subset or its CMap documents share: compressed once
        compressed = _FLATED.pop(text, None)
        if compressed is None:
            data = text.encode("utf8") if type(text) is SubsetText else text
            compressed = _deflate.compress(data, 1)
        _FLATED[text] = compressed  # last: the least recently used is forgotten first
        forget_oldest(_FLATED, _FLATED_MAX)
        return compressed
    return _deflate.compress(text.encode("utf8") if isinstance(text, str) else text, 1)


#: compressed font subsets and CMaps, by the subset's file or CMap (the same object for
#: the same subset)
_FLATED: dict[bytes | str, bytes] = {}
_SHARED = frozenset((SubsetFile, SubsetText))
_FLATED_MAX = 32


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
    # An array of plain numbers (a font subset's ~200 glyph Widths, floats for a
    # TrueType subset) formats each through pdfdoc.format, fp_str and the pdfdoc codec,
    # ~1 ms a licence; fp_str(int) is str(int) and fp_str's text is ASCII, so writing
    # them directly gives the same bytes (layout as ReportLab's, below) in a fraction.
    sequence = self.sequence
    types = tuple(map(type, sequence))
    if not sequence or not _NUMBER_TYPES.issuperset(types):
        return _reportlab_array_format(self, document, IND)
    # The same arrays come back in every document (the shared subset's Widths, the
    # MediaBox, a font's bounding box): their text is remembered whole, by the numbers
    # and their types (1000 and 1000.0 are equal keys, written by different functions)
    # and the layout asked for.
    lines = bool((self.multiline and rl_config.pdfMultiLine) or self.multiline == "forced")
    key = (tuple(sequence), types, lines, IND)
    text = _ARRAYS.pop(key, None)
    if text is None:
        text = _number_array(sequence, lines, IND)
    _ARRAYS[key] = text  # last: the least recently used is forgotten first
    forget_oldest(_ARRAYS, _ARRAYS_MAX)
    return text


def _number_array(sequence: list[Any], lines: bool, IND: bytes) -> bytes:
    """ReportLab's text of an array of ints and floats, laid out on `lines` or not."""
    cache = _FLOAT_TEXT
    if len(cache) > _FLOAT_TEXT_MAX:
        cache.clear()
    items = []
    for element in sequence:
        if type(element) is int:
            items.append(b"%d" % element)
            continue
        text = cache.get(element)
        if text is None:  # a font's few distinct advance widths, formatted once each
            text = cache[element] = fp_str(element).encode("ascii")
        items.append(text)
    if lines:
        return b"[ " + IND.join(items) + b" ]"
    for index in reversed(range(10, len(items), 10)):  # a line break every 10 numbers
        items.insert(index, b"\n ")
    return b"[ " + b" ".join(items) + b" ]"


_NUMBERS = (int, float)
_NUMBER_TYPES = frozenset(_NUMBERS)
#: the text of the number arrays formatted lately, by (numbers, their types, layout)
_ARRAYS: dict[tuple[Any, ...], bytes] = {}
_ARRAYS_MAX = 256
#: fp_str's text of the floats formatted so far (a font's advance widths: the same few
#: hundred values in every document), emptied when it grows past its bound
_FLOAT_TEXT: dict[float, bytes] = {}
_FLOAT_TEXT_MAX = 10_000
_reportlab_dictionary_format = pdfdoc.PDFDictionary.format


@functools.lru_cache(maxsize=1024)
def _name(key: str) -> bytes:
    """A dictionary key as ReportLab writes it (`/Name`, escaped): the same few dozen
    keys in every document, each escaped character by character in Python."""
    return pdfdoc.format(pdfdoc.PDFName(key), None)


def _dictionary_format(
    self: pdfdoc.PDFDictionary, document: pdfdoc.PDFDocument, IND: bytes = b"\n "
) -> bytes:
    # ReportLab's own code, but for the keys' names taken from _name's cache.
    entries = self.dict
    keys = list(entries.keys())
    if not isinstance(entries, OrderedDict):
        keys.sort()
    if not all(type(key) is str for key in keys):
        return _reportlab_dictionary_format(self, document, IND)
    form = pdfdoc.format
    lines = [_name(key) + b" " + form(entries[key], document) for key in keys]
    if (self.multiline and rl_config.pdfMultiLine) or self.multiline == "forced":
        return b"<<\n" + IND.join(lines) + b"\n>>"
    for index in reversed(range(6, len(lines), 6)):  # a line break every 6 entries
        lines.insert(index, b"\n ")
    return b"<<\n" + b" ".join(lines) + b"\n>>"


_reportlab_pdfdoc_encode = pdfdoc.pdfdocEnc
#: the ASCII characters the pdfdoc encoding has no code for (ReportLab raises on them)
_NOT_IN_PDFDOC = re.compile("[\x18-\x1f]")


def _pdfdoc_encode(text: Any) -> Any:
    # Every number, name and operator ReportLab writes goes through its Python charmap
    # codec; for ASCII (all but a few control characters) it is the identity.
    if (
        type(text) is str
        and text.isascii()
        and (text.isprintable() or _NOT_IN_PDFDOC.search(text) is None)  # printable: no \x18
    ):
        return text.encode("ascii")
    return _reportlab_pdfdoc_encode(text)


_reportlab_string_format = pdfdoc.PDFString.format


def _string_format(self: pdfdoc.PDFString, document: Any) -> bytes:
    # A text string (the info dictionary's author, creator, producer, subject, dates:
    # the same in every document of a kind) is tried in the pdfdoc codec, failing on the
    # first Chinese character, re-encoded as UTF-16 and escaped, all in Python. Without
    # encryption its text depends only on the string and its escaping: remembered.
    text = self.s
    if (
        type(text) is not str
        or type(document.encrypt) is not pdfdoc.NoEncryption
        or getattr(self, "enc", "auto") != "auto"
    ):
        return _reportlab_string_format(self, document)
    key = (text, getattr(self, "escape", 1))
    made = _STRINGS.pop(key, None)
    if made is None:
        made = _reportlab_string_format(self, document)
    _STRINGS[key] = made  # last: the least recently used is forgotten first
    forget_oldest(_STRINGS, _STRINGS_MAX)
    return made


#: the text of the strings formatted lately, by (string, escaping)
_STRINGS: dict[tuple[str, Any], bytes] = {}
_STRINGS_MAX = 512
_reportlab_pdf_name = pdfdoc.PDFName


def _pdf_name(data: Any, lo: str = "!", hi: str = "~") -> str:
    # ReportLab escapes a name character by character in Python; a document writes the
    # same few dozen (/Font, /Type1, its fonts' names) each time: remembered.
    if type(data) is not str or lo != "!" or hi != "~":
        return _reportlab_pdf_name(data, lo, hi)
    name = _NAMES.get(data)
    if name is None:
        name = _reportlab_pdf_name(data)
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        _NAMES[data] = name
    return name


#: `/Name` of each name written so far, emptied when it grows past its bound
_NAMES: dict[str, str] = {}
_NAMES_MAX = 2048

pdfdoc.PDFDictionary.format = _dictionary_format  # type: ignore[method-assign]
pdfdoc.PDFString.format = _string_format  # type: ignore[method-assign]
pdfdoc.PDFName = _pdf_name
pdfdoc.pdfdocEnc = _pdfdoc_encode
pdfdoc.PDFArray.format = _array_format  # type: ignore[method-assign]

# Each number ReportLab writes is formatted by name through the module's own `fp_str`:
# the remembered one (`numbers`) in the modules that draw and write a document.
for _module in (pdfdoc, _canvas, textobject, pathobject):
    _module.fp_str = fp_str  # type: ignore[attr-defined]
_reportlab_encoding_object = pdfmetrics.Encoding.makePDFObject


def _encoding_object(self: pdfmetrics.Encoding) -> Any:
    # A standard font's encoding (WinAnsi for Helvetica) is compared with its base
    # encoding name by name, 256 in Python, for each document that uses the font. A
    # frozen encoding no different from its frozen base is that base's name: a string,
    # the same every time, remembered on the encoding with the base it was compared to.
    base = pdfmetrics.getEncoding(self.baseEncodingName)
    if not (self.frozen and base.frozen):
        return _reportlab_encoding_object(self)
    known = self.__dict__.get("_onetrip_pdf_name")
    if known is not None and known[0] is base:
        return known[1]
    made = _reportlab_encoding_object(self)
    if type(made) is str:
        self._onetrip_pdf_name = (base, made)
    return made


pdfmetrics.Encoding.makePDFObject = _encoding_object  # type: ignore[method-assign]
_canvas.Canvas.setFillColorRGB = set_fill_rgb  # type: ignore[method-assign]
_canvas.Canvas.setStrokeColorRGB = set_stroke_rgb  # type: ignore[method-assign]

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
    "SubsetFile",
    "SubsetText",
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
    "reserve_characters",
    "reset_cjk_font",
    "text_width",
    "wrap_lines",
    "wrap_text",
]
