"""Reading verified Stripe events into the typed updates payments acts on
(payments.gateways.stripe.read_event). Signatures are checked end to end in
tests/integration/test_stripe_webhooks.py."""

from __future__ import annotations

from typing import Any

import pytest

from onetrip.errors import BadRequest
from payments.gateways.stripe import IntentUpdate, RefundUpdate, read_event


def event(kind: str, obj: dict[str, Any], event_id: str = "evt_1") -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}


def test_a_succeeded_intent_names_our_payment_and_what_was_taken():
    read = read_event(
        event(
            "payment_intent.succeeded",
            {
                "id": "pi_1",
                "object": "payment_intent",
                "amount": 12000,
                "amount_received": 11900,
                "currency": "cny",
                "metadata": {"payment_id": "pay_1", "department": "PSB"},
                "status": "succeeded",
                "livemode": False,  # fields we do not read are ignored
            },
        )
    )
    assert read.id == "evt_1" and read.refunds == () and not read.about_refunds
    assert read.intent == IntentUpdate(
        kind="payment_intent.succeeded",
        move="succeed",
        intent_id="pi_1",
        payment_id="pay_1",
        received=11900,
        currency="CNY",
        failure=None,
    )


def test_without_amount_received_the_amount_counts():
    read = read_event(event("payment_intent.succeeded", {"id": "pi_1", "amount": 500}))
    assert read.intent is not None
    assert (read.intent.received, read.intent.payment_id) == (500, None)


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (
            {"message": "Your card was declined.", "code": "card_declined"},
            "Your card was declined.",
        ),
        ({"code": "expired_card"}, "expired_card"),
        (None, "card declined"),
    ],
)
def test_a_failed_intent_says_why(error, failure):
    read = read_event(
        event("payment_intent.payment_failed", {"id": "pi_2", "last_payment_error": error})
    )
    assert read.intent is not None
    assert (read.intent.move, read.intent.failure) == ("fail", failure)


def test_an_intent_event_we_do_not_act_on_has_no_move():
    read = read_event(event("payment_intent.created", {"id": "pi_3"}))
    assert read.intent is not None and read.intent.move is None


def test_a_charge_event_carries_each_of_our_settled_refunds():
    charge = {
        "id": "ch_1",
        "object": "charge",
        "refunds": {
            "object": "list",
            "data": [
                {
                    "id": "re_1",
                    "object": "refund",
                    "status": "succeeded",
                    "metadata": {"refund_id": "rf_1"},
                },
                {
                    "id": "re_2",
                    "object": "refund",
                    "status": "canceled",
                    "metadata": {"refund_id": "rf_2"},
                },
                {
                    "id": "re_3",
                    "object": "refund",
                    "status": "pending",
                    "metadata": {"refund_id": "rf_3"},
                },
                {"id": "re_4", "object": "refund", "status": "succeeded", "metadata": {}},
            ],
        },
    }
    read = read_event(event("charge.refunded", charge))
    assert read.about_refunds and read.intent is None
    assert read.refunds == (
        RefundUpdate(refund_id="rf_1", status="succeeded", gateway_ref="re_1"),
        RefundUpdate(refund_id="rf_2", status="failed", gateway_ref="re_2"),
    )


def test_a_refund_event_is_about_that_refund():
    refund = {
        "id": "re_9",
        "object": "refund",
        "status": "failed",
        "metadata": {"refund_id": "rf_9"},
    }
    read = read_event(event("refund.failed", refund))
    assert read.refunds == (RefundUpdate(refund_id="rf_9", status="failed", gateway_ref="re_9"),)


def test_other_events_are_neither_intents_nor_refunds():
    read = read_event(event("customer.created", {"id": "cus_1"}))
    assert (read.intent, read.refunds, read.about_refunds) == (None, (), False)


def test_a_body_without_an_event_shape_is_a_bad_request():
    with pytest.raises(BadRequest) as bad:
        read_event({"type": "payment_intent.succeeded"})  # no id
    assert bad.value.code == "malformed_json"
    with pytest.raises(BadRequest):
        read_event(event("payment_intent.succeeded", {"id": "pi_1", "amount": "a lot"}))
