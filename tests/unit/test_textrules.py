"""The text rules (onetrip.textrules) on the input types of payments and the catalogue."""

from __future__ import annotations

import pytest

from onetrip.textrules import (
    InvalidText,
    free_text_problem,
    single_line_problem,
    url_problem,
)
from payments.schemas import (
    AddressIn,
    ApplicantIn,
    DeliveryIn,
    DepartmentIn,
    FeeShare,
    MatterIn,
    PaymentIn,
    RefundIn,
)


@pytest.mark.parametrize(
    "text",
    ["张伟", "王𠀀𪚥", "䶮", "山田\u3000太郎", "Zoë O'Brien", "阿依古丽·买买提", "A-1_b.c", ""],
)
def test_real_names_pass(text):
    assert single_line_problem(text) is None


@pytest.mark.parametrize(
    ("text", "code_point"),
    [
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\x7fb", "U+007F"),
        ("a\x9bb", "U+009B"),
        ("张\u202e伟", "U+202E"),
        ("张\u200b伟", "U+200B"),
        ("张\u200d伟", "U+200D"),
        ("\ufeff张伟", "U+FEFF"),
        ("张\u2060伟", "U+2060"),
        ("张\u00ad伟", "U+00AD"),
        ("张\u2028伟", "U+2028"),
        ("张\ud800伟", "U+D800"),
    ],
)
def test_control_and_invisible_characters_are_refused_by_code_point(text, code_point):
    problem = single_line_problem(text)
    assert problem is not None and code_point in problem


@pytest.mark.parametrize("text", [" ", "\u3000", "\u3000\u3000", " \u00a0 ", "\u2003"])
def test_blank_names_are_refused(text):
    assert single_line_problem(text) == "must not be blank"


def test_free_text_allows_line_breaks_tabs_and_joiners_but_not_controls_or_overrides():
    assert free_text_problem("第一行\n第二行\r\n\t缩进") is None
    assert free_text_problem("👨\u200d👩\u200d👧") is None
    assert free_text_problem("a\x00") is not None
    assert free_text_problem("a\x1b[31m") is not None
    assert free_text_problem("\u202eabc") is not None
    assert free_text_problem("  \n ") == "must not be blank"
    assert free_text_problem("") is None


@pytest.mark.parametrize(
    "url",
    ["https://crj.example.gov.cn/done", "http://10.0.0.1:8080/a?b=c#d", "HTTPS://X.CN/"],
)
def test_plain_http_urls_pass(url):
    assert url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://a.cn/\r\nX: y",
        "https://a.cn/ b",
        "https://a.cn/\u3000",
        "https://",
        "https:///x",
        "mailto:a@b.cn",
        "javascript:alert(1)",
        "https://[::1/",
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url):
    assert url_problem(url) is not None


def payment(**change: object) -> PaymentIn:
    fields: dict[str, object] = {
        "matter_code": "passport",
        "reference": "CRJ-1",
        "applicant": ApplicantIn(name="张伟"),
        "return_url": "https://crj.example.gov.cn/done",
        "delivery": DeliveryIn(method="pickup"),
    }
    fields.update(change)
    return PaymentIn(**fields)  # type: ignore[arg-type]


def test_every_bad_field_of_a_payment_is_named_with_its_path():
    address = AddressIn(
        recipient="\u3000",
        phone="13800138000",
        province="浙江省",
        city="杭州市",
        district="西湖区",
        line1="文三路\x00",
        postal_code="310012",
    )
    with pytest.raises(InvalidText) as refused:
        payment(
            applicant=ApplicantIn(name="张\u200b伟"),
            delivery=DeliveryIn(method="courier", address=address),
            metadata={"窗口\x00": "3", "备注": "\u202e"},
            return_url="https://a.cn/\n",
        )
    assert refused.value.status == 400 and refused.value.code == "invalid_characters"
    assert [e["field"] for e in refused.value.errors or []] == [
        "applicant.name",
        "return_url",
        "delivery.address.recipient",
        "delivery.address.line1",
        "metadata.窗口\x00",
        "metadata.备注",
    ]


def test_blank_text_alone_is_a_validation_failure():
    with pytest.raises(InvalidText) as refused:
        payment(applicant=ApplicantIn(name="  "))
    assert refused.value.code == "validation_failed"
    assert refused.value.errors == [{"field": "applicant.name", "message": "must not be blank"}]


def test_a_return_url_without_a_host_is_refused():
    with pytest.raises(InvalidText) as refused:
        payment(return_url="https:///done")
    assert refused.value.errors == [
        {"field": "return_url", "message": "must be an absolute http or https URL"}
    ]


def test_metadata_values_are_free_text_and_keys_are_not():
    assert payment(metadata={"备注": "一行\n两行", "空": ""}).metadata == {
        "备注": "一行\n两行",
        "空": "",
    }
    with pytest.raises(InvalidText):
        payment(metadata={"备\n注": "x"})


def test_a_refund_reason_may_span_lines_but_not_be_blank():
    assert RefundIn(amount=1, reason="撤回\n申请").reason == "撤回\n申请"
    with pytest.raises(InvalidText):
        RefundIn(amount=1, reason=" \n ")


def test_catalogue_codes_with_a_trailing_newline_are_refused():
    """`$` in the codes' patterns matches before a final newline: the rules catch it."""
    with pytest.raises(InvalidText) as refused:
        DepartmentIn(code="PSB\n", name="市公安局")
    assert refused.value.errors == [
        {"field": "code", "message": "must not contain control characters (U+000A)"}
    ]
    with pytest.raises(InvalidText) as refused:
        MatterIn(
            code="visa",
            name="签证",
            department="PSB",
            amount=1,
            deliverable=False,
            auto_issue=False,
            fee_split=[FeeShare(department="PSB\r", share_bps=10_000)],
        )
    assert [e["field"] for e in refused.value.errors or []] == ["fee_split[0].department"]
