"""Strict input (issue 7, item 6): names trimmed and required, JSON's types as they are
(no text taken for a number) on every JSON-body endpoint, 415 for a body that is not
JSON, 400 `invalid_cursor` for a cursor no list returned, plain-words messages (never a
regular expression), and every invalid field listed in `errors[]`."""

from __future__ import annotations

import json
import re

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

#: what a regular expression in a message would show
REGEX_SIGNS = re.compile(r"regex|\^|\$|\\|\[0-9\]|\+\]")


def fields_of(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["field"] for e in body["errors"]]


async def post_payment(client, key: str, body, **headers):  # type: ignore[no-untyped-def]
    return await client.post(
        "/api/v1/payments", json=body, headers={**auth(key, idem("in")), **headers}
    )


async def assert_no_payment() -> None:
    assert await count_rows("payments") == 0
    assert await count_rows("idempotency_keys") == 0


# --- strict types ---------------------------------------------------------------------


async def test_a_quantity_sent_as_text_is_refused(app_client, keys):
    response = await post_payment(app_client, keys["psb"], payment_body(quantity="2"))
    body = assert_problem(response, 400, "validation_failed", field="quantity")
    assert body["errors"] == [
        {"field": "quantity", "message": "must be a whole number, not text (a JSON string)"}
    ]
    await assert_no_payment()


async def test_a_refund_amount_sent_as_text_is_refused(app_client, keys):
    paid = await paid_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{paid['id']}/refunds",
        json={"amount": "100", "reason": "申请人撤回申请"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert_problem(response, 400, "validation_failed", field="amount")
    assert await count_rows("refunds") == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/v1/admin/matters",
            {
                "code": "id-card",
                "name": "居民身份证换领",
                "department": "PSB",
                "amount": "2000",
                "deliverable": True,
                "auto_issue": False,
            },
            "amount",
        ),
        (
            "/api/v1/admin/matters",
            {
                "code": "id-card",
                "name": "居民身份证换领",
                "department": "PSB",
                "amount": 2000,
                "deliverable": "true",
                "auto_issue": 0,
            },
            "deliverable",
        ),
        ("/api/v1/admin/departments", {"code": "TAX", "name": 12366}, "name"),
        ("/api/v1/admin/keys", {"role": "department", "departments": "PSB"}, "departments"),
    ],
    ids=["matter-amount-text", "matter-flags-text", "department-name-number", "key-scope-text"],
)
async def test_admin_bodies_take_json_types_as_they_are(app_client, keys, path, body, field):
    response = await app_client.post(path, json=body, headers=auth(keys["admin"]))
    problem = assert_problem(response, 400, "validation_failed", field=field)
    if field == "deliverable":  # both flags are named, not only the first
        assert {"deliverable", "auto_issue"} <= set(fields_of(problem)), problem


# --- every invalid field, in plain words ------------------------------------------------


async def test_every_invalid_field_is_listed(app_client, keys):
    body = payment_body(quantity="x", reference=20260001, return_url="ftp://crj.example")
    body["applicant"] = {"name": "　", "phone": "call me", "email": "not-an-address"}
    body["delivery"] = {"method": "courier", "address": {**ADDRESS, "postal_code": "31001"}}
    body["window"] = 3
    response = await post_payment(app_client, keys["psb"], body)
    problem = assert_problem(response, 400, "validation_failed")
    assert set(fields_of(problem)) == {
        "window",
        "quantity",
        "reference",
        "return_url",
        "applicant.name",
        "applicant.phone",
        "applicant.email",
        "delivery.address.postal_code",
    }, problem
    assert "and 7 more" in problem["detail"]
    await assert_no_payment()


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"applicant": {"name": "张伟", "phone": "call me"}}, "applicant.phone", "phone number"),
        ({"applicant": {"name": "张伟", "email": "zhang"}}, "applicant.email", "email address"),
        ({"return_url": "crj.example.gov.cn/done"}, "return_url", "http or https URL"),
        ({"matter_code": "护照"}, "matter_code", "letters A-Z, digits"),
        (
            {"delivery": {"method": "courier", "address": {**ADDRESS, "postal_code": "3100"}}},
            "delivery.address.postal_code",
            "six digits",
        ),
        ({"delivery": {"method": "drone"}}, "delivery.method", "one of: courier, pickup"),
        ({"quantity": 0}, "quantity", "at least 1"),
        ({"reference": "号" * 101}, "reference", "at most 100 characters"),
    ],
    ids=["phone", "email", "url", "code", "postal-code", "method", "quantity", "length"],
)
async def test_messages_are_in_plain_words(app_client, keys, change, field, words):
    response = await post_payment(app_client, keys["psb"], payment_body(**change))
    problem = assert_problem(response, 400, field=field)
    message = next(e["message"] for e in problem["errors"] if e["field"] == field)
    assert words in message, problem
    assert not REGEX_SIGNS.search(message), message
    assert not REGEX_SIGNS.search(problem["detail"]), problem["detail"]


async def test_a_query_parameter_of_the_wrong_type_is_explained_in_plain_words(app_client, keys):
    response = await app_client.get("/api/v1/payments?limit=many", headers=auth(keys["psb"]))
    problem = assert_problem(response, 400, field="limit")
    assert "`" not in problem["errors"][0]["message"], problem


# --- names ----------------------------------------------------------------------------


async def test_the_applicants_name_is_stored_trimmed(app_client, keys):
    body = payment_body()
    body["applicant"]["name"] = "  张伟　"
    body["delivery"]["address"] = {**ADDRESS, "recipient": " 张伟 "}
    response = await post_payment(app_client, keys["psb"], body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["applicant"]["name"] == "张伟"
    assert created["delivery"]["address"]["recipient"] == "张伟"
    stored = await app_client.get(f"/api/v1/payments/{created['id']}", headers=auth(keys["psb"]))
    assert stored.json()["applicant"]["name"] == "张伟"


@pytest.mark.parametrize("name", ["", "   ", "\u3000\u3000"])
async def test_a_name_of_spaces_only_is_required(app_client, keys, name):
    body = payment_body()
    body["applicant"]["name"] = name
    response = await post_payment(app_client, keys["psb"], body)
    assert_problem(response, 400, "validation_failed", field="applicant.name")
    await assert_no_payment()


async def test_a_blank_name_and_a_wrong_type_are_both_named(app_client, keys):
    body = payment_body(quantity="2")
    body["applicant"]["name"] = "   "
    response = await post_payment(app_client, keys["psb"], body)
    problem = assert_problem(response, 400, "validation_failed")
    assert set(fields_of(problem)) == {"quantity", "applicant.name"}, problem


# --- media type -----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_not_sent_as_json_is_415(app_client, keys, content_type):
    headers = auth(keys["psb"], idem("plain"))
    if content_type:
        headers["Content-Type"] = content_type
    response = await app_client.post(
        "/api/v1/payments", content=json.dumps(payment_body()).encode(), headers=headers
    )
    problem = assert_problem(response, 415, "unsupported_media_type")
    assert "application/json" in problem["detail"]
    await assert_no_payment()


async def test_json_with_a_charset_or_a_json_suffix_is_json(app_client, keys):
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = await app_client.post(
            "/api/v1/payments",
            content=json.dumps(payment_body(reference=f"R-{content_type[-5:]}")).encode(),
            headers={**auth(keys["psb"], idem("ct")), "Content-Type": content_type},
        )
        assert response.status_code == 201, response.text


async def test_admin_and_refund_bodies_must_be_json_too(app_client, keys):
    response = await app_client.post(
        "/api/v1/admin/departments",
        content=json.dumps({"code": "TAX", "name": "税务局"}).encode(),
        headers={**auth(keys["admin"]), "Content-Type": "text/plain"},
    )
    assert_problem(response, 415, "unsupported_media_type")
    paid = await paid_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{paid['id']}/refunds",
        content=b'{"amount": 100, "reason": "x"}',
        headers={**auth(keys["psb"], idem("rf")), "Content-Type": "text/plain"},
    )
    assert_problem(response, 415, "unsupported_media_type")
    assert await count_rows("refunds") == 0


# --- cursors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cursor", ["garbage", "pay_' OR 1=1 --", "zzzzzzzz", "acct_01m8rxwzcp0a8k23zt0qtg8edr"]
)
async def test_a_cursor_no_list_returned_is_400_invalid_cursor(app_client, keys, cursor):
    response = await app_client.get(
        "/api/v1/payments", params={"cursor": cursor}, headers=auth(keys["psb"])
    )
    assert_problem(response, 400, "invalid_cursor", field="cursor")


async def test_the_next_cursor_of_a_page_still_works(app_client, keys):
    for number in range(3):
        await create_payment(app_client, keys["psb"], reference=f"CRJ-PAGE-{number}")
    first = await app_client.get("/api/v1/payments?limit=2", headers=auth(keys["psb"]))
    cursor = first.json()["next_cursor"]
    assert cursor
    second = await app_client.get(
        "/api/v1/payments", params={"limit": 2, "cursor": cursor}, headers=auth(keys["psb"])
    )
    assert second.status_code == 200, second.text
    assert [p["reference"] for p in second.json()["data"]] == ["CRJ-PAGE-0"]


async def test_a_garbage_cursor_on_the_ledger_is_400_too(app_client, keys):
    response = await app_client.get(
        "/api/v1/ledger/accounts", params={"cursor": "garbage"}, headers=auth(keys["finance"])
    )
    assert_problem(response, 400, "invalid_cursor", field="cursor")
    first = await app_client.get("/api/v1/ledger/accounts?limit=1", headers=auth(keys["finance"]))
    cursor = first.json()["next_cursor"]
    assert cursor
    second = await app_client.get(
        "/api/v1/ledger/accounts",
        params={"limit": 1, "cursor": cursor},
        headers=auth(keys["finance"]),
    )
    assert second.status_code == 200, second.text
