"""The kernel's faster replacements for ReportLab internals give ReportLab's own bytes."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from reportlab.pdfbase import pdfdoc, ttfonts

from onetrip import pdf
from onetrip.pdf import barcodes, fonts, numbers, subsets

FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # the licence's CJK font
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # many composite glyphs (accents)
    # fewer hmetrics than glyphs: ReportLab keeps the last advance as a scaled float
    "/usr/share/fonts/truetype/hanazono/HanaMinA.ttf",
)


@pytest.mark.parametrize("path", FONTS)
def test_font_subsets_are_reportlabs_bytes(path: str) -> None:
    if not Path(path).is_file():
        pytest.skip(f"{path} not installed")
    face = ttfonts.TTFontFace(path)
    codes = sorted(face.charToGlyph)
    rng = random.Random(7)
    assert subsets.make_subset(face, [0]) == subsets._reportlab_make_subset(face, [0])
    for size in (1, 2, 31, 128, 255, 256):
        for _ in range(4):
            subset = [*rng.sample(codes, size), 0x10FFFF]  # one the font lacks
            if rng.random() < 0.5:
                subset = [0] * 32 + subset  # ReportLab's subset 0: .notdef until filled
            expected = subsets._reportlab_make_subset(face, subset)
            assert subsets.make_subset(face, subset) == expected
    # the same advance throughout, and the last glyph's advance unlike the others
    same = [code for code in codes if face.getCharWidth(code) == face.getCharWidth(codes[-1])]
    for subset in (same[:40], [*same[:40], rng.choice(codes)], same[:1]):
        assert subsets.make_subset(face, subset) == subsets._reportlab_make_subset(face, subset)
    # the composite glyphs' component references were renumbered, not merely copied
    assert "hanazono" in path or face.__dict__[subsets._CACHE].components


def test_font_subsets_are_installed_for_every_face() -> None:
    assert ttfonts.TTFontFace.makeSubset is subsets.make_subset


def test_int_arrays_are_reportlabs_bytes() -> None:
    document = pdfdoc.PDFDocument()
    rng = random.Random(3)
    for length in (0, 1, 9, 10, 11, 20, 21, 203):
        for multiline in (True, False, "forced"):
            array = pdfdoc.PDFArray([rng.randint(-3000, 3000) for _ in range(length)])
            array.multiline = multiline
            expected = pdf._reportlab_array_format(array, document)
            assert array.format(document) == expected


def test_the_qr_mask_paints_exactly_the_dark_modules() -> None:
    data = "https://onetrip.gov.cn/verify/" + "x7" * 90
    rows = barcodes._module_rows(data)
    raw = bytes.fromhex(barcodes._mask_hex(rows))
    stride = (len(rows) + 7) // 8
    painted = {
        (x, y)
        for y in range(len(rows))
        for x in range(stride * 8)
        if raw[y * stride + x // 8] >> (7 - x % 8) & 1
    }
    dark = {(x, y) for y, row in enumerate(pdf.qr_matrix(data)) for x, on in enumerate(row) if on}
    assert painted == dark and len(raw) == stride * len(rows)


def test_streams_are_isal_deflated_and_inflate_with_zlib() -> None:
    """ISA-L compresses the streams (it is a dependency, so tests run with it) and any
    reader's zlib inflates them back to what ReportLab wrote."""
    import zlib

    from isal import isal_zlib

    assert pdf.flate_backend() == "isal"
    payload = bytes(random.Random(5).randbytes(20_000)) + b"BT /F1 12 Tf (text) Tj ET\n" * 900
    encoded = pdfdoc.PDFStreamFilterZCompress().encode(payload)
    assert encoded == isal_zlib.compress(payload, 1)
    assert encoded != zlib.compress(payload, 1)  # not zlib's own bytes: ISA-L did it
    assert zlib.decompress(encoded) == payload
    assert pdfdoc.PDFStreamFilterZCompress().encode("片段 text") == isal_zlib.compress(
        "片段 text".encode(), 1
    )


def test_number_arrays_and_dictionaries_are_reportlabs_bytes() -> None:
    document = pdfdoc.PDFDocument()
    rng = random.Random(11)
    for length in (1, 4, 10, 11, 203):
        for multiline in (True, False, "forced"):
            numbers = [rng.choice([rng.uniform(-3000, 3000), rng.randint(-9, 9), 0.5, 1000.0])]
            numbers += [rng.uniform(0, 1000) for _ in range(length - 1)]
            array = pdfdoc.PDFArray(numbers)
            array.multiline = multiline
            assert array.format(document) == pdf._reportlab_array_format(array, document)
            entries = {f"K{n}#(x)é"[: rng.randint(1, 7)]: value for n, value in enumerate(numbers)}
            entries["Type"] = pdfdoc.PDFName("Font")
            entries["Name"] = pdfdoc.PDFString("片段 (text)")
            dictionary = pdfdoc.PDFDictionary(entries)
            dictionary.multiline = multiline
            expected = pdf._reportlab_dictionary_format(dictionary, document)
            assert dictionary.format(document) == expected


def test_pdfdoc_text_is_encoded_as_reportlab_does() -> None:
    for text in [*map(chr, range(256)), "BT /F1 12 Tf", "éà", "片段", "\x18x", b"raw"]:
        try:
            expected = pdf._reportlab_pdfdoc_encode(text)
        except UnicodeEncodeError:
            with pytest.raises(UnicodeEncodeError):
                pdf._pdfdoc_encode(text)
            continue
        assert pdf._pdfdoc_encode(text) == expected


def test_a_licence_is_the_same_bytes_with_reportlabs_own_formatting(monkeypatch) -> None:
    """The whole document, drawn with the kernel's formatting and text operators and then
    with ReportLab's own functions put back: byte for byte the same file."""
    from reportlab.lib import rl_accel
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfgen import canvas, pathobject, textobject

    from delivery.documents import render_license
    from tests.unit.test_delivery_render_documents import DATA as data

    ours = render_license(data)
    monkeypatch.setattr(pdfdoc.PDFArray, "format", pdf._reportlab_array_format)
    monkeypatch.setattr(pdfdoc.PDFDictionary, "format", pdf._reportlab_dictionary_format)
    monkeypatch.setattr(pdfdoc, "pdfdocEnc", pdf._reportlab_pdfdoc_encode)
    monkeypatch.setattr(pdfdoc.PDFString, "format", pdf._reportlab_string_format)
    monkeypatch.setattr(pdfdoc, "PDFName", pdf._reportlab_pdf_name)
    monkeypatch.setattr(ttfonts.TTFontFace, "makeSubset", subsets._reportlab_make_subset)
    for module in (pdfdoc, canvas, textobject, pathobject, pdf.text):
        monkeypatch.setattr(module, "fp_str", rl_accel.fp_str)
    monkeypatch.setattr(ttfonts.TTFont, "splitString", fonts._reportlab_split_string)
    monkeypatch.setattr(fonts, "_reserved_again", lambda *_: False)  # splitString each time
    monkeypatch.setattr(pdf.text, "_line_key", lambda *_: None)  # every line drawn anew
    unwrapped = pdf.text._wrap_lines  # every line wrapped anew
    monkeypatch.setattr(
        pdf.layout, "wrap_lines", lambda lines, width, most=None: unwrapped(lines, width, most)
    )
    monkeypatch.setattr(pdfmetrics.Encoding, "makePDFObject", pdf._reportlab_encoding_object)
    monkeypatch.setattr(canvas.Canvas, "setFillColorRGB", numbers._reportlab_set_fill_rgb)
    monkeypatch.setattr(canvas.Canvas, "setStrokeColorRGB", numbers._reportlab_set_stroke_rgb)
    assert render_license(data) == ours
    monkeypatch.setattr(pdf.text, "_PLAIN_TEXT_OBJECTS", False)  # canvas.drawString again
    assert render_license(data) == ours


def test_draw_string_writes_what_reportlabs_drawstring_writes() -> None:
    """`text.draw_string` against `canvas.drawString` on twin canvases: the same content
    operators, the same font subsets, byte for byte the same file — for the Chinese
    TrueType font (more than one subset of 256 characters, escapes) and a standard
    Type 1 font with a character it borrows from a substitute font."""
    import io

    from reportlab.pdfgen.canvas import Canvas

    from onetrip.pdf import text as pdftext

    cjk = pdf.current_cjk_font().name
    rng = random.Random(17)
    hanzi = [chr(c) for c in range(0x4E00, 0x4E00 + 400)]
    strings = [
        (cjk, "持证人 Holder (王芳) 100\\\\号"),
        (cjk, "".join(rng.sample(hanzi, 300))),  # past one subset of 256
        (cjk, ""),
        ("Helvetica", "Licence No. (C1) \\\\ 50 € α ends"),
        ("Helvetica-Bold", "LICENCE"),
    ]

    # rendering modes and character spacing: as drawString's text object writes them
    styles = [(None, 0), (2, 0), (None, 3), (2, 6), (0, 0.5), (1, -0.25), (3, 0)]

    def draw(fast: bool) -> tuple[list[str], bytes]:
        out = io.BytesIO()
        canvas = Canvas(out, invariant=1)
        for m, (mode, space) in enumerate(styles):
            for n, (font, line) in enumerate(strings):
                canvas.setFont(font, 9 + n)
                x, y = 10.5 + n + m, 700 - 20 * n - 100 * m
                if fast:
                    pdftext.draw_string(canvas, x, y, line, mode=mode, char_space=space)
                else:
                    canvas.drawString(x, y, line, mode=mode, charSpace=space)
        code = list(canvas._code)
        canvas.showPage()
        canvas.save()
        return code, out.getvalue()

    assert pdftext._PLAIN_TEXT_OBJECTS
    assert draw(fast=True) == draw(fast=False)


def test_remembered_numbers_are_reportlabs_text() -> None:
    """`numbers.fp_str` against ReportLab's `fp_str`, each call twice (the second from
    what it remembered), and its text installed where ReportLab writes numbers."""
    from reportlab.lib import rl_accel
    from reportlab.pdfgen import canvas, pathobject, textobject

    rng = random.Random(23)
    values = [0, 1, 1.0, True, False, -0.0, 0.0, 1e-7, -1e-7, 2e-7, 0.5, -0.4, 0.99999999]
    values += [1e20, 10**20, 2**53 + 1, -3, 595.2756, 841.8898, 123456.7891, 0.1234567]
    values += [rng.uniform(-1000, 1000) for _ in range(200)]
    values += [round(rng.uniform(0, 600), rng.randint(0, 4)) for _ in range(200)]
    calls: list[tuple] = [(value,) for value in values]
    calls += [tuple(rng.sample(values, rng.randint(2, 6))) for _ in range(200)]
    calls += [([1, 2.5],), ((0.07, 0.07, 0.09),), ([],), ()]
    for call in calls * 2:
        assert numbers.fp_str(*call) == rl_accel.fp_str(*call), call
    for call in [("x",), (None,), (float("nan"),), (float("inf"),), ([1, [2]],)]:
        try:
            expected = rl_accel.fp_str(*call)
        except Exception as exc:
            with pytest.raises(type(exc)):
                numbers.fp_str(*call)
            continue
        assert numbers.fp_str(*call) == expected
    for module in (pdfdoc, canvas, textobject, pathobject):
        assert module.fp_str is numbers.fp_str


def test_remembered_widths_are_reportlabs_widths() -> None:
    """`fonts.string_width` against `pdfmetrics.stringWidth`, each twice (the second
    from what it remembered): Chinese, Latin, escapes, characters a font lacks, sizes
    as ints and floats, ReportLab's Type 1 fonts and the embedded TrueType font."""
    from reportlab.pdfbase import pdfmetrics

    cjk = pdf.current_cjk_font().name
    rng = random.Random(29)
    hanzi = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    texts = ["", " ", "持证人", "Holder", "浙公驾 330106-2026-000001", "(王芳) \\ 100%", "€ α ẞ"]
    texts += ["䶮𠀀𪚥", "LICENCE", "扫码核验 Scan to verify"]
    texts += ["".join(rng.sample(hanzi, rng.randint(1, 30))) for _ in range(50)]
    for font in (cjk, "Helvetica", "Helvetica-Bold"):
        for text in texts:
            for size in (7, 7.5, 10.5, 10, 30):
                expected = pdfmetrics.stringWidth(text, font, size)
                assert fonts.string_width(text, font, size) == expected
                assert fonts.string_width(text, font, size) == expected
    assert fonts.string_width("Holder", "Helvetica", 8) != fonts.string_width("Holder", cjk, 8)


def test_to_unicode_cmaps_are_reportlabs_text() -> None:
    """`subsets.to_unicode_cmap` against ReportLab's `makeToUnicodeCMap` (before the
    kernel's own fix of characters beyond the basic plane, `fonts._to_unicode_cmap`)."""
    rng = random.Random(31)
    for size in (0, 1, 2, 15, 16, 17, 128, 203, 255, 256, 257):
        for _ in range(3):
            picks = (0, 32, 0x4E00, 0xFFFF, 0x20000, rng.randint(0, 0x10FFFF))
            subset = [rng.choice(picks) for _ in range(size)]
            name = rng.choice(["AAAAAA+WenQuanYiMicroHei-0", "AAAAAB+DejaVuSans"])
            expected = subsets._reportlab_to_unicode_cmap(name, subset)
            assert subsets.to_unicode_cmap(name, subset) == expected
            assert subsets.to_unicode_cmap(name, subset) == expected  # remembered codes


def test_split_strings_are_reportlabs_and_assign_the_same_codes() -> None:
    """The TrueType `splitString` fast path against ReportLab's on twin documents: the
    same chunks for each string, and the same codes assigned, subset by subset."""
    from reportlab.pdfbase import pdfmetrics

    font = pdfmetrics.getFont(pdf.current_cjk_font().name)
    rng = random.Random(37)
    hanzi = [chr(c) for c in range(0x4E00, 0x4E00 + 600)]
    strings = ["Holder", "持证人", "持证人", "Holder 持证人 (C1) 100%", "", "a\xa0b", "持\xa0证"]
    strings += ["".join(rng.sample(hanzi, rng.randint(1, 40))) for _ in range(30)]
    strings += ["䶮", "Scan 扫码", "€", "持证人 Holder"]
    ours, theirs = pdfdoc.PDFDocument(), pdfdoc.PDFDocument()
    for text in strings * 2:
        expected = fonts._reportlab_split_string(font, text, theirs)
        assert font.splitString(text, ours) == expected, text
    mine, reportlabs = font.state[ours], font.state[theirs]
    assert mine.assignments == reportlabs.assignments
    assert (mine.subsets, mine.nextCode) == (reportlabs.subsets, reportlabs.nextCode)
    assert len(mine.subsets) > 1  # past subset 0: the second pass splits across subsets


def test_rgb_colours_are_set_as_reportlab_sets_them() -> None:
    """`numbers.set_fill_rgb` / `set_stroke_rgb` against ReportLab's setters on twin
    canvases: the same operators and the same colour state."""
    import io

    from reportlab.pdfgen.canvas import Canvas

    rng = random.Random(41)
    colours = [(0, 0, 0), (1, 1, 1), (0.07, 0.07, 0.09), (0.65, 0.1, 0.1), (True, 0, 0.5)]
    colours += [tuple(rng.random() for _ in range(3)) for _ in range(20)]
    ours, theirs = Canvas(io.BytesIO()), Canvas(io.BytesIO())
    for colour in colours * 2:
        for alpha in (None, 0.5):
            numbers.set_fill_rgb(ours, *colour, alpha=alpha)
            numbers._reportlab_set_fill_rgb(theirs, *colour, alpha=alpha)
            numbers.set_stroke_rgb(ours, *colour, alpha=alpha)
            numbers._reportlab_set_stroke_rgb(theirs, *colour, alpha=alpha)
            assert ours._code == theirs._code
            assert ours._fillColorObj == theirs._fillColorObj
            assert ours._strokeColorObj == theirs._strokeColorObj
    assert Canvas.setFillColorRGB is numbers.set_fill_rgb
    assert Canvas.setStrokeColorRGB is numbers.set_stroke_rgb


def test_encodings_are_written_as_reportlab_writes_them() -> None:
    """The remembered name of a frozen encoding no different from its base, against
    ReportLab's `makePDFObject`, each twice; an encoding with differences, or one not
    frozen, is ReportLab's own object every time."""
    from reportlab.pdfbase import pdfmetrics

    document = pdfdoc.PDFDocument()
    for name in ("WinAnsiEncoding", "MacRomanEncoding", "StandardEncoding", "SymbolEncoding"):
        encoding = pdfmetrics.getEncoding(name)
        for _ in range(2):
            assert encoding.makePDFObject() == pdf._reportlab_encoding_object(encoding)
    custom = pdfmetrics.Encoding("OneTripTestEncoding", "WinAnsiEncoding")
    custom[65] = "Aring"
    for frozen in (False, True):
        if frozen:
            custom.freeze()
        ours = custom.makePDFObject()
        expected = pdf._reportlab_encoding_object(custom)
        assert pdfdoc.format(ours, document) == pdfdoc.format(expected, document)
    assert "_onetrip_pdf_name" not in custom.__dict__


@pytest.mark.parametrize("path", FONTS)
def test_char_widths_are_reportlabs(path: str) -> None:
    """`face.getCharWidth` (a C look-up now) against ReportLab's method: every
    character of the font, characters it lacks, and after its widths change."""
    if not Path(path).is_file():
        pytest.skip(f"{path} not installed")
    face = ttfonts.TTFontFace(path)
    codes = [*face.charToGlyph, 0, 0x10FFFF, 0xE000, -1]
    assert list(map(face.getCharWidth, codes)) == [
        fonts._reportlab_char_width(face, code) for code in codes
    ]
    face.charWidths[0x10FFFF] = 123.0
    face.defaultWidth = 7.0
    assert face.getCharWidth(0x10FFFF) == 123.0 and face.getCharWidth(0xE000) == 7.0


def test_a_subset_made_again_is_the_same_file_compressed_once() -> None:
    """`make_subset` remembers what it made (a template's shared first subset), as a
    `SubsetFile` the stream filter compresses once; other bytes are compressed each
    time. The remembered file is still ReportLab's bytes, and inflates to them."""
    import zlib

    path = FONTS[0]
    if not Path(path).is_file():
        pytest.skip(f"{path} not installed")
    face = ttfonts.TTFontFace(path)
    subset = [0] * 32 + sorted(face.charToGlyph)[200:260]
    made = subsets.make_subset(face, subset)
    assert type(made) is subsets.SubsetFile
    assert subsets.make_subset(face, list(subset)) is made
    assert made == subsets._reportlab_make_subset(face, subset)
    flate = pdfdoc.PDFStreamFilterZCompress()
    compressed = flate.encode(made)
    assert flate.encode(made) is compressed and zlib.decompress(compressed) == made
    plain = bytes(made)
    assert flate.encode(plain) == compressed and flate.encode(plain) is not compressed
    # each document's own subset is made once and never again: it never pushes out the
    # one every document shares, however many there are; the memo stays bounded
    for n in range(3 * subsets.MADE_PER_FACE):
        flate.encode(subsets.make_subset(face, [0] * 32 + [0x4E00 + n]))
        assert subsets.make_subset(face, subset) is made
        assert flate.encode(made) is compressed
    assert len(face.__dict__[subsets._CACHE].made) <= subsets.MADE_PER_FACE
    assert len(pdf._FLATED) <= pdf._FLATED_MAX


def test_reserved_text_is_given_the_codes_reportlab_gives_it() -> None:
    """A template's text reserved again (`reserve_characters`, from the remembered
    state) against ReportLab's `splitString` on a twin document: the same codes, subsets
    and next code, for a second and a third document and after drawing more characters;
    each document gets its own copy (drawing in one does not change the next)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfgen.canvas import Canvas

    font = pdfmetrics.getFont(pdf.current_cjk_font().name)
    template = "持证人 Holder 证照编号 0123456789年月日至长期有效 (C1)" + "".join(
        chr(c)
        for c in range(0x4E00, 0x4E00 + 300)  # past one subset of 256
    )

    def twin() -> tuple[Any, Any]:
        canvas = Canvas(io.BytesIO(), invariant=1)
        pdf.reserve_characters(canvas, [font.fontName, "Helvetica"], template)
        theirs = pdfdoc.PDFDocument()
        fonts._reportlab_split_string(font, template, theirs)
        state = font.state[theirs]
        state.nextCode = (state.nextCode | 0xFF) + 1 if state.nextCode & 0xFF else state.nextCode
        return canvas._doc, theirs

    fonts._RESERVED.clear()
    for round in range(3):
        ours, theirs = twin()
        if round:  # remembered after the first document
            assert fonts._reserved_key(font, template) in fonts._RESERVED
        assert font.state[ours].__dict__ == font.state[theirs].__dict__
        for text in ("", "王芳", "持证人 王芳 浙", "䶮"):
            assert font.splitString(text, ours) == fonts._reportlab_split_string(font, text, theirs)
        mine, reportlabs = font.state[ours], font.state[theirs]
        assert mine.__dict__ == reportlabs.__dict__
        assert type(mine) is type(reportlabs)
    assert len(fonts._RESERVED) <= fonts._RESERVED_MAX


def test_remembered_number_arrays_are_reportlabs_bytes() -> None:
    """An array formatted again (from the remembered text) against ReportLab's: equal
    numbers of different types (written by different functions), the same numbers laid
    out otherwise, a changed array; arrays that are not all numbers are ReportLab's."""
    document = pdfdoc.PDFDocument()
    widths = [1000, 268.0664, 550.7812, 1000.0, 10**16, 1e16, -0.0, 0.5]
    cases = [widths, [float(n) for n in widths], [1000] * 13, [1000.0] * 13, [10**16], [1e16]]
    cases += [[0, 0, 595.2756, 841.8898], [True, 2], [1, "x"], [], [float("nan"), 1]]
    cases += [widths * 30, [*widths[:-1], 0.25] * 30]
    pdf._ARRAYS.clear()
    for _ in range(2):
        for values in cases:
            for multiline in (True, False, "forced"):
                array = pdfdoc.PDFArray(values)
                array.multiline = multiline
                expected = pdf._reportlab_array_format(array, document)
                assert array.format(document) == expected, (values, multiline)
                assert array.format(document, IND=b"\n") == pdf._reportlab_array_format(
                    array, document, IND=b"\n"
                )
    assert pdf._ARRAYS and len(pdf._ARRAYS) <= pdf._ARRAYS_MAX


def test_remembered_strings_and_names_are_reportlabs_bytes() -> None:
    """PDF text strings and names formatted again (from the remembered text) against
    ReportLab's own `PDFString.format` and `PDFName`: Chinese (UTF-16), pdfdoc text,
    escapes, each escaping mode; bytes and an encrypting document are ReportLab's way."""

    class Encrypting(pdfdoc.NoEncryption):  # stands for an encrypted document
        def encode(self, t: bytes) -> bytes:
            return bytes(reversed(t))

    plain, encrypted = pdfdoc.PDFDocument(), pdfdoc.PDFDocument()
    encrypted.encrypt = Encrypting()
    texts = ["", "OneTrip Government Services", "杭州市公安局交通警察支队", "(a) \\ b\n", "é€ ()"]
    texts += ["D:20261201020001+00'00'", "片段 (text)", "x\x18y", "𠀀 name", "((", "a)b(c"]
    pdf._STRINGS.clear()
    for _ in range(2):
        for text in [*texts, *(t.encode() for t in texts[:3])]:
            for escape in (0, 1, 2, 4, 6, 7):
                string = pdfdoc.PDFString(text, escape=escape)
                for document in (plain, encrypted):
                    try:
                        expected = pdf._reportlab_string_format(string, document)
                    except Exception as exc:
                        with pytest.raises(type(exc)):
                            string.format(document)
                        continue
                    assert string.format(document) == expected, (text, escape)
            raw = pdfdoc.PDFString(text, enc="raw") if isinstance(text, bytes) else None
            if raw is not None:
                assert raw.format(plain) == pdf._reportlab_string_format(raw, plain)
        for name in ["Font", "Type1", "AAAAAA+WenQuanYiMicroHei-0", "a b#(c)", "持证", "", "%~!"]:
            assert pdfdoc.PDFName(name) == pdf._reportlab_pdf_name(name)
            assert pdfdoc.PDFName(name, "a", "z") == pdf._reportlab_pdf_name(name, "a", "z")
    assert pdf._STRINGS and pdf._NAMES
    assert pdfdoc.PDFString.format is pdf._string_format and pdfdoc.PDFName is pdf._pdf_name


def test_the_qr_mask_from_zints_packed_rows_is_the_mask_of_its_modules() -> None:
    """`barcodes._qr_mask` (libzint's packed rows bit-reversed) against `_mask_hex` of
    the modules spelt out row by row (`_module_rows`), for symbols of many versions
    (rows ending in a byte with one or five modules) and Chinese text; `draw_qr` writes
    that mask."""
    rng = random.Random(43)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~/"
    texts = ["a", "缴费凭证 张伟", "https://onetrip.gov.cn/verify/" + "x7" * 90]
    texts += ["".join(rng.choices(alphabet, k=rng.randint(1, 400))) for _ in range(60)]
    widths = set()
    for text in texts:
        rows = barcodes._module_rows(text)
        widths.add(len(rows) % 8)
        assert barcodes._qr_mask(text, barcodes._zint) == (len(rows), barcodes._mask_hex(rows))
        assert pdf.qr_size(text) == len(rows)
    assert widths == {1, 5}  # 4 × version + 17 modules: both kinds of last byte

    class Recording:
        def __init__(self) -> None:
            self.literals: list[str] = []

        def addLiteral(self, text: str) -> None:
            self.literals.append(text)

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    canvas = Recording()
    assert pdf.draw_qr(canvas, texts[2], 0, 0, 100) == len(barcodes._module_rows(texts[2]))
    assert barcodes._mask_hex(barcodes._module_rows(texts[2])) in canvas.literals[0]


def test_lines_drawn_again_write_what_drawing_them_writes(monkeypatch) -> None:
    """`draw_text` from its remembered lines (`text._LINES`) against drawing every line
    (no key) on twin documents, each drawn three times: the same operators after every
    line, the same width, the same font state, the same file; lines with characters
    new to the document, fallback fonts, synthetic bold in changing colours, spacing,
    alignments, standard fonts and Symbol."""
    from reportlab.pdfgen.canvas import Canvas

    from onetrip.pdf import text as pdftext

    cjk = pdf.current_cjk_font().name
    lines = [
        (cjk, "持证人", {}),
        (cjk, "持证人", {"align": "right"}),  # the same text at the same x and y
        (cjk, "杭州市公安局交通警察支队", {"align": "centre", "synthetic_bold": True}),
        (cjk, "机动车驾驶证", {"synthetic_bold": True, "char_space": 6, "align": "centre"}),
        (cjk, "浙公驾 330106-2026-000001 (C1) \\\\", {"align": "right"}),
        (cjk, "王䶮芳", {}),  # a character of a fallback font: runs of their own
        (cjk, "a\xa0b 持", {}),
        ("Helvetica", "Verify this licence (x) \\\\", {}),
        ("Helvetica-Bold", "LICENCE", {"align": "centre", "char_space": 3}),
        ("Helvetica", "50 € α", {}),  # substitute fonts
        ("Symbol", "abc", {}),
    ]
    colours = [(0.07, 0.07, 0.09), (0.65, 0.1, 0.1)]

    def draw(remember: bool, reserved: str = "持证人杭州市") -> tuple[list[Any], bytes]:
        if not remember:
            monkeypatch.setattr(pdftext, "_line_key", lambda *_: None)
        out = io.BytesIO()
        canvas = Canvas(out, invariant=1)
        pdf.reserve_characters(canvas, [cjk], reserved)
        seen = []
        for round in range(3):
            for n, (font, line, options) in enumerate(lines):
                canvas.setFillColorRGB(*colours[(n + round) % 2])
                x, y = 50 + n // 2, 700 - 12 * (n // 2)
                width = pdf.draw_text(canvas, x, y, line, font, 9 + n // 2, **options)
                state = (canvas._fontname, canvas._fontsize, canvas._leading)
                seen.append((width, state, list(canvas._code)))
        canvas.showPage()
        canvas.save()
        monkeypatch.undo()
        return seen, out.getvalue()

    pdftext._LINES.clear()
    ours = draw(remember=True)
    assert len(pdftext._LINES) >= 6  # remembered: the CJK, Helvetica and bold lines
    theirs = draw(remember=False)
    assert ours == theirs
    assert draw(remember=True) == theirs  # every line from the memory this time
    # other codes for the same characters (another template's reserved text)
    assert draw(remember=True, reserved="市州杭人证持") == draw(False, "市州杭人证持")


def test_lines_wrapped_again_are_the_lines_wrapping_gives() -> None:
    """`wrap_lines` from its remembered results against wrapping anew (`_wrap_lines`),
    each twice: lines that fit, Chinese and Latin that wrap, an ellipsis past
    `max_lines`, the same lines at other widths; the caller's list is its own."""
    from onetrip.pdf import text as pdftext

    cjk = pdf.current_cjk_font().name
    stacks = [
        [pdf.Line("持证人", cjk, 10), pdf.Line("Holder", "Helvetica", 7, pdf.GREY)],
        [pdf.Line("浙江省杭州市西湖区文三路 100 号 3 幢 101 室" * 3, cjk, 10.5)],
        [pdf.Line("Scan the QR code to check that this licence is genuine.", "Helvetica", 8)],
        [pdf.Line("王芳", cjk, 13, pdf.INK, True)],
    ]
    pdftext._WRAPPED.clear()
    for _ in range(2):
        for lines in stacks:
            for width in (40, 120.5, 300):
                for max_lines in (None, 1, 3):
                    expected = pdftext._wrap_lines(lines, width, max_lines)
                    got = pdf.wrap_lines(lines, width, max_lines)
                    assert got == expected, (lines, width, max_lines)
                    got.append(None)  # the caller's own list: not the remembered lines
    assert len(pdftext._WRAPPED) == len(stacks) * 3 * 3


def test_a_cmap_made_again_is_the_same_text_compressed_once() -> None:
    """`to_unicode_cmap` remembers the CMaps it made lately (a template's shared subset)
    as a `SubsetText` the stream filter compresses once: still ReportLab's text, and
    its compressed form inflates to it; other subsets' CMaps do not push it out."""
    import zlib

    from isal import isal_zlib

    name = "AAAAAA+WenQuanYiMicroHei-0"
    subset = [0] * 32 + list(range(0x4E00, 0x4E00 + 160))
    made = subsets.to_unicode_cmap(name, subset)
    assert type(made) is subsets.SubsetText
    assert subsets.to_unicode_cmap(name, list(subset)) is made
    assert made == subsets._reportlab_to_unicode_cmap(name, subset)
    assert subsets.to_unicode_cmap("AAAAAB+WenQuanYiMicroHei-0", subset) != made
    flate = pdfdoc.PDFStreamFilterZCompress()
    compressed = flate.encode(made)
    assert flate.encode(made) is compressed
    assert compressed == isal_zlib.compress(made.encode(), 1)
    assert zlib.decompress(compressed) == made.encode()
    plain = str(made)
    assert flate.encode(plain) == compressed and flate.encode(plain) is not compressed
    for n in range(3 * subsets._CMAPS_MAX):
        flate.encode(subsets.to_unicode_cmap(name, [0, 0x4E00 + n]))
        assert subsets.to_unicode_cmap(name, subset) is made
        assert flate.encode(made) is compressed
    assert len(subsets._CMAPS) <= subsets._CMAPS_MAX
