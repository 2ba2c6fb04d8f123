"""Correctly signed Stripe events that are not well formed are refused with a 400 and
change nothing; a signature from the future is refused like a stale one (issue 6,
item 8). Signed as Stripe signs (tests/stripe_fixtures.py `sign`); the sandbox
gateway takes the payment, so no localstripe is needed to reach the webhook."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from tests.factories import auth
from tests.integration.test_payments_support import assert_problem, count_rows, create_payment
from tests.stripe_fixtures import sign

pytest_plugins = ["tests.integration.test_payments_support"]


@pytest.fixture
def webhooks(env: pytest.MonkeyPatch) -> None:
    from onetrip.settings import reset_settings

    env.setenv("STRIPE_WEBHOOK_SECRET", "whsec_test_onetrip")
    reset_settings()


def succeeded(payment_id: str, **intent: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "pi_3Q0000000000000000000001",
        "object": "payment_intent",
        "amount": 12000,
        "amount_received": 12000,
        "currency": "cny",
        "status": "succeeded",
        "metadata": {"payment_id": payment_id, "department": "PSB"},
    }
    obj.update(intent)
    return {
        "id": f"evt_{time.monotonic_ns()}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": obj},
    }


async def post_event(client: Any, body: bytes, signature: str | None = None) -> Any:
    return await client.post(
        "/webhooks/stripe",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": signature if signature is not None else sign(body),
        },
    )


async def assert_nothing_changed(client: Any, keys: dict[str, str], payment_id: str) -> None:
    current = await client.get(f"/api/v1/payments/{payment_id}", headers=auth(keys["psb"]))
    assert current.json()["status"] == "created", current.text
    assert await count_rows("consumed_events") == 0
    assert await count_rows("ledger_transactions") == 0
    assert await count_rows("outbox_events", "type <> 'payment.created'") == 0


def malformed_events(payment_id: str) -> dict[str, Any]:
    good = succeeded(payment_id)

    def changed(path: str, value: Any) -> dict[str, Any]:
        event = copy.deepcopy(good)
        *parents, last = path.split(".")
        target = event
        for name in parents:
            target = target[name]
        target[last] = value
        return event

    def without(*paths: str) -> dict[str, Any]:
        event = copy.deepcopy(good)
        for path in paths:
            *parents, last = path.split(".")
            target = event
            for name in parents:
                target = target[name]
            del target[last]
        return event

    return {
        "a JSON array": [good],
        "a JSON string": "evt_1",
        "no id": without("id"),
        "an integer id": changed("id", 12345),
        "an empty id": changed("id", ""),
        "no type": without("type"),
        "data null": changed("data", None),
        "data a list": changed("data", [good["data"]["object"]]),
        "no data.object": changed("data", {}),
        "data.object null": changed("data.object", None),
        "data.object a string": changed("data.object", "pi_1"),
        "metadata a list": changed("data.object.metadata", ["payment_id", payment_id]),
        "metadata with a number": changed("data.object.metadata", {"payment_id": 7}),
        "an integer intent id": changed("data.object.id", 42),
        "no intent id": without("data.object.id"),
        "a string amount": changed("data.object.amount", "12000"),
        "a string amount_received": changed("data.object.amount_received", "12000"),
        "a float amount_received": changed("data.object.amount_received", 12000.5),
        "a negative amount_received": changed("data.object.amount_received", -12000),
        "a null amount_received": changed("data.object.amount_received", None),
        "an enormous amount_received": changed("data.object.amount_received", 10**20),
        "a boolean amount_received": changed("data.object.amount_received", True),
        "no amount at all": without("data.object.amount_received", "data.object.amount"),
        "a numeric currency": changed("data.object.currency", 156),
        "a currency that is not one": changed("data.object.currency", "yuan"),
        "no currency": without("data.object.currency"),
        "last_payment_error a string": changed("data.object.last_payment_error", "declined"),
    }


async def test_each_signed_but_malformed_event_is_400_and_changes_nothing(
    app_client: Any, keys: dict[str, str], webhooks: None
) -> None:
    payment = await create_payment(app_client, keys["psb"])
    for why, event in malformed_events(payment["id"]).items():
        response = await post_event(app_client, json.dumps(event).encode())
        assert response.status_code == 400, (why, response.text)
        problem = assert_problem(response, 400)
        assert problem["code"] in ("malformed_json", "malformed_event"), (why, problem)
    await assert_nothing_changed(app_client, keys, payment["id"])


async def test_a_malformed_refund_event_is_400(
    app_client: Any, keys: dict[str, str], webhooks: None
) -> None:
    refund = {"id": "re_1", "object": "refund", "status": "succeeded", "metadata": ["rf_1"]}
    charge = {"id": "ch_1", "object": "charge", "refunds": {"data": "re_1"}}
    for kind, obj in (("refund.updated", refund), ("charge.refunded", charge)):
        event = {"id": f"evt_{kind}", "type": kind, "data": {"object": obj}}
        response = await post_event(app_client, json.dumps(event).encode())
        assert_problem(response, 400)
    assert await count_rows("consumed_events") == 0


async def test_events_we_do_not_act_on_are_read_leniently(
    app_client: Any, keys: dict[str, str], webhooks: None
) -> None:
    """Stripe sends many object types; one we ignore is acknowledged whatever its
    fields hold (a 400 would make Stripe retry it for days)."""
    event = {
        "id": "evt_payout",
        "type": "payout.paid",
        "data": {"object": {"id": "po_1", "metadata": [], "amount": "x", "status": 3}},
    }
    response = await post_event(app_client, json.dumps(event).encode())
    assert response.status_code == 200, response.text
    assert response.json() == {"received": "evt_payout", "outcome": "ignored"}


async def test_a_well_formed_event_for_an_unknown_payment_is_acknowledged(
    app_client: Any, keys: dict[str, str], webhooks: None
) -> None:
    """The control: the same signing, a well-formed body, is accepted."""
    response = await post_event(app_client, json.dumps(succeeded("pay_unknown")).encode())
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "unknown_payment"


@pytest.mark.parametrize("minutes", [6, 60 * 24 * 365])
async def test_a_signature_timestamp_in_the_future_is_refused_like_a_stale_one(
    app_client: Any, keys: dict[str, str], webhooks: None, minutes: int
) -> None:
    payment = await create_payment(app_client, keys["psb"])
    body = json.dumps(succeeded(payment["id"])).encode()
    future = sign(body, timestamp=int(time.time()) + minutes * 60)
    response = await post_event(app_client, body, future)
    assert_problem(response, 400, "invalid_signature")
    await assert_nothing_changed(app_client, keys, payment["id"])


async def test_a_signature_a_little_ahead_of_our_clock_is_accepted(
    app_client: Any, keys: dict[str, str], webhooks: None
) -> None:
    """Clocks drift: within the five-minute tolerance either way is fine."""
    body = json.dumps(succeeded("pay_unknown")).encode()
    response = await post_event(app_client, body, sign(body, timestamp=int(time.time()) + 240))
    assert response.status_code == 200, response.text


async def test_a_signature_header_with_a_timestamp_that_is_not_a_number_is_400(
    app_client: Any, keys: dict[str, str], webhooks: None
) -> None:
    body = json.dumps(succeeded("pay_unknown")).encode()
    for header in ("t=soon,v1=abc", "t=,v1=", "v1=abc", "t=1e99,v1=abc", ",,,", "t=" + "9" * 5000):
        response = await post_event(app_client, body, header)
        assert_problem(response, 400, "invalid_signature")


async def test_a_body_that_is_not_utf8_is_400(
    app_client: Any, keys: dict[str, str], webhooks: None
) -> None:
    body = b'{"id": "evt_\xff"}'
    response = await post_event(app_client, body)
    assert_problem(response, 400)
