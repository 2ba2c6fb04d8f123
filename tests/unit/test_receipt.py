"""The payment receipt: a PDF that says what was paid, in Chinese (amounts: test_money)."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pypdf import PdfReader

from onetrip import pdf
from payments.receipt import ReceiptData, render_receipt
from tests.unit.test_pdf import REQUIRE, decode, read_pgm

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


def test_the_same_receipt_renders_the_same_bytes():
    # Stored once and served many times: a re-render (a retried job) must not differ.
    first = render_receipt(joint_receipt(gateway="sandbox"))
    assert render_receipt(joint_receipt(gateway="sandbox")) == first
    assert render_receipt(joint_receipt(gateway="counter")) != first
    info = PdfReader(io.BytesIO(first)).metadata
    assert info.title == "缴费凭证 Payment receipt pay_01JQ8Z4K7M2N3P4Q5R6S7T8V9W"
    assert info["/CreationDate"] == "D:20250314072609+00'00'"  # paid_at, not the clock


def test_a_yen_receipt_has_no_decimals_and_no_amount_in_words():
    text = page_text(
        render_receipt(
            passport_receipt(currency="JPY", unit_amount=1500, amount=1500, fee_split=[])
        )
    )
    assert "1 × JPY 1,500" in text
    assert "金额大写" not in text  # only the yuan has a capital form


def test_the_footer_numbers_the_page():
    assert "第 1 页 / 共 1 页  Page 1 of 1" in page_text(render_receipt(passport_receipt()))


# --- rare characters -------------------------------------------------------------------------


def fallback_face_names(name: str) -> set[str]:
    """PostScript names of the fonts besides the primary one that draw `name`."""
    from reportlab.pdfbase import pdfmetrics

    fonts = {font for font, _ in pdf.font_runs(name, pdf.cjk_font())} - {pdf.cjk_font()}
    return {pdfmetrics.getFont(font).face.name.decode() for font in fonts}


@pytest.mark.parametrize("name", ["王䶮", "𠀀𪚥"])  # CJK Extension A; Extension B
def test_a_payer_with_rare_characters_gets_every_character_printed(name):
    from tests.unit.test_pdf_fallback import fallback_fonts

    fallback_fonts()
    document = render_receipt(passport_receipt(applicant_name=name))
    assert name in page_text(document)
    embedded = {font.partition("+")[2] for font in embedded_font_files(document)}
    faces = fallback_face_names(name)
    assert faces, "the primary font has these characters: nothing to fall back for"
    assert faces <= embedded, (faces, embedded)
    assert render_receipt(passport_receipt(applicant_name=name)) == document  # reproducible
