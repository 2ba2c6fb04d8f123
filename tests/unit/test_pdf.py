"""The PDF kernel: choosing the Chinese font, and barcodes that scanners can read."""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path

import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st
from reportlab.pdfbase.pdfmetrics import stringWidth

from onetrip import pdf

REQUIRE = os.environ.get("ONETRIP_TEST_REQUIRE_SERVICES") == "1"
TRACKING_URL = "https://onetrip.example.gov.cn/track/pay_01JQ8Z4K7M2N3P4Q5R6S7T8V9W"


def installed_debian_font() -> str:
    for path in pdf.DEBIAN_CJK_FONTS:
        if Path(path).is_file():
            return path
    if REQUIRE:
        pytest.fail("no TrueType CJK font installed (apt-get install fonts-wqy-microhei)")
    pytest.skip("no TrueType CJK font installed")


class RecordingCanvas:
    """Just enough of a ReportLab canvas to see what the barcode functions draw."""

    def __init__(self) -> None:
        self.matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        self.rects: list[tuple[float, float, float, float]] = []  # x0, y0, x1, y1 on page

    def saveState(self) -> None:
        self._saved = self.matrix

    def restoreState(self) -> None:
        self.matrix = self._saved

    def setFillColorRGB(self, *rgb: float) -> None:
        assert rgb == (0, 0, 0)

    def transform(self, a: float, b: float, c: float, d: float, e: float, f: float) -> None:
        assert (b, c) == (0, 0)
        self.matrix = (a, b, c, d, e, f)

    def addLiteral(self, text: str) -> None:
        a, _, _, d, e, f = self.matrix
        if text.startswith("BI "):  # an image mask (QR codes): a rectangle per 1 bit
            self.rects.extend(_mask_cells(text, self.matrix))
            return
        assert text.endswith("\nf")
        for match in re.finditer(r"(\S+) (\S+) (\S+) (\S+) re", text):
            x, y, w, h = map(float, match.groups())
            xs = sorted((a * x + e, a * (x + w) + e))
            ys = sorted((d * y + f, d * (y + h) + f))
            self.rects.append((xs[0], ys[0], xs[1], ys[1]))

    def raster(self, width: float, height: float, scale: float) -> memoryview:
        """Grey pixels (0 dark, 255 light) of the page area, pixel centres sampled."""
        columns, rows = round(width * scale), round(height * scale)
        pixels = bytearray([255]) * (columns * rows)
        for x0, y0, x1, y1 in self.rects:
            for row in range(rows):
                page_y = height - (row + 0.5) / scale
                if not y0 <= page_y <= y1:
                    continue
                first = max(0, round(x0 * scale))
                last = min(columns, round(x1 * scale))
                pixels[row * columns + first : row * columns + last] = bytes(last - first)
        return memoryview(bytes(pixels)).cast("B", (rows, columns))


def _mask_cells(text: str, matrix: tuple[float, ...]) -> list[tuple[float, float, float, float]]:
    """The page rectangles a 1-bit inline image mask (`/IM true /D [1 0] /F /AHx`, as
    draw_qr writes it) paints: its first row at the top of the transformed unit square."""
    match = re.fullmatch(
        r"BI /W (\d+) /H (\d+) /IM true /D \[1 0\] /F /AHx ID\n([0-9a-f]*)>\nEI", text
    )
    assert match, text
    width, height = int(match[1]), int(match[2])
    data = bytes.fromhex(match[3])
    stride = (width + 7) // 8
    assert len(data) == stride * height
    a, _, _, d, e, f = matrix
    cells = []
    for row in range(height):
        for column in range(width):
            if data[row * stride + column // 8] >> (7 - column % 8) & 1:
                x0, x1 = e + a * column / width, e + a * (column + 1) / width
                y1, y0 = f + d * (1 - row / height), f + d * (1 - (row + 1) / height)
                cells.append((x0, y0, x1, y1))
    return cells


def decode(image: memoryview) -> list[str]:
    zxingcpp = pytest.importorskip("zxingcpp")
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


@pytest.fixture
def without_zint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf.barcodes, "_zint", None)


@pytest.fixture(autouse=True)
def fresh_font_choice() -> None:
    pdf.reset_cjk_font()
    yield
    pdf.reset_cjk_font()


# --- fonts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/fonts/wqy-microhei.ttc", ("/fonts/wqy-microhei.ttc", 0)),
        ("/fonts/wqy-microhei.ttc#1", ("/fonts/wqy-microhei.ttc", 1)),
        ("/fonts/odd#name.ttf", ("/fonts/odd#name.ttf", 0)),
    ],
)
def test_font_spec_takes_a_ttc_face_index_after_a_hash(spec, expected):
    assert pdf.parse_font_spec(spec) == expected


def test_without_any_truetype_font_falls_back_to_stsong_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="onetrip.pdf"):
        font = pdf.find_cjk_font("/nonexistent/font.ttf", candidates=())
    assert font.name == "STSong-Light"
    assert not font.embedded
    assert "not embedded" in caplog.text
    assert "/nonexistent/font.ttf" in caplog.text


def test_a_font_that_cannot_be_read_is_skipped(tmp_path, caplog):
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    with caplog.at_level(logging.WARNING, logger="onetrip.pdf"):
        font = pdf.find_cjk_font(str(broken), candidates=())
    assert font.name == "STSong-Light"
    assert "cannot use" in caplog.text


def test_the_configured_font_and_face_win():
    path = installed_debian_font()
    font = pdf.find_cjk_font(f"{path}#0", candidates=())
    assert font.embedded
    assert font.path == path
    assert font.name.startswith("OneTripCJK-")


def test_a_missing_configured_font_falls_back_to_the_debian_fonts(caplog):
    path = installed_debian_font()
    with caplog.at_level(logging.WARNING, logger="onetrip.pdf"):
        font = pdf.find_cjk_font("/nonexistent/font.ttf")
    assert font.embedded
    assert font.path == path
    assert "does not exist" in caplog.text


def test_cjk_font_reads_onetrip_cjk_font_from_the_settings(monkeypatch):
    from onetrip.settings import reset_settings

    path = installed_debian_font()
    monkeypatch.setenv("ONETRIP_CJK_FONT", path)
    reset_settings()
    try:
        assert pdf.current_cjk_font().path == path
        assert pdf.cjk_font_embedded()
        assert pdf.cjk_font() == pdf.current_cjk_font().name
        # WenQuanYi and AR PL have no bold face: the regular one is stroked instead.
        font, synthetic = pdf.cjk_emphasis()
        assert font == pdf.cjk_bold_font() == pdf.cjk_font()
        assert synthetic
    finally:
        monkeypatch.delenv("ONETRIP_CJK_FONT")
        reset_settings()


def test_a_bold_face_beside_the_configured_font_is_registered_as_its_bold(tmp_path):
    path = installed_debian_font()
    regular = tmp_path / f"Sample-Regular{Path(path).suffix}"
    regular.symlink_to(path)
    (tmp_path / f"Sample-Bold{Path(path).suffix}").symlink_to(path)
    font = pdf.find_cjk_font(str(regular), candidates=())
    assert font.has_real_bold
    assert "Sample-Bold" in font.bold_name


def test_bold_siblings_are_found_by_file_name(tmp_path):
    regular = tmp_path / "Sample-Regular.ttf"
    bold = tmp_path / "Sample-Bold.ttf"
    regular.touch()
    bold.touch()
    assert pdf.fonts._bold_sibling(str(regular)) == str(bold)
    assert pdf.fonts._bold_sibling(str(bold)) is None


# --- QR codes ----------------------------------------------------------------------------


def draw_and_read_qr(data: str) -> tuple[int, list[str], RecordingCanvas]:
    canvas = RecordingCanvas()
    modules = pdf.draw_qr(canvas, data, 10, 20, 120)
    return modules, decode(canvas.raster(140, 160, scale=6)), canvas


def test_a_drawn_qr_code_decodes_to_the_tracking_url():
    modules, texts, _ = draw_and_read_qr(TRACKING_URL)
    assert texts == [TRACKING_URL]
    assert modules == len(pdf.qr_matrix(TRACKING_URL))


def test_a_qr_code_with_chinese_text_decodes_as_utf8():
    data = "缴费凭证 pay_01JQ8Z4K7M2N3P4Q5R6S7T8V9W 张伟"
    assert draw_and_read_qr(data)[1] == [data]


def test_the_segno_fallback_draws_segnos_matrix_and_decodes(without_zint):
    code = segno.make_qr(TRACKING_URL.encode(), error="m", boost_error=False)
    expected = [[bool(module) for module in row] for row in code.matrix]
    assert pdf.barcode_backend() == "fallback"
    assert pdf.qr_matrix(TRACKING_URL) == expected
    modules, texts, canvas = draw_and_read_qr(TRACKING_URL)
    assert modules == len(expected)
    assert texts == [TRACKING_URL]
    dark = sum(sum(row) for row in expected)
    drawn = sum(round((x1 - x0) / (120 / (modules + 8))) for x0, _, x1, _ in canvas.rects)
    assert drawn == dark


def test_a_qr_code_is_one_small_image_mask_of_its_modules():
    matrix = pdf.qr_matrix(TRACKING_URL)
    canvas = RecordingCanvas()
    pdf.draw_qr(canvas, TRACKING_URL, 0, 0, 100)
    assert len(canvas.rects) == sum(sum(row) for row in matrix)  # one cell per dark module
    literal = pdf.barcodes._mask_hex(pdf.barcodes._module_rows(TRACKING_URL))
    assert len(literal) == 2 * len(matrix) * ((len(matrix) + 7) // 8)  # a bit a module


def test_qr_code_stays_inside_its_square_with_a_quiet_zone():
    canvas = RecordingCanvas()
    modules = pdf.draw_qr(canvas, TRACKING_URL, 10, 20, 120)
    module = 120 / (modules + 2 * pdf.QR_QUIET_ZONE)
    margin = pdf.QR_QUIET_ZONE * module
    assert min(x0 for x0, *_ in canvas.rects) == pytest.approx(10 + margin)
    assert max(x1 for *_, x1, _ in canvas.rects) == pytest.approx(130 - margin)
    assert min(y0 for _, y0, *_ in canvas.rects) == pytest.approx(20 + margin)
    assert max(y1 for *_, y1 in canvas.rects) == pytest.approx(140 - margin)


def test_dark_runs_cover_a_row_exactly():
    assert pdf.barcodes._dark_runs("110100111") == [(0, 2), (3, 1), (6, 3)]
    assert pdf.barcodes._dark_runs("00") == []


def test_empty_qr_data_is_refused():
    with pytest.raises(ValueError):
        pdf.qr_matrix("")


# --- Code 128 ----------------------------------------------------------------------------


def test_a_drawn_code128_decodes():
    if pdf.barcode_backend() != "zint":
        pytest.skip("libzint not installed; the ReportLab fallback is checked via a PDF")
    canvas = RecordingCanvas()
    pdf.draw_code128(canvas, "SF1234567890", 20, 10, 200, 50)
    assert decode(canvas.raster(240, 70, scale=4)) == ["SF1234567890"]
    assert min(x0 for x0, *_ in canvas.rects) == pytest.approx(20)
    assert max(x1 for *_, x1, _ in canvas.rects) == pytest.approx(220)


def test_the_reportlab_code128_fallback_decodes(without_zint, tmp_path):
    image = render_page_to_grey(
        tmp_path, lambda c: pdf.draw_code128(c, "SF1234567890", 40, 40, 220, 60)
    )
    assert decode(image) == ["SF1234567890"]


@pytest.mark.parametrize("data", ["", "顺丰速运", "line\nbreak"])
def test_code128_refuses_what_it_cannot_encode(data):
    with pytest.raises(ValueError):
        pdf.draw_code128(RecordingCanvas(), data, 0, 0, 100, 30)


def test_qr_drawn_into_a_real_pdf_decodes_after_rasterising(tmp_path):
    image = render_page_to_grey(tmp_path, lambda c: pdf.draw_qr(c, TRACKING_URL, 40, 40, 150))
    assert decode(image) == [TRACKING_URL]


def render_page_to_grey(tmp_path: Path, draw) -> memoryview:
    """Draw on a small real PDF page and rasterise it with poppler's pdftoppm."""
    import shutil
    import subprocess

    from reportlab.pdfgen.canvas import Canvas

    if shutil.which("pdftoppm") is None:
        if REQUIRE:
            pytest.fail("pdftoppm is required (apt-get install poppler-utils)")
        pytest.skip("pdftoppm (poppler-utils) not installed")
    path = tmp_path / "page.pdf"
    canvas = Canvas(str(path), pagesize=(300, 240))
    draw(canvas)
    canvas.save()
    subprocess.run(
        ["pdftoppm", "-gray", "-r", "150", "-singlefile", str(path), str(tmp_path / "page")],
        check=True,
    )
    return read_pgm(tmp_path / "page.pgm")


def read_pgm(path: Path) -> memoryview:
    data = path.read_bytes()
    header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+255\s", data)
    assert header, "not an 8-bit PGM"
    width, height = int(header[1]), int(header[2])
    pixels = data[header.end() : header.end() + width * height]
    return memoryview(pixels).cast("B", (height, width))


# --- the toolkit: wrapping -----------------------------------------------------------------


def test_wrapping_breaks_chinese_anywhere_and_latin_at_spaces():
    font = pdf.cjk_font()
    chinese = "国家税务总局上海市浦东新区税务局" * 4
    lines = pdf.wrap_text(chinese, font, 10, 120)
    assert "".join(lines) == chinese
    assert len(lines) > 1
    assert all(stringWidth(line, font, 10) <= 120 for line in lines)
    latin = "Pudong New Area Administration for Market Regulation of Shanghai"
    lines = pdf.wrap_text(latin, "Helvetica", 10, 120)
    assert " ".join(lines) == latin


_MIXED = st.text(
    alphabet=st.sampled_from(list("国家税务总局浦东新区（）。，abcdefgXYZ-019 .,")), max_size=120
)


@given(text=_MIXED, width=st.floats(min_value=12, max_value=400), size=st.sampled_from([7, 10.5]))
def test_no_wrapped_line_is_wider_than_its_box_and_no_character_is_lost(text, width, size):
    font = pdf.cjk_font()
    lines = pdf.wrap_text(text, font, size, width)
    widest_char = max((stringWidth(char, font, size) for char in text), default=0)
    if widest_char <= width:
        assert all(stringWidth(line, font, size) <= width for line in lines), lines
    # Only the spaces at a break may go; every other character stays, in order.
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    if len(lines) > 1:
        assert all(line == line.strip(" ") for line in lines)


def test_a_latin_word_too_long_for_the_box_is_broken_between_letters():
    word = "pay_01JQ8Z4K7M2N3P4Q5R6S7T8V9W"
    lines = pdf.wrap_text(f"id {word}", "Helvetica", 10, 60)
    assert "".join(lines[1:]) == word
    assert all(stringWidth(line, "Helvetica", 10) <= 60 for line in lines)


def test_closing_punctuation_never_starts_a_line():
    font = pdf.cjk_font()
    text = "上海市浦东新区市场监督管理局（牵头部门），受理"
    for width in range(60, 240, 5):
        lines = pdf.wrap_text(text, font, 10, width)
        assert "".join(lines) == text
        assert not any(line[0] in "，。）" for line in lines[1:]), (width, lines)
        assert not any(line[-1] == "（" for line in lines[:-1]), (width, lines)


def test_explicit_newlines_break_the_text():
    assert pdf.wrap_text("第一行\n第二行", pdf.cjk_font(), 10, 500) == ["第一行", "第二行"]


def test_fit_text_shortens_with_an_ellipsis_only_when_needed():
    font = pdf.cjk_font()
    name = "国家税务总局上海市浦东新区税务局第一税务所"
    assert pdf.fit_text(name, font, 10, 1000) == name
    short = pdf.fit_text(name, font, 10, 80)
    assert short.endswith("…") and name.startswith(short[:-1])
    assert stringWidth(short, font, 10) <= 80


def test_a_value_past_its_line_limit_ends_with_an_ellipsis():
    font = pdf.cjk_font()
    lines = pdf.wrap_lines([pdf.Line("国家税务总局" * 20, font, 10)], 100, max_lines=2)
    assert len(lines) == 2
    assert lines[-1].text.endswith("…")
    assert all(stringWidth(line.text, font, 10) <= 100 for line in lines)


# --- the toolkit: tables, pages and documents -----------------------------------------------


def _rows(count: int) -> list[tuple[list, list]]:
    font = pdf.cjk_font()
    return [
        (
            [pdf.Line(f"第{n}项", font, 10), pdf.Line(f"Item {n}", pdf.LATIN, 7, pdf.GREY)],
            [pdf.Line(f"上海市浦东新区市场监督管理局 条目{n:03d}", font, 10.5)],
        )
        for n in range(1, count + 1)
    ]


def _report(rows: int = 40, **info) -> bytes:
    def header(canvas, page: pdf.PageInfo) -> None:
        pdf.draw_text(
            canvas, page.margins.left, page.margins.top - 12, "结算报告", pdf.cjk_font(), 12
        )

    document = pdf.Document(
        title=info.get("title", "结算报告 Settlement report"),
        author="OneTrip 政务缴费平台",
        created=info.get("created"),
        header_height=30,
        footer_height=20,
        decorations=[header, pdf.page_numbers()],
    )
    table = pdf.LabelledTable.of(_rows(rows), left=document.left, width=document.width)
    document.add(table, space_after=10)
    top = document.place(200)  # does not fit under a long table: a new page
    pdf.draw_text(document.canvas, document.left, top - 20, "签章 Seal", pdf.cjk_font(), 10)
    return document.render()


def _pages(document: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(document)).pages]


def test_a_long_table_continues_on_the_next_page_with_every_page_numbered():
    pages = _pages(_report(rows=40))
    count = len(pages)
    assert count >= 2
    for number, text in enumerate(pages, start=1):
        assert f"第 {number} 页 / 共 {count} 页" in text
        assert f"Page {number} of {count}" in text
        assert "结算报告" in text  # the header repeats on every page
    every = "".join(pages)
    for n in range(1, 41):
        assert every.count(f"条目{n:03d}") == 1  # each row once: split between rows
    assert "签章" in pages[-1] and "条目" not in pages[-1]


def test_a_block_that_fits_stays_on_the_page():
    pages = _pages(_report(rows=3))
    assert len(pages) == 1
    assert "第 1 页 / 共 1 页  Page 1 of 1" in pages[0]
    assert "签章" in pages[0]


def test_split_keeps_whole_rows_within_the_space_given():
    table = pdf.LabelledTable.of(_rows(10), left=48, width=500)
    head, rest = table.split(150)
    assert head is not None and rest is not None
    assert head.height <= 150 < head.height + rest.row_height(rest.rows[0])
    assert head.rows + rest.rows == table.rows
    assert table.split(10) == (None, table)
    assert table.split(10_000) == (table, None)


def test_the_same_input_gives_the_same_bytes():
    first = _report(rows=40)
    assert _report(rows=40) == first
    assert _report(rows=41) != first


def test_the_document_carries_its_metadata_and_its_own_creation_date():
    from datetime import datetime, timedelta, timezone

    from pypdf import PdfReader

    paid_at = datetime(2025, 3, 14, 23, 26, 9, tzinfo=timezone(timedelta(hours=8)))
    info = PdfReader(io.BytesIO(_report(rows=1, created=paid_at))).metadata
    assert info.title == "结算报告 Settlement report"
    assert info.author == "OneTrip 政务缴费平台"
    assert info["/CreationDate"] == "D:20250314152609+00'00'"
    undated = PdfReader(io.BytesIO(_report(rows=1))).metadata
    assert undated["/CreationDate"] == "D:20000101000000+00'00'"  # invariant, not the clock


def test_page_labels():
    assert pdf.page_label(1, 2, "zh-CN") == "第 1 页 / 共 2 页"
    assert pdf.page_label(2, 2, "en") == "Page 2 of 2"
    assert pdf.page_label(1, 1) == "第 1 页 / 共 1 页  Page 1 of 1"
    with pytest.raises(ValueError):
        pdf.page_label(1, 1, "fr")


class Stamp:
    """A block that cannot split: a seal box of fixed height."""

    height = 300.0

    def draw(self, canvas, top: float) -> float:
        pdf.draw_text(canvas, 60, top - 20, "盖章处 Seal here", pdf.cjk_font(), 10)
        return top - self.height


def test_a_block_that_cannot_split_moves_whole_to_the_next_page():
    document = pdf.Document(title="清单", author="OneTrip", decorations=[pdf.page_numbers()])
    document.add(pdf.LabelledTable.of(_rows(16), left=document.left, width=document.width))
    assert 0 < document.remaining < Stamp.height
    document.add(Stamp())
    assert document.page_number == 2
    pages = _pages(document.render())
    assert [("盖章处" in text) for text in pages] == [False, True]
    assert "第 2 页 / 共 2 页" in pages[1]
