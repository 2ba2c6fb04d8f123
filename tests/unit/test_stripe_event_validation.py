"""Stripe events are read strictly where we act on them (payments.gateways.stripe):
wrong types are a BadRequest before anything is looked up; signatures from the
future are refused like stale ones."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from onetrip.errors import BadRequest
from onetrip.settings import reset_settings
from payments.gateways.stripe import read_event, verified_event
from tests.stripe_fixtures import WEBHOOK_SECRET, sign


def intent_event(kind: str = "payment_intent.succeeded", **obj: Any) -> dict[str, Any]:
    intent = {
        "id": "pi_1",
        "amount": 12000,
        "amount_received": 12000,
        "currency": "cny",
        "metadata": {"payment_id": "pay_1"},
    }
    intent.update(obj)
    return {"id": "evt_1", "type": kind, "data": {"object": intent}}


@pytest.mark.parametrize(
    "raw",
    [
        [],
        "evt_1",
        None,
        {"id": 1, "type": "customer.created", "data": {"object": {}}},
        {"id": "", "type": "customer.created", "data": {"object": {}}},
        {"id": "evt_1", "data": {"object": {}}},
        {"id": "evt_1", "type": "customer.created", "data": None},
        {"id": "evt_1", "type": "customer.created", "data": {"object": None}},
        {"id": "evt_1", "type": "customer.created", "data": {"object": []}},
    ],
)
def test_a_body_without_an_events_shape_is_malformed_json(raw):
    with pytest.raises(BadRequest) as refused:
        read_event(raw)
    assert refused.value.code == "malformed_json"


@pytest.mark.parametrize(
    "change",
    [
        {"id": 42},
        {"amount": "12000"},
        {"amount_received": "12000"},
        {"amount_received": 12000.0},
        {"amount_received": True},
        {"amount_received": -1},
        {"amount_received": 10**13},
        {"currency": 156},
        {"currency": "人民币"},
        {"metadata": ["payment_id"]},
        {"metadata": {"payment_id": 1}},
        {"last_payment_error": "declined"},
    ],
    ids=lambda change: next(iter(change)) + "=" + repr(next(iter(change.values())))[:12],
)
def test_a_payment_intent_with_a_field_of_the_wrong_type_is_malformed(change):
    with pytest.raises(BadRequest) as refused:
        read_event(intent_event(**change))
    assert refused.value.code == "malformed_event"


@pytest.mark.parametrize(
    "obj",
    [{"amount_received": None}, {"amount_received": None, "amount": None}],
)
def test_a_success_that_does_not_say_what_was_received_is_malformed(obj):
    with pytest.raises(BadRequest) as refused:
        read_event(intent_event(**obj))
    assert refused.value.code == "malformed_event"


def test_a_failure_needs_no_amount():
    read = read_event(intent_event("payment_intent.payment_failed", amount_received=None))
    assert read.intent is not None and read.intent.move == "fail"


def test_refund_objects_are_read_strictly():
    for obj in (
        {"id": "re_1", "object": "refund", "status": "succeeded", "metadata": ["x"]},
        {"id": 7, "object": "refund", "status": "succeeded"},
        {"id": "ch_1", "object": "charge", "refunds": {"data": [{"id": None}]}},
        {"id": "ch_1", "object": "charge", "refunds": []},
    ):
        with pytest.raises(BadRequest) as refused:
            read_event({"id": "evt_1", "type": "charge.refunded", "data": {"object": obj}})
        assert refused.value.code == "malformed_event"


def test_the_object_of_an_event_we_ignore_is_not_read():
    read = read_event(
        {"id": "evt_1", "type": "payout.paid", "data": {"object": {"amount": "x", "id": 3}}}
    )
    assert (read.intent, read.refunds, read.about_refunds) == (None, (), False)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    reset_settings()
    yield WEBHOOK_SECRET
    reset_settings()


BODY = json.dumps(intent_event()).encode()


@pytest.mark.parametrize("ahead", [301, 3600, 10**9])
def test_a_signature_from_the_future_is_refused(secret, ahead):
    with pytest.raises(BadRequest) as refused:
        verified_event(BODY, sign(BODY, timestamp=int(time.time()) + ahead))
    assert refused.value.code == "invalid_signature"


@pytest.mark.parametrize("offset", [-290, 0, 290])
def test_a_signature_within_five_minutes_either_way_is_accepted(secret, offset):
    event = verified_event(BODY, sign(BODY, timestamp=int(time.time()) + offset))
    assert event.id == "evt_1" and event.intent is not None


def test_a_deep_signed_body_is_refused_before_it_is_decoded(secret):
    body = b"[" * 100_000
    with pytest.raises(BadRequest) as refused:
        verified_event(body, sign(body))
    assert refused.value.code == "json_too_deep"


def test_a_signed_body_that_is_not_json_is_malformed(secret):
    for body in (b"{", b"\xff\xfe", b"not json"):
        with pytest.raises(BadRequest) as refused:
            verified_event(body, sign(body))
        assert refused.value.code == "malformed_json"
