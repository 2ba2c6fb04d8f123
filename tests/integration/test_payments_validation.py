"""Bad input gets a clear 4xx problem+json and changes nothing (ARCHITECTURE principle 7)."""

from __future__ import annotations

import json

import pytest

from tests.factories import ADDRESS, auth, payment_body
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    idem,
)

pytest_plugins = ["tests.integration.test_payments_support"]


async def post_payment(client, key: str, body):  # type: ignore[no-untyped-def]
    return await client.post("/api/v1/payments", json=body, headers=auth(key, idem("bad")))


async def assert_nothing_written() -> None:
    assert await count_rows("payments") == 0
    assert await count_rows("outbox_events") == 0
    assert await count_rows("idempotency_keys") == 0


async def test_unknown_matter_is_422_unknown_matter(app_client, keys):
    response = await post_payment(
        app_client, keys["psb"], payment_body(matter_code="driving-licence")
    )
    assert_problem(response, 422, "unknown_matter", field="matter_code")
    await assert_nothing_written()


async def test_another_departments_matter_is_refused_like_an_unknown_one(app_client, keys):
    response = await post_payment(
        app_client, keys["psb"], payment_body(matter_code="real-estate-transfer")
    )
    body = assert_problem(response, 422, "unknown_matter", field="matter_code")
    assert "NRB" not in body["detail"]
    await assert_nothing_written()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": "两份"}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"reference": 20260001}, "reference"),
        ({"applicant": "张伟"}, "applicant"),
        ({"delivery": {"method": "drone", "address": ADDRESS}}, "delivery.method"),
        ({"metadata": {"窗口": 3}}, "metadata"),
    ],
    ids=[
        "quantity-text",
        "quantity-float",
        "reference-number",
        "applicant-string",
        "delivery-method",
        "metadata-int",
    ],
)
async def test_wrong_types_are_a_validation_error_naming_the_field(app_client, keys, change, field):
    response = await post_payment(app_client, keys["psb"], payment_body(**change))
    body = assert_problem(response, (400, 422), "validation_failed")
    assert body["errors"] and all({"field", "message"} <= e.keys() for e in body["errors"])
    assert body["errors"][0]["field"].startswith(field), body
    await assert_nothing_written()


@pytest.mark.parametrize("quantity", [0, -1])
async def test_quantity_below_one_is_a_validation_error(app_client, keys, quantity):
    response = await post_payment(app_client, keys["psb"], payment_body(quantity=quantity))
    assert_problem(response, (400, 422), "validation_failed", field="quantity")
    await assert_nothing_written()


async def test_reference_of_ten_thousand_characters_is_a_validation_error(app_client, keys):
    response = await post_payment(app_client, keys["psb"], payment_body(reference="号" * 10_000))
    assert_problem(response, (400, 422), "validation_failed", field="reference")
    await assert_nothing_written()


async def test_applicant_name_over_200_characters_is_a_validation_error(app_client, keys):
    body = payment_body()
    body["applicant"]["name"] = "欧阳" * 101
    response = await post_payment(app_client, keys["psb"], body)
    assert_problem(response, (400, 422), "validation_failed", field="applicant.name")
    await assert_nothing_written()


async def test_body_over_one_megabyte_is_413(app_client, keys):
    body = payment_body(metadata={"备注": "长" * 400_000})  # about 1.2 MB of UTF-8
    response = await post_payment(app_client, keys["psb"], body)
    assert_problem(response, 413, "request_too_large")
    await assert_nothing_written()


async def test_malformed_json_is_400_malformed_json(app_client, keys):
    response = await app_client.post(
        "/api/v1/payments",
        content=b'{"matter_code": "passport", "reference": ',
        headers={**auth(keys["psb"], idem("bad")), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed_json")
    await assert_nothing_written()


async def test_a_body_that_is_not_json_is_400_malformed_json(app_client, keys):
    response = await app_client.post(
        "/api/v1/payments",
        content=b"matter_code=passport",
        headers={**auth(keys["psb"], idem("bad")), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed_json")
    await assert_nothing_written()


async def test_an_empty_body_is_a_validation_error_about_the_body(app_client, keys):
    response = await app_client.post(
        "/api/v1/payments",
        content=b"",
        headers={**auth(keys["psb"], idem("bad")), "Content-Type": "application/json"},
    )
    assert_problem(response, (400, 422), field="body")
    await assert_nothing_written()


async def test_a_json_array_is_a_validation_error(app_client, keys):
    response = await app_client.post(
        "/api/v1/payments",
        content=json.dumps([payment_body()]).encode(),
        headers={**auth(keys["psb"], idem("bad")), "Content-Type": "application/json"},
    )
    assert_problem(response, (400, 422), "validation_failed")
    await assert_nothing_written()


@pytest.mark.parametrize(
    "missing", ["matter_code", "reference", "applicant", "return_url", "delivery"]
)
async def test_missing_required_field_is_named_in_errors(app_client, keys, missing):
    body = payment_body()
    del body[missing]
    response = await post_payment(app_client, keys["psb"], body)
    problem = assert_problem(response, (400, 422), "validation_failed", field=missing)
    assert problem["errors"][0]["message"] == "required"
    await assert_nothing_written()


async def test_missing_nested_field_is_named_with_its_path(app_client, keys):
    body = payment_body()
    del body["applicant"]["name"]
    response = await post_payment(app_client, keys["psb"], body)
    assert_problem(response, (400, 422), "validation_failed", field="applicant.name")
    await assert_nothing_written()


async def test_unknown_nested_field_is_named_with_its_path(app_client, keys):
    body = payment_body()
    body["applicant"]["id_number"] = "330106199001011234"
    response = await post_payment(app_client, keys["psb"], body)
    assert_problem(response, (400, 422), "validation_failed", field="applicant.id_number")
    await assert_nothing_written()


async def test_courier_delivery_without_an_address_is_422_address_required(app_client, keys):
    response = await post_payment(
        app_client, keys["psb"], payment_body(delivery={"method": "courier"})
    )
    assert_problem(response, 422, "address_required", field="delivery.address")
    await assert_nothing_written()


async def test_courier_delivery_of_a_matter_that_is_not_deliverable_is_422(app_client, keys):
    response = await post_payment(
        app_client, keys["psb"], payment_body(matter_code="no-criminal-record")
    )
    assert_problem(response, 422, "not_deliverable", field="delivery.method")
    await assert_nothing_written()


async def test_pickup_of_a_matter_that_is_not_deliverable_is_accepted(app_client, keys):
    payment = await create_payment(
        app_client, keys["psb"], matter_code="no-criminal-record", delivery={"method": "pickup"}
    )
    assert payment["amount"] == 2000


async def test_postal_code_that_is_not_six_digits_is_a_validation_error(app_client, keys):
    address = {**ADDRESS, "postal_code": "31001"}
    response = await post_payment(
        app_client, keys["psb"], payment_body(delivery={"method": "courier", "address": address})
    )
    assert_problem(response, (400, 422), "validation_failed", field="delivery.address.postal_code")
    await assert_nothing_written()


async def test_return_url_that_is_not_http_is_a_validation_error(app_client, keys):
    response = await post_payment(
        app_client, keys["psb"], payment_body(return_url="javascript:alert(1)")
    )
    assert_problem(response, (400, 422), "validation_failed", field="return_url")
    await assert_nothing_written()


# --- the list's query parameters ----------------------------------------------------------


async def test_bad_from_date_in_the_list_is_a_validation_error_naming_from(app_client, keys):
    response = await app_client.get(
        "/api/v1/payments", params={"from": "昨天"}, headers=auth(keys["psb"])
    )
    assert_problem(response, (400, 422), "validation_failed", field="from")


async def test_from_date_without_an_offset_is_a_validation_error(app_client, keys):
    response = await app_client.get(
        "/api/v1/payments", params={"from": "2026-03-01T00:00:00"}, headers=auth(keys["psb"])
    )
    assert_problem(response, (400, 422), field="from")


async def test_unknown_status_filter_is_a_validation_error(app_client, keys):
    response = await app_client.get(
        "/api/v1/payments", params={"status": "paid"}, headers=auth(keys["psb"])
    )
    assert_problem(response, (400, 422), field="status")


@pytest.mark.parametrize("limit", ["201", "0", "-5"])
async def test_limit_outside_1_to_200_is_a_validation_error(app_client, keys, limit):
    response = await app_client.get(
        "/api/v1/payments", params={"limit": limit}, headers=auth(keys["psb"])
    )
    assert_problem(response, (400, 422), field="limit")


async def test_limit_that_is_not_a_number_is_a_validation_error(app_client, keys):
    response = await app_client.get(
        "/api/v1/payments", params={"limit": "二十"}, headers=auth(keys["psb"])
    )
    assert_problem(response, (400, 422), "validation_failed", field="limit")


# --- everything else is problem+json too --------------------------------------------------


async def test_unknown_route_is_a_404_problem(app_client, keys):
    response = await app_client.get("/api/v1/paymentz", headers=auth(keys["psb"]))
    assert_problem(response, 404, "not_found")


async def test_wrong_method_is_a_405_problem(app_client, keys):
    response = await app_client.delete("/api/v1/payments", headers=auth(keys["psb"]))
    assert_problem(response, 405, "method_not_allowed")


async def test_unknown_payment_is_a_404_problem(app_client, keys):
    response = await app_client.get(
        "/api/v1/payments/pay_00000000000000000000000000", headers=auth(keys["psb"])
    )
    assert_problem(response, 404, "payment_not_found")
