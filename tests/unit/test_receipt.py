"""The payment receipt: amounts in words, and a PDF that says what was paid, in Chinese."""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from onetrip import pdf
from payments.receipt import (
    ReceiptData,
    _wrap,
    amount_in_chinese_words,
    format_amount,
    render_receipt,
)
from tests.unit.test_pdf import REQUIRE, decode, read_pgm

# --- amount in words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "words"),
    [
        (0, "零元整"),
        (1, "壹分"),
        (10, "壹角整"),
        (11, "壹角壹分"),
        (100, "壹元整"),
        (1000, "壹拾元整"),
        (10005, "壹佰元零伍分"),
        (1000500, "壹万零伍元整"),
        (12345678, "壹拾贰万叁仟肆佰伍拾陆元柒角捌分"),
        (123450, "壹仟贰佰叁拾肆元伍角整"),
        # The People's Bank's own examples for writing amounts on bills.
        (140950, "壹仟肆佰零玖元伍角整"),
        (600714, "陆仟零柒元壹角肆分"),
        (1640902, "壹万陆仟肆佰零玖元零贰分"),
        (32504, "叁佰贰拾伍元零肆分"),
        (168032, "壹仟陆佰捌拾元叁角贰分"),
        (10700053, "壹拾万柒仟元伍角叁分"),
        (2000001, "贰万元零壹分"),
        (10_000_000_000, "壹亿元整"),
        (10_001_000_000, "壹亿零壹万元整"),
        (11_000_000_000, "壹亿壹仟万元整"),
        (10_000_000_100, "壹亿零壹元整"),
        (100_000_000_000_000, "壹万亿元整"),
    ],
)
def test_amount_in_chinese_words(fen, words):
    assert amount_in_chinese_words(fen) == words


def test_negative_amounts_have_no_words():
    with pytest.raises(ValueError):
        amount_in_chinese_words(-1)


@pytest.mark.parametrize("fen", [1.5, True, "100"])
def test_amount_in_words_takes_only_integer_fen(fen):
    with pytest.raises(TypeError):
        amount_in_chinese_words(fen)


_DIGIT_VALUES = {d: i for i, d in enumerate("零壹贰叁肆伍陆柒捌玖")}


def _read_integer(words: str) -> int:
    """Read capital numerals back (inverse of the converter, for the property test)."""
    if "亿" in words:
        high, low = words.rsplit("亿", 1)
        return _read_integer(high) * 10**8 + _read_integer(low)
    if "万" in words:
        high, low = words.split("万", 1)
        return _read_integer(high) * 10**4 + _read_integer(low)
    total, digit = 0, 0
    for char in words:
        if char in _DIGIT_VALUES:
            digit = _DIGIT_VALUES[char]
        else:
            total += digit * {"拾": 10, "佰": 100, "仟": 1000}[char]
            digit = 0
    return total + digit


def _read_words(words: str) -> int:
    match = re.fullmatch(r"(?:(.+)元)?(?:零?(.)角)?(?:零?(.)分)?整?", words)
    assert match, words
    yuan, jiao, fen = match.groups()
    value = _read_integer(yuan) if yuan and yuan != "零" else 0
    return value * 100 + _DIGIT_VALUES.get(jiao, 0) * 10 + _DIGIT_VALUES.get(fen, 0)


@given(st.integers(min_value=0, max_value=10**15))
def test_amount_in_words_reads_back_to_the_same_amount(fen):
    words = amount_in_chinese_words(fen)
    assert _read_words(words) == fen
    assert "零零" not in words
    assert not re.search(r"零[元万亿角]", words) or words == "零元整"
    assert words.endswith(("整", "分"))
    assert not re.search(r"(?<![壹贰叁肆伍陆柒捌玖])[拾佰仟]", words)


# --- money formatting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123450, "CNY", "¥1,234.50"),
        (5, "CNY", "¥0.05"),
        (0, "CNY", "¥0.00"),
        (123456789012, "CNY", "¥1,234,567,890.12"),
        (-3450, "CNY", "-¥34.50"),
        (1250, "EUR", "EUR 12.50"),
        (1500, "JPY", "JPY 1,500"),
    ],
)
def test_format_amount_is_exact(minor, currency, text):
    assert format_amount(minor, currency) == text


# --- the receipt ---------------------------------------------------------------------------

TRACKING_URL = "https://onetrip.example.gov.cn/track/pay_01JQ8Z4K7M2N3P4Q5R6S7T8V9W"


def passport_receipt(**changes) -> ReceiptData:
    data = ReceiptData(
        payment_id="pay_01JQ8Z4K7M2N3P4Q5R6S7T8V9W",
        reference="OT-2025-0314-000123",
        matter_code="CRJ-HZ-001",
        matter_name="普通护照",
        department_name="公安局出入境管理局",
        applicant_name="张伟",
        quantity=1,
        unit_amount=12000,
        amount=12000,
        currency="CNY",
        paid_at=datetime(2025, 3, 14, 7, 26, 9, tzinfo=UTC),
        gateway="stripe",
        tracking_url=TRACKING_URL,
        fee_split=[("公安局出入境管理局", 12000)],
    )
    return dataclasses.replace(data, **changes)


def joint_receipt(**changes) -> ReceiptData:
    return passport_receipt(
        matter_code="LB-QY-007",
        matter_name="企业开办一件事（营业执照、公章刻制、税务登记）",
        department_name="上海市浦东新区市场监督管理局（牵头部门）",
        quantity=3,
        unit_amount=41150,
        amount=123450,
        fee_split=[
            ("上海市浦东新区市场监督管理局", 60000),
            ("上海市公安局浦东分局", 33450),
            ("国家税务总局上海市浦东新区税务局", 30000),
        ],
        amount_refunded=3450,
        **changes,
    )


def page_text(document: bytes) -> str:
    reader = PdfReader(io.BytesIO(document))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def embedded_font_files(document: bytes) -> list[str]:
    page = PdfReader(io.BytesIO(document)).pages[0]
    found = []
    for font in page["/Resources"]["/Font"].values():
        descriptor = font.get_object().get("/FontDescriptor")
        if descriptor is not None and "/FontFile2" in descriptor.get_object():
            found.append(str(font.get_object()["/BaseFont"]))
    return found


@pytest.fixture(autouse=True)
def fresh_font_choice():
    pdf.reset_cjk_font()
    yield
    pdf.reset_cjk_font()


def require_embedded_cjk_font() -> None:
    if not pdf.cjk_font_embedded():
        if REQUIRE:
            pytest.fail("no TrueType CJK font installed (apt-get install fonts-wqy-microhei)")
        pytest.skip("no TrueType CJK font installed; receipts fall back to STSong-Light")


def test_a_passport_receipt_shows_the_payment_in_chinese_and_english():
    document = render_receipt(passport_receipt())
    assert document.startswith(b"%PDF-")
    text = page_text(document)
    for expected in (
        "OneTrip 政务缴费平台",
        "缴费凭证",
        "Payment receipt".upper(),
        "pay_01JQ8Z4K7M2N3P4Q5R6S7T8V9W",
        "OT-2025-0314-000123",
        "普通护照",
        "CRJ-HZ-001",
        "公安局出入境管理局",
        "张伟",
        "1 × ¥120.00",
        "¥120.00",
        "人民币壹佰贰拾元整",
        "银行卡在线支付",
        "2025年03月14日 15:26:09（北京时间）",  # 07:26 UTC in Asia/Shanghai
    ):
        assert expected in text, expected
    assert "已退款" not in text
    assert "费用分配" not in text  # one department: no split table


def test_the_receipt_embeds_its_chinese_font():
    require_embedded_cjk_font()
    fonts = embedded_font_files(render_receipt(passport_receipt()))
    assert fonts, "no font with /FontFile2 in the receipt"


def test_the_receipt_page_is_a4():
    page = PdfReader(io.BytesIO(render_receipt(passport_receipt()))).pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)


def test_a_joint_matter_lists_each_departments_share_and_the_refund():
    text = page_text(render_receipt(joint_receipt()))
    for expected in (
        "费用分配",
        "上海市浦东新区市场监督管理局",
        "¥600.00",
        "上海市公安局浦东分局",
        "¥334.50",
        "国家税务总局上海市浦东新区税务局",
        "¥300.00",
        "3 × ¥411.50",
        "¥1,234.50",
        "人民币壹仟贰佰叁拾肆元伍角整",
        "已退款",
        "¥34.50（部分退款）",
        "¥1,200.00",
    ):
        assert expected in text, expected


def test_a_fully_refunded_payment_says_so():
    text = page_text(render_receipt(passport_receipt(amount_refunded=12000)))
    assert "¥120.00（全额退款）" in text
    assert "¥0.00" in text


def test_a_sandbox_receipt_is_marked_as_a_test():
    text = page_text(render_receipt(passport_receipt(gateway="sandbox")))
    assert "测试支付" in text
    assert "TEST RECEIPT" in text


def test_a_counter_payment_shows_the_counter():
    assert "窗口现场缴费" in page_text(render_receipt(passport_receipt(gateway="counter")))


def test_paid_time_is_shown_in_beijing_time_whatever_the_input_zone():
    paris = timezone(timedelta(hours=1))
    text = page_text(
        render_receipt(passport_receipt(paid_at=datetime(2025, 12, 31, 17, 30, tzinfo=paris)))
    )
    assert "2026年01月01日 00:30:00" in text


def test_long_names_wrap_and_stay_on_one_page():
    long_name = "国家税务总局上海市浦东新区税务局第一税务所（办税服务厅）" * 3
    text = page_text(render_receipt(passport_receipt(department_name=long_name)))
    assert long_name in text.replace("\n", "")


def test_wrapping_breaks_chinese_anywhere_and_latin_at_spaces():
    font = pdf.cjk_font()
    chinese = "国家税务总局上海市浦东新区税务局" * 4
    lines = _wrap(chinese, font, 10, 120)
    assert "".join(lines) == chinese
    assert len(lines) > 1
    from reportlab.pdfbase.pdfmetrics import stringWidth

    assert all(stringWidth(line, font, 10) <= 120 for line in lines)
    latin = "Pudong New Area Administration for Market Regulation of Shanghai"
    lines = _wrap(latin, "Helvetica", 10, 120)
    assert " ".join(lines) == latin


def test_the_receipt_qr_code_scans_to_the_tracking_url(tmp_path):
    if shutil.which("pdftoppm") is None:
        if REQUIRE:
            pytest.fail("pdftoppm is required (apt-get install poppler-utils)")
        pytest.skip("pdftoppm (poppler-utils) not installed")
    path = tmp_path / "receipt.pdf"
    path.write_bytes(render_receipt(passport_receipt()))
    subprocess.run(
        ["pdftoppm", "-gray", "-r", "150", "-singlefile", str(path), str(tmp_path / "receipt")],
        check=True,
    )
    assert decode(read_pgm(tmp_path / "receipt.pgm")) == [TRACKING_URL]
