"""The licence and cover sheet drawings as pure functions: the same data gives the same
bytes, different data different bytes; the pickup cover sheet; a long licence."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, date, datetime

from pypdf import PdfReader

from delivery.documents import LicenseData, _rows, _template_text, render_cover, render_license
from delivery.rendering import page_count

DATA = LicenseData(
    license_id="lic_01JUNIT0000000000000",
    license_no="浙公驾 330106-2026-0007",
    title="营业执照",
    department_name="杭州市西湖区市场监督管理局",
    holder_name="杭州西湖文三数码有限公司",
    fields=[("类型", "有限责任公司"), ("住所", "浙江省杭州市西湖区文三路 100 号")],
    valid_from=date(2026, 12, 1),
    valid_until=None,
    issued_at=datetime(2026, 12, 1, 2, 30, tzinfo=UTC),
    verify_url="https://onetrip.gov.cn/verify/AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
    matter_name="营业执照设立登记",
    address={
        "recipient": "王芳",
        "phone": "13900139000",
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "line1": "文三路 100 号",
        "postal_code": "310012",
    },
)


def text_of(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_the_same_licence_renders_the_same_bytes_and_a_changed_one_does_not():
    assert render_license(DATA) == render_license(DATA)
    assert render_cover(DATA) == render_cover(DATA)
    other = dataclasses.replace(DATA, holder_name="杭州西湖文四数码有限公司")
    assert render_license(other) != render_license(DATA)
    moved = dataclasses.replace(DATA, address={**DATA.address, "line1": "文二路 8 号"})  # type: ignore[dict-item]
    assert render_cover(moved) != render_cover(DATA)
    assert render_license(moved) == render_license(DATA)  # the address is not on the licence


def test_a_licence_without_expiry_says_so():
    text = text_of(render_license(DATA))
    assert "2026年12月01日 至 长期" in text and "营业执照设立登记" in text


def test_a_pickup_cover_sheet_says_where_to_collect_it():
    pickup = dataclasses.replace(DATA, delivery_method="pickup", address=None)
    text = text_of(render_cover(pickup))
    assert "王芳" not in text and DATA.holder_name in text
    # in the window: the holder, and that it waits at the window
    assert "请持本人身份证件到发证机关领取" in text
    assert "To be collected at the department's window" in text


def test_a_licence_with_many_fields_continues_on_a_second_page():
    long = dataclasses.replace(DATA, fields=[(f"字段{i}", "很长的内容" * 8) for i in range(16)])
    pdf = render_license(long)
    assert page_count(pdf) == 2 == len(PdfReader(io.BytesIO(pdf)).pages)
    assert page_count(render_license(DATA)) == 1
    assert "字段15" in text_of(pdf)


def test_a_licence_number_with_chinese_prints_in_full_wherever_it_appears():
    # Helvetica has no Chinese: a number drawn in it would lose 浙公驾 (boxes on paper,
    # nothing in the text layer). The licence shows it in the heading, the table and
    # the footer; the cover sheet beside the window.
    assert text_of(render_license(DATA)).count(DATA.license_no) == 3
    assert text_of(render_cover(DATA)).count(DATA.license_no) == 1


def _cjk_subsets(pdf: bytes) -> list[tuple[bytes, set[str]]]:
    """Each embedded subset of the page's TrueType fonts, in subset order: its font file
    (inflated) and the characters its ToUnicode map gives."""
    import re

    fonts = PdfReader(io.BytesIO(pdf)).pages[0]["/Resources"]["/Font"]
    found = []
    for name in sorted(fonts, key=lambda n: int(n.split("+")[-1]) if "+" in n else -1):
        font = fonts[name].get_object()
        descriptor = font.get("/FontDescriptor")
        if descriptor is None or "/FontFile2" not in descriptor.get_object():
            continue  # a standard font: no subset
        file = descriptor.get_object()["/FontFile2"].get_object().get_data()
        cmap = font["/ToUnicode"].get_object().get_data().decode()
        chars = {chr(int(u, 16)) for u in re.findall(r"<[0-9A-F]{2}> <([0-9A-F]{4,6})>", cmap)}
        found.append((file, chars - {"\x00"}))  # a later subset's code 0: .notdef
    return found


def test_licences_of_one_matter_share_their_first_font_subset_and_not_their_holders():
    """The template's own text is reserved first (`reserve_characters`): the first subset
    is the same file on every licence of the matter, the holder's characters are in a
    second one, and the text still reads as drawn."""
    other = dataclasses.replace(
        DATA, holder_name="钱塘江畔潮鸣科技有限公司", license_no="浙公驾 330106-2026-0008"
    )
    mine, theirs = _cjk_subsets(render_license(DATA)), _cjk_subsets(render_license(other))
    assert len(mine) == len(theirs) == 2
    assert mine[0][0] == theirs[0][0]  # the same subset file, byte for byte
    assert mine[1][0] != theirs[1][0]
    # only what is the holder's own (name, number, the fields' values) is in the second
    own = set(DATA.holder_name + DATA.license_no + "".join(v for _, v in DATA.fields))
    assert mine[1][1] and mine[1][1] <= own
    assert theirs[1][1] and theirs[1][1] <= own | set(other.holder_name)
    assert not mine[0][1] & (set(DATA.holder_name) - set(_template_text(DATA, _rows(DATA))))
    text = text_of(render_license(other))
    assert other.holder_name in text and DATA.department_name in text and "真伪核验" in text


def _licences(count: int) -> list[LicenseData]:
    names = ["王芳", "李娜", "张伟", "钱塘江畔潮鸣科技有限公司", "欧阳䶮", "陈静"]
    return [
        dataclasses.replace(
            DATA,
            license_id=f"lic_01JUNIT{n:013d}",
            holder_name=names[n % len(names)] + ("有限公司" if n % 4 == 0 else ""),
            license_no=f"浙公驾 330106-2026-{n:04d}",
            fields=[("类型", "有限责任公司"), ("住所", f"浙江省杭州市西湖区文三路 {n} 号")],
            valid_until=date(2032, 12, 1 + n % 28) if n % 3 else None,
            verify_url=f"{DATA.verify_url}{n:03d}",
        )
        for n in range(count)
    ]


def test_licences_rendered_in_threads_are_the_bytes_rendered_one_by_one():
    """The kernel's remembered subsets, CMaps, lines, wraps and texts are shared by all
    threads: eight threads rendering licences (and their covers) at once give each one
    the same bytes as rendering them one after another, twice over."""
    from concurrent.futures import ThreadPoolExecutor

    licences = _licences(24)
    expected = [(render_license(data), render_cover(data)) for data in licences]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            got = list(pool.map(lambda data: (render_license(data), render_cover(data)), licences))
            assert got == expected


def test_a_licence_qr_code_scans_and_its_holder_reads_from_the_rasterised_pdf(tmp_path):
    """After licences drawn from what the kernel remembered, a licence's QR code still
    scans from the page rasterised at print resolution, and its holder's name and the
    template's text still extract as text."""
    import shutil
    import subprocess

    import pytest

    zxingcpp = pytest.importorskip("zxingcpp")
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.skip("pdftoppm (poppler-utils) not installed")
    from PIL import Image

    licences = _licences(6)
    for data in licences:
        render_license(data)  # the shared lines, subsets and texts are remembered now
    data = licences[-1]
    pdf = render_license(data)
    (tmp_path / "licence.pdf").write_bytes(pdf)
    subprocess.run(
        [pdftoppm, "-r", "300", "-png", "-singlefile", str(tmp_path / "licence.pdf"),
         str(tmp_path / "page")],
        check=True,
    )  # fmt: skip
    found = zxingcpp.read_barcodes(Image.open(tmp_path / "page.png"))
    assert [code.text for code in found] == [data.verify_url]
    text = text_of(pdf)
    assert data.holder_name in text and "持证人" in text and "真伪核验" in text
