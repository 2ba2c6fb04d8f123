"""Hostile request bodies: the key is checked before the body is read, and a body that
is too deep or too big is a 4xx problem+json, never a 500 (issue 6, item 7)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from onetrip.jsonbody import API_BODY_LIMIT, MAX_JSON_DEPTH, WEBHOOK_BODY_LIMIT
from tests.factories import auth, payment_body
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    idem,
)

pytest_plugins = ["tests.integration.test_payments_support"]

JSON = {"Content-Type": "application/json"}
DEEP = b"[" * 2000 + b"]" * 2000


def nested_metadata(depth: int) -> bytes:
    """A payment body whose metadata value is nested `depth` levels below the root."""
    body = json.dumps(payment_body(metadata={"窗口": "__deep__"}), ensure_ascii=False)
    inner = depth - 2  # the root object and the metadata object are two levels
    return body.replace('"__deep__"', "[" * inner + "1" + "]" * inner).encode()


async def post(client, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return await client.post("/api/v1/payments", content=body, headers={**JSON, **headers})


async def assert_no_payment() -> None:
    assert await count_rows("payments") == 0
    assert await count_rows("idempotency_keys") == 0


# --- the key first -------------------------------------------------------------------


async def test_deeply_nested_json_without_a_key_is_401(app_client, keys):
    response = await post(app_client, DEEP, {})
    assert_problem(response, 401, "missing_api_key")


async def test_malformed_json_without_a_key_is_401_not_400(app_client, keys):
    response = await post(app_client, b'{"matter_code": "passport", "reference": ', {})
    assert_problem(response, 401, "missing_api_key")


async def test_malformed_json_with_an_invalid_key_is_401(app_client, keys):
    response = await post(app_client, b"{", {"Authorization": "Bearer otk_nope_nope"})
    assert_problem(response, 401, "invalid_api_key")


async def test_malformed_json_with_a_key_of_another_role_is_403(app_client, keys):
    response = await post(app_client, b"{", auth(keys["finance"], idem("bad")))
    assert_problem(response, 403, "wrong_role")


async def test_a_body_over_the_limit_without_a_key_is_401(app_client, keys):
    response = await post(app_client, b" " * (API_BODY_LIMIT + 1), {})
    assert_problem(response, 401, "missing_api_key")


def keyed_write_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every handler that takes a body and needs an API key."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if "principal" not in handler.resolve_dependencies():
                continue
            for method in sorted(handler.http_methods & {"POST", "PUT", "PATCH", "DELETE"}):
                path = route.path.replace("{", "").replace("}", "").replace(":str", "")
                found.append((method, path))
    return found


async def test_every_keyed_endpoint_checks_the_key_before_the_body(api_app, app_client, keys):
    routes = keyed_write_routes(api_app)
    assert ("POST", "/api/v1/payments") in routes and len(routes) >= 5, routes
    for method, path in routes:
        for body in (b"{", DEEP):
            response = await app_client.request(method, path, content=body, headers=JSON)
            assert response.status_code == 401, (method, path, response.text)


async def test_the_key_is_checked_once_per_request(app_client, keys, monkeypatch):
    """The early check and the handler's own dependency share one verification."""
    from onetrip import auth as auth_module

    calls = []
    verify = auth_module.principal_for_key

    async def counting(plain: str):  # type: ignore[no-untyped-def]
        calls.append(plain)
        return await verify(plain)

    monkeypatch.setattr(auth_module, "principal_for_key", counting)
    response = await app_client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(keys["psb"], idem("once"))
    )
    assert response.status_code == 201, response.text
    assert len(calls) == 1


# --- nesting depth -------------------------------------------------------------------


async def test_deeply_nested_json_with_a_key_is_400_not_500(app_client, keys):
    response = await post(app_client, DEEP, auth(keys["psb"], idem("deep")))
    body = assert_problem(response, 400, "json_too_deep")
    assert str(MAX_JSON_DEPTH) in body["detail"]
    await assert_no_payment()


async def test_a_deep_body_on_an_endpoint_that_takes_none_is_400_not_500(app_client, keys):
    """Cancel reads no `data`, but its body is part of its Idempotency-Key fingerprint."""
    payment = await create_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel",
        content=DEEP,
        headers={**JSON, **auth(keys["psb"], idem("cancel"))},
    )
    assert_problem(response, 400, "json_too_deep")
    current = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb"]))
    assert current.json()["status"] == "created"


async def test_deeply_nested_objects_are_400_too(app_client, keys):
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    response = await post(app_client, deep, auth(keys["psb"], idem("deep")))
    assert_problem(response, 400, "json_too_deep")


async def test_one_level_over_the_depth_limit_is_400(app_client, keys):
    response = await post(
        app_client, nested_metadata(MAX_JSON_DEPTH + 1), auth(keys["psb"], idem("deep"))
    )
    assert_problem(response, 400, "json_too_deep")
    await assert_no_payment()


async def test_nesting_at_the_limit_is_an_ordinary_validation_error(app_client, keys):
    response = await post(
        app_client, nested_metadata(MAX_JSON_DEPTH), auth(keys["psb"], idem("deep"))
    )
    assert_problem(response, 400, "validation_failed", field="metadata[...]")


async def test_brackets_inside_strings_do_not_count_as_nesting(app_client, keys):
    text = '["[{' * 100 + '\\"]'  # brackets and an escaped quote inside one string
    response = await app_client.post(
        "/api/v1/payments",
        json=payment_body(metadata={"备注": text}),
        headers=auth(keys["psb"], idem("brackets")),
    )
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == {"备注": text}


async def test_unbalanced_brackets_are_malformed_json_not_a_500(app_client, keys):
    for body in (b"]" * 100 + b"[" * 100, b'["' + b'\\"' * 5000, b"[" * 40 + b'"'):
        response = await post(app_client, body, auth(keys["psb"], idem("odd")))
        assert response.status_code == 400, response.text
        assert response.json()["code"] in ("malformed_json", "json_too_deep")


# --- body size -----------------------------------------------------------------------


async def test_a_body_over_the_api_limit_is_413(app_client, keys):
    body = json.dumps(payment_body()).encode() + b" " * API_BODY_LIMIT
    response = await post(app_client, body, auth(keys["psb"], idem("big")))
    problem = assert_problem(response, 413, "request_too_large")
    assert f"{API_BODY_LIMIT} bytes" in problem["detail"]
    await assert_no_payment()


async def test_a_body_just_under_the_api_limit_is_accepted(app_client, keys):
    body = json.dumps(payment_body()).encode()
    body += b" " * (API_BODY_LIMIT - len(body))
    response = await post(app_client, body, auth(keys["psb"], idem("padded")))
    assert response.status_code == 201, response.text


async def post_chunked(app, path: str, chunks: list[bytes], headers: dict[str, str]):  # type: ignore[no-untyped-def]
    """POST a body in chunks without a Content-Length, straight through ASGI (the test
    client always sends one): the size must be counted as the bytes arrive."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


async def test_a_chunked_body_over_the_limit_without_a_length_is_413(api_app, app_client, keys):
    chunks = [b" " * 1024] * (API_BODY_LIMIT // 1024 + 2)
    headers = {**JSON, **auth(keys["psb"], idem("chunked"))}
    status, problem = await post_chunked(api_app, "/api/v1/payments", chunks, headers)
    assert (status, problem["code"]) == (413, "request_too_large")
    status, problem = await post_chunked(api_app, "/webhooks/stripe", chunks * 10, JSON)
    assert (status, problem["code"]) == (413, "request_too_large")
    await assert_no_payment()


async def test_the_largest_valid_payment_fits_under_the_limit_even_ascii_escaped(app_client, keys):
    """Every field at its maximum length, in Chinese, escaped as Python's json does."""
    big = "长" * 200
    body = payment_body(
        reference="号" * 100,
        applicant={"name": big, "phone": "1" * 32, "email": "a" * 240 + "@example.cn"},
        delivery={
            "method": "courier",
            "address": {
                "recipient": big,
                "phone": "1" * 32,
                "province": big,
                "city": big,
                "district": big,
                "line1": "路" * 500,
                "postal_code": "310012",
            },
        },
        metadata={f"{i:02d}" + "键" * 38: "值" * 500 for i in range(20)},
        return_url="https://crj.example.gov.cn/" + "a" * 1970,
    )
    encoded = json.dumps(body, ensure_ascii=True, indent=2).encode()
    assert len(encoded) < API_BODY_LIMIT
    response = await post(app_client, encoded, auth(keys["psb"], idem("max")))
    assert response.status_code == 201, response.text


# --- the Stripe webhook ----------------------------------------------------------------


@pytest.fixture
def webhook_secret(env):  # type: ignore[no-untyped-def]
    from onetrip.settings import reset_settings

    env.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test_onetrip")
    reset_settings()
    return "whsec_test_onetrip"


async def post_webhook(client, body: bytes, signed: bool = True):  # type: ignore[no-untyped-def]
    from tests.stripe_fixtures import sign

    headers = {**JSON, **({"Stripe-Signature": sign(body)} if signed else {})}
    return await client.post("/webhooks/stripe", content=body, headers=headers)


def stripe_event(padding: int = 0) -> bytes:
    event = {
        "id": "evt_padded",
        "object": "event",
        "type": "customer.created",
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
    return json.dumps(event).encode() + b" " * padding


async def test_a_stripe_event_bigger_than_the_api_limit_is_accepted(app_client, webhook_secret):
    response = await post_webhook(app_client, stripe_event(padding=API_BODY_LIMIT * 2))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "ignored"


async def test_a_stripe_webhook_over_its_limit_is_413(app_client, webhook_secret):
    response = await post_webhook(app_client, stripe_event(padding=WEBHOOK_BODY_LIMIT))
    assert_problem(response, 413, "request_too_large")
    assert await count_rows("consumed_events") == 0


async def test_a_deeply_nested_signed_stripe_body_is_400_not_500(app_client, webhook_secret):
    response = await post_webhook(app_client, DEEP)
    assert_problem(response, 400, "json_too_deep")
    assert await count_rows("consumed_events") == 0


async def test_a_deeply_nested_unsigned_stripe_body_is_an_invalid_signature(
    app_client, webhook_secret
):
    response = await post_webhook(app_client, DEEP, signed=False)
    assert_problem(response, 400, "invalid_signature")
