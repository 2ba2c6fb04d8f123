"""The data of the events payments emits (payments/events.py), field by field and in
order: they are what consumers read now and what department webhooks will carry."""

from __future__ import annotations

from typing import Any

from tests.factories import auth
from tests.integration.test_payments_support import create_payment, idem, pay_with_sandbox

pytest_plugins = ["tests.integration.test_payments_support"]


async def timeline(client: Any, key: str, payment_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/payments/{payment_id}/events", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()["data"]


def payment_fields(payment: dict[str, Any], status: str, gateway: str | None) -> list[Any]:
    return [
        ("payment_id", payment["id"]),
        ("department", "PSB"),
        ("matter_code", payment["matter_code"]),
        ("reference", payment["reference"]),
        ("amount", payment["amount"]),
        ("currency", "CNY"),
        ("status", status),
        ("gateway", gateway),
    ]


async def test_payment_events_carry_the_payment_and_only_what_applies(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await pay_with_sandbox(app_client, payment)
    created, started, succeeded = await timeline(app_client, keys["psb"], payment["id"])
    assert created["type"] == "payment.created"
    assert list(created["data"].items()) == payment_fields(payment, "created", None)
    assert started["type"] == "payment.started"
    assert list(started["data"].items()) == [
        *payment_fields(payment, "started", "sandbox"),
        ("previous_status", "created"),
    ]
    assert succeeded["type"] == "payment.succeeded"
    assert list(succeeded["data"].items()) == [
        *payment_fields(payment, "succeeded", "sandbox"),
        ("previous_status", "started"),
        ("card", "Visa — succeeds"),
    ]


async def test_a_counter_collection_says_how_it_was_taken(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/counter",
        json={"method": "cash", "receipt_no": "R-1"},
        headers=auth(keys["psb"], idem("ctr")),
    )
    assert response.status_code == 200, response.text
    succeeded = (await timeline(app_client, keys["psb"], payment["id"]))[-1]
    assert list(succeeded["data"].items()) == [
        *payment_fields(payment, "succeeded", "counter"),
        ("previous_status", "created"),
        ("counter", {"method": "cash", "operator": None, "receipt_no": "R-1"}),
    ]


async def test_refund_events_carry_the_refund_and_once_settled_the_totals(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await pay_with_sandbox(app_client, payment)
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 3000, "reason": "申请人撤回申请"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert response.status_code == 201, response.text
    refund_id = response.json()["id"]
    created, settled = (await timeline(app_client, keys["psb"], payment["id"]))[-2:]
    base = [
        ("refund_id", refund_id),
        ("payment_id", payment["id"]),
        ("amount", 3000),
        ("currency", "CNY"),
    ]
    assert created["type"] == "refund.created" and list(created["data"].items()) == base
    assert settled["type"] == "refund.succeeded"
    assert list(settled["data"].items()) == [
        *base,
        ("amount_refunded", 3000),
        ("refund_status", "partial"),
        ("failure_reason", None),
    ]
