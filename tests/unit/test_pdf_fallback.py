"""Rare Chinese characters (CJK Extensions A and B) print through a chain of fallback fonts."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from pypdf import PdfReader
from reportlab.pdfbase import pdfmetrics

from onetrip import pdf
from onetrip.settings import reset_settings
from tests.unit.test_pdf import REQUIRE, installed_debian_font, render_page_to_grey

# 䶮 U+4DAE (Extension A), 𠀀 U+20000 and 𪚥 U+2A6A5 (Extension B): in real names, and in
# no font of fonts-wqy-microhei.
RARE = "䶮𠀀𪚥"
# U+30000, Extension G (Unicode 13, 2020): newer than every font Debian packages here.
NO_FONT_HAS = "\U00030000"


@pytest.fixture(autouse=True)
def fresh_font_choice(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ONETRIP_CJK_FONT", raising=False)
    monkeypatch.delenv("ONETRIP_CJK_FALLBACK_FONTS", raising=False)
    reset_settings()
    pdf.reset_cjk_font()
    yield
    reset_settings()
    pdf.reset_cjk_font()


def fallback_fonts() -> list[str]:
    """The Debian fallback fonts installed (and the primary font: both are needed)."""
    installed_debian_font()
    found = [path for path in pdf.DEBIAN_FALLBACK_FONTS if Path(path).is_file()]
    if not found:
        if REQUIRE:
            pytest.fail("no fallback font for rare characters (apt-get install fonts-hanazono)")
        pytest.skip("fonts-hanazono not installed")
    return found


def has_char(font: str, char: str) -> bool:
    return ord(char) in pdfmetrics.getFont(font).face.charToGlyph


def test_each_character_is_drawn_in_the_first_font_of_the_chain_that_has_it():
    fallback_fonts()
    primary = pdf.cjk_font()
    runs = pdf.font_runs("王䶮伟 Wang", primary)
    assert [text for _, text in runs] == ["王", "䶮", "伟 Wang"]
    assert runs[0][0] == runs[2][0] == primary
    assert runs[1][0] != primary and has_char(runs[1][0], "䶮")
    assert not has_char(primary, "䶮")  # why the fallback is there at all
    for char in RARE:
        [(font, text)] = pdf.font_runs(char, primary)
        assert text == char and has_char(font, char)
    # Text the primary font covers is one run, drawn as before.
    assert pdf.font_runs("张伟 Zhang Wei", primary) == [(primary, "张伟 Zhang Wei")]


def test_the_bold_face_falls_back_too():
    fallback_fonts()
    bold, _ = pdf.cjk_emphasis()
    [(font, _)] = pdf.font_runs("䶮", bold)
    assert font != pdf.cjk_font() and has_char(font, "䶮")


def test_latin_fonts_are_left_to_reportlab():
    assert pdf.font_runs("Zhang Wei 䶮", pdf.LATIN) == [(pdf.LATIN, "Zhang Wei 䶮")]


def test_widths_and_wrapping_measure_each_run_in_its_own_font():
    fallback_fonts()
    font = pdf.cjk_font()
    runs = pdf.font_runs("王䶮", font)
    expected = sum(pdfmetrics.stringWidth(text, name, 10) for name, text in runs)
    assert pdf.text_width("王䶮", font, 10) == pytest.approx(expected)
    name = "王" + RARE * 8
    lines = pdf.wrap_text(name, font, 10, 55)
    assert "".join(lines) == name
    assert len(lines) > 1
    assert all(pdf.text_width(line, font, 10) <= 55 for line in lines)
    short = pdf.fit_text(name, font, 10, 60)
    assert short.endswith("…") and name.startswith(short[:-1])
    assert pdf.text_width(short, font, 10) <= 60


def test_a_character_no_font_has_is_logged_once(caplog):
    fallback_fonts()
    font = pdf.cjk_font()
    chain = [font, *(name for name, _ in pdf.font_runs(RARE, font))]
    assert not any(has_char(name, NO_FONT_HAS) for name in chain)
    with caplog.at_level(logging.WARNING, logger="onetrip.pdf"):
        for _ in range(3):
            runs = pdf.font_runs(f"王{NO_FONT_HAS}", font)
            pdf.text_width(f"李{NO_FONT_HAS}", font, 10)
    assert runs == [(font, f"王{NO_FONT_HAS}")]  # drawn as a blank, in the asked font
    warned = [record for record in caplog.records if "U+30000" in record.getMessage()]
    assert len(warned) == 1, caplog.text
    assert warned[0].levelno == logging.WARNING


def test_characters_remembered_and_logged_are_bounded(monkeypatch, caplog):
    fallback_fonts()
    monkeypatch.setattr(pdf.fonts, "MAX_REMEMBERED_CHARS", 3)
    font = pdf.cjk_font()
    missing = "".join(chr(0x30000 + n) for n in range(6))  # Extension G: in no font here
    with caplog.at_level(logging.WARNING, logger="onetrip.pdf"):
        for _ in range(2):
            assert pdf.font_runs(missing, font) == [(font, missing)]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("no font has U+" in message for message in messages) == 3
    assert sum("no longer logging" in message for message in messages) == 1
    assert len(pdf.font_chain(font)._font_of) == 3


def test_the_fallback_chain_is_configurable(monkeypatch, caplog):
    found = fallback_fonts()
    hana_b = next((path for path in found if path.endswith("HanaMinB.ttf")), None)
    if hana_b is None:
        pytest.skip("HanaMinB.ttf not installed")
    monkeypatch.setenv("ONETRIP_CJK_FALLBACK_FONTS", f"/nonexistent/font.ttf:{hana_b}")
    reset_settings()
    with caplog.at_level(logging.WARNING, logger="onetrip.pdf"):
        assert pdf.current_cjk_font().fallbacks == (hana_b,)
        font = pdf.cjk_font()
        # Only the configured fonts are tried: HanaMinB has 𠀀 but not 䶮 (HanaMinA's).
        [(first, _), (second, _)] = pdf.font_runs("𠀀䶮", font)
    assert first != font and has_char(first, "𠀀")
    assert second == font
    assert "/nonexistent/font.ttf" in caplog.text
    assert "U+4DAE" in caplog.text


def test_without_a_configured_chain_the_debian_fonts_are_the_fallbacks():
    found = fallback_fonts()
    font = pdf.current_cjk_font()
    assert font.path not in font.fallbacks
    assert [path for path in font.fallbacks if path in found] == found


def _draw_rare(canvas) -> None:
    for index, char in enumerate(RARE):
        pdf.draw_text(canvas, 40 + index * 80, 100, char, pdf.cjk_font(), 48)


def test_every_rare_character_leaves_ink_on_the_page(tmp_path):
    fallback_fonts()
    image = render_page_to_grey(tmp_path, _draw_rare)  # 300 × 240 pt at 150 dpi
    scale = 150 / 72
    for index, char in enumerate(RARE):
        left, right = round((40 + index * 80) * scale), round((40 + index * 80 + 48) * scale)
        top, bottom = round((240 - 100 - 44) * scale), round((240 - 100 + 4) * scale)
        dark = sum(
            1 for row in range(top, bottom) for col in range(left, right) if image[row, col] < 128
        )
        assert dark > 200, f"U+{ord(char):04X} printed blank ({dark} dark pixels)"


def test_characters_beyond_the_basic_plane_extract_from_the_pdf():
    fallback_fonts()
    document = pdf.Document(title="测试", author="OneTrip")
    pdf.draw_text(document.canvas, 60, 700, f"缴款人：王{RARE}", pdf.cjk_font(), 12)
    bold, synthetic = pdf.cjk_emphasis()
    pdf.draw_text(document.canvas, 60, 600, RARE, bold, 12, synthetic_bold=synthetic)
    text = PdfReader(io.BytesIO(document.render())).pages[0].extract_text()
    assert f"缴款人：王{RARE}" in text
    assert text.count(RARE) == 2
