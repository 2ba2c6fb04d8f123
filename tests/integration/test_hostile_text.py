"""Text that should never be stored is refused with a 400 naming the field (issue 6,
item 10): NUL and other control characters, invisible formatting characters (bidi
overrides, zero-width), names that are only whitespace, line breaks in a URL echoed
into a page, and JSON objects that name a key twice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.factories import ADDRESS, auth, payment_body
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    idem,
    paid_payment,
)

pytest_plugins = ["tests.integration.test_payments_support"]

#: characters refused anywhere in a name, a code or a single-line field
FORBIDDEN = {
    "NUL": "\u0000",
    "bell": "\u0007",
    "line feed": "\n",
    "carriage return": "\r",
    "delete": "\u007f",
    "C1 control": "\u0085",
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "first strong isolate": "\u2068",
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "line separator": "\u2028",
}
BLANK = {
    "spaces": "   ",
    "ideographic space": "\u3000",
    "mixed spaces": "\u3000 \u3000\u00a0",
}


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    target = body
    for name in parents:
        target = target[name]
    target[last] = value
    return body


async def post_payment(client: Any, key: str, body: Any) -> Any:
    return await client.post("/api/v1/payments", json=body, headers=auth(key, idem("text")))


async def assert_no_payment() -> None:
    assert await count_rows("payments") == 0
    assert await count_rows("idempotency_keys") == 0


PAYMENT_TEXT_FIELDS = [
    "reference",
    "applicant.name",
    "applicant.phone",
    "applicant.email",
    "delivery.address.recipient",
    "delivery.address.province",
    "delivery.address.city",
    "delivery.address.district",
    "delivery.address.line1",
    "delivery.address.postal_code",
    "return_url",
]


@pytest.mark.parametrize("field", PAYMENT_TEXT_FIELDS)
async def test_a_nul_character_in_any_payment_field_is_400_naming_it(app_client, keys, field):
    base = payment_body(delivery={"method": "courier", "address": dict(ADDRESS)})
    current: Any = base
    for name in field.split("."):
        current = current[name]
    body = _with(base, field, current[:2] + "\u0000" + current[2:])
    response = await post_payment(app_client, keys["psb"], body)
    problem = assert_problem(response, 400, field=field)
    # a field with a pattern (phone, postal code, URL) refuses it as not matching first
    assert problem["code"] in ("invalid_characters", "validation_failed"), problem
    await assert_no_payment()


@pytest.mark.parametrize("char", FORBIDDEN.values(), ids=FORBIDDEN.keys())
async def test_a_name_with_a_control_or_invisible_character_is_400(app_client, keys, char):
    response = await post_payment(
        app_client, keys["psb"], _with(payment_body(), "applicant.name", f"张{char}伟")
    )
    body = assert_problem(response, 400, "invalid_characters", field="applicant.name")
    assert f"U+{ord(char):04X}" in body["errors"][0]["message"]
    await assert_no_payment()


@pytest.mark.parametrize("name", BLANK.values(), ids=BLANK.keys())
async def test_a_name_of_only_whitespace_is_400(app_client, keys, name):
    for field in ("applicant.name", "delivery.address.recipient"):
        response = await post_payment(
            app_client,
            keys["psb"],
            _with(payment_body(delivery={"method": "courier", "address": ADDRESS}), field, name),
        )
        assert_problem(response, 400, "validation_failed", field=field)
    await assert_no_payment()


async def test_every_offending_field_is_named_at_once(app_client, keys):
    body = _with(payment_body(), "applicant.name", "\u3000")
    body = _with(body, "reference", "CRJ\u202e2026")
    response = await post_payment(app_client, keys["psb"], body)
    problem = assert_problem(response, 400, "invalid_characters")
    assert {e["field"] for e in problem["errors"]} == {"applicant.name", "reference"}


async def test_a_name_with_a_rare_character_or_an_inner_ideographic_space_is_accepted(
    app_client, keys
):
    """Real names: CJK Extension B, a middle dot, a name written with a full-width space."""
    for name in ("王𠀀𪚥", "阿依古丽·买买提", "山田\u3000太郎", "Zoë O'Brien-Łukasz"):
        payment = await create_payment(
            app_client, keys["psb"], applicant={"name": name}, reference=f"CRJ-{name}"
        )
        assert payment["applicant"]["name"] == name


@pytest.mark.parametrize(
    "metadata",
    [
        {"窗口\u0000": "3"},
        {"窗口": "3\u0000"},
        {"\u200b": "3"},
        {"窗口": "\u202e3"},
        {"窗口": "a\u0007b"},
    ],
    ids=["nul-key", "nul-value", "zero-width-key", "override-value", "bell-value"],
)
async def test_metadata_keys_and_values_with_forbidden_characters_are_400(
    app_client, keys, metadata
):
    response = await post_payment(app_client, keys["psb"], payment_body(metadata=metadata))
    body = assert_problem(response, 400, "invalid_characters")
    assert body["errors"][0]["field"].startswith("metadata"), body
    await assert_no_payment()


async def test_metadata_values_may_hold_line_breaks_tabs_and_emoji(app_client, keys):
    """Metadata values are free text: only controls and bidi overrides are refused."""
    metadata = {"备注": "第一行\n第二行\r\n\t缩进", "家庭": "👨\u200d👩\u200d👧"}
    payment = await create_payment(app_client, keys["psb"], metadata=metadata)
    assert payment["metadata"] == metadata


@pytest.mark.parametrize(
    "url",
    [
        "https://crj.example.gov.cn/done\r\nSet-Cookie: a=b",
        "https://crj.example.gov.cn/done\n",
        "https://crj.example.gov.cn/\u0000",
        "https://crj.example.gov.cn/ done",
        "https://",
        "https:///path-only",
        "javascript:alert(1)",
        "ftp://crj.example.gov.cn/done",
        "//crj.example.gov.cn/done",
        "https://crj.example.gov.cn\u202e/done",
    ],
)
async def test_a_return_url_that_is_not_a_plain_http_url_is_400(app_client, keys, url):
    response = await post_payment(app_client, keys["psb"], payment_body(return_url=url))
    assert_problem(response, 400, field="return_url")
    await assert_no_payment()


async def test_an_http_return_url_with_a_query_is_accepted(app_client, keys):
    url = "http://10.1.2.3:8080/done?ref=CRJ-1&lang=zh#top"
    payment = await create_payment(app_client, keys["psb"], return_url=url)
    assert payment["status"] == "created"


# --- duplicate keys ------------------------------------------------------------------


async def raw_post(client: Any, key: str, body: bytes, path: str = "/api/v1/payments") -> Any:
    return await client.post(
        path,
        content=body,
        headers={**auth(key, idem("dup")), "Content-Type": "application/json"},
    )


async def test_a_duplicate_key_at_the_top_is_400_naming_it(app_client, keys):
    body = json.dumps(payment_body(), ensure_ascii=False)
    body = body[:-1] + ', "reference": "CRJ-OTHER"}'
    response = await raw_post(app_client, keys["psb"], body.encode())
    problem = assert_problem(response, 400, "duplicate_key", field="reference")
    assert "twice" in problem["errors"][0]["message"]
    await assert_no_payment()


async def test_a_duplicate_nested_key_is_named_with_its_path(app_client, keys):
    body = json.dumps(payment_body(), ensure_ascii=False).replace(
        '"name": "张伟"', '"name": "张伟", "name": "李娜"'
    )
    response = await raw_post(app_client, keys["psb"], body.encode())
    assert_problem(response, 400, "duplicate_key", field="applicant.name")
    await assert_no_payment()


async def test_a_key_repeated_through_an_escape_is_a_duplicate(app_client, keys):
    body = json.dumps(payment_body())[:-1] + ', "\\u0072eference": "CRJ-OTHER"}'
    response = await raw_post(app_client, keys["psb"], body.encode())
    assert_problem(response, 400, "duplicate_key", field="reference")


async def test_equal_keys_in_different_objects_are_not_duplicates(app_client, keys):
    """`phone` in the applicant and in the address, a key text in a value: all fine."""
    body = payment_body(metadata={"phone": '"phone": 1', "name": "x"})
    response = await raw_post(app_client, keys["psb"], json.dumps(body).encode())
    assert response.status_code == 201, response.text


async def test_a_duplicate_key_in_a_refund_is_400_and_refunds_nothing(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    body = b'{"amount": 100, "amount": 12000, "reason": "\xe6\x92\xa4\xe5\x9b\x9e"}'
    response = await raw_post(
        app_client, keys["psb"], body, f"/api/v1/payments/{payment['id']}/refunds"
    )
    assert_problem(response, 400, "duplicate_key", field="amount")
    assert await count_rows("refunds") == 0


# --- refunds, counter collections, the catalogue -------------------------------------


async def test_a_refund_reason_with_a_nul_or_an_override_is_400_naming_it(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    for reason in ("撤回\u0000", "\u202e撤回", "   "):
        response = await app_client.post(
            f"/api/v1/payments/{payment['id']}/refunds",
            json={"amount": 100, "reason": reason},
            headers=auth(keys["psb"], idem("rf")),
        )
        assert_problem(response, 400, field="reason")
    assert await count_rows("refunds") == 0


async def test_a_refund_reason_may_span_lines(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 100, "reason": "申请人撤回申请\n窗口：3号"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert response.status_code == 201, response.text


async def test_a_counter_operator_with_a_control_character_is_400(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    for change in ({"operator": "王\u0000"}, {"receipt_no": "R-1\n2"}, {"operator": "\u3000"}):
        response = await app_client.post(
            f"/api/v1/payments/{payment['id']}/counter",
            json={"method": "cash", **change},
            headers=auth(keys["psb"], idem("ctr")),
        )
        assert_problem(response, 400, field=next(iter(change)))
    current = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb"]))
    assert current.json()["status"] == "created"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "TAX", "name": "\u3000\u3000"}, "name"),
        ({"code": "TAX", "name": "税务局\u202e"}, "name"),
        ({"code": "TAX\n", "name": "税务局"}, "code"),
        ({"code": "TAX", "name": "税务局", "timezone": "Asia/Shanghai\u0000"}, "timezone"),
    ],
    ids=["blank-name", "override-name", "newline-code", "nul-timezone"],
)
async def test_a_department_with_bad_text_is_400_naming_the_field(app_client, keys, body, field):
    response = await app_client.post(
        "/api/v1/admin/departments", json=body, headers=auth(keys["admin"])
    )
    assert_problem(response, 400, field=field)
    assert await count_rows("departments", "code LIKE 'TAX%'") == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": " "}, "name"),
        ({"code": "visa\n"}, "code"),
        ({"currency": "CNY\n"}, "currency"),
        ({"required_materials": ["身份证", "照片\u0000"]}, "required_materials[1]"),
        ({"fee_split": [{"department": "PSB\n", "share_bps": 10000}]}, "fee_split[0].department"),
    ],
    ids=["blank-name", "newline-code", "newline-currency", "nul-material", "newline-share"],
)
async def test_a_matter_with_bad_text_is_400_naming_the_field(app_client, keys, change, field):
    matter = {
        "code": "visa",
        "name": "签证",
        "department": "PSB",
        "amount": 100,
        "deliverable": False,
        "auto_issue": False,
        **change,
    }
    response = await app_client.post(
        "/api/v1/admin/matters", json=matter, headers=auth(keys["admin"])
    )
    assert_problem(response, 400, field=field)
    assert await count_rows("matters", "code LIKE 'visa%'") == 0


async def test_a_courier_partner_with_bad_text_is_400_naming_the_field(app_client, keys):
    partner = {
        "code": "ems",
        "name": "中国邮政\u200b",
        "service_areas": [{"province": "浙江省"}],
    }
    response = await app_client.post(
        "/api/v1/admin/courier-partners", json=partner, headers=auth(keys["admin"])
    )
    assert_problem(response, 400, "invalid_characters", field="name")
    partner = {**partner, "name": "中国邮政", "service_areas": [{"province": "浙江\u0000"}]}
    response = await app_client.post(
        "/api/v1/admin/courier-partners", json=partner, headers=auth(keys["admin"])
    )
    assert_problem(response, 400, "invalid_characters", field="service_areas[0].province")
