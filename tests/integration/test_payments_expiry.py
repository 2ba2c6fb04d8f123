"""Unpaid payments expire at expires_at; an expired payment can no longer be paid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from payments.service import expire_due_payments
from tests.factories import auth
from tests.integration.test_payments_support import (
    count_rows,
    create_payment,
    execute,
    paid_payment,
    pay_with_sandbox,
    token_of,
)

pytest_plugins = ["tests.integration.test_payments_support"]


async def backdate(payment_id: str, minutes: int = 1) -> None:
    await execute(
        "UPDATE payments SET expires_at = :at WHERE id = :id",
        at=datetime.now(UTC) - timedelta(minutes=minutes),
        id=payment_id,
    )


async def current(client, key: str, payment_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return (await client.get(f"/api/v1/payments/{payment_id}", headers=auth(key))).json()


async def test_a_new_payment_expires_in_the_future(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    assert datetime.fromisoformat(payment["expires_at"]) > datetime.fromisoformat(
        payment["created_at"]
    )


async def test_created_payment_past_expires_at_is_expired_by_the_sweep(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await backdate(payment["id"])
    assert await expire_due_payments() == 1
    assert (await current(app_client, keys["psb"], payment["id"]))["status"] == "expired"
    events = await app_client.get(
        f"/api/v1/payments/{payment['id']}/events", headers=auth(keys["psb"])
    )
    assert [e["type"] for e in events.json()["data"]] == ["payment.created", "payment.expired"]


async def test_started_payment_past_expires_at_is_expired_by_the_sweep(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await app_client.get(f"/pay/{token_of(payment)}")
    await backdate(payment["id"])
    await expire_due_payments()
    assert (await current(app_client, keys["psb"], payment["id"]))["status"] == "expired"
    assert await count_rows("outbox_events", "type = 'payment.expired'") == 1


async def test_the_sweep_leaves_payments_not_yet_due_and_finished_ones_alone(app_client, keys):
    waiting = await create_payment(app_client, keys["psb"], reference="CRJ-2026-500001")
    paid = await paid_payment(app_client, keys["psb"], reference="CRJ-2026-500002")
    await backdate(paid["id"])
    assert await expire_due_payments() == 0
    assert (await current(app_client, keys["psb"], waiting["id"]))["status"] == "created"
    assert (await current(app_client, keys["psb"], paid["id"]))["status"] == "succeeded"


async def test_running_the_sweep_twice_expires_once(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await backdate(payment["id"])
    await expire_due_payments()
    assert await expire_due_payments() == 0
    assert await count_rows("outbox_events", "type = 'payment.expired'") == 1


async def test_sandbox_page_refuses_to_take_an_expired_payment(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await app_client.get(f"/pay/{token_of(payment)}")
    await backdate(payment["id"])
    await expire_due_payments()
    await pay_with_sandbox(app_client, payment)
    assert (await current(app_client, keys["psb"], payment["id"]))["status"] == "expired"
    assert await count_rows("ledger_transactions") == 0


async def test_sandbox_page_refuses_a_payment_past_expires_at_before_the_sweep_runs(
    app_client, keys
):
    payment = await create_payment(app_client, keys["psb"])
    await app_client.get(f"/pay/{token_of(payment)}")
    await backdate(payment["id"])
    await pay_with_sandbox(app_client, payment)
    assert (await current(app_client, keys["psb"], payment["id"]))["status"] == "expired"
    assert await count_rows("ledger_transactions") == 0


async def test_an_expired_payment_cannot_be_cancelled_or_refunded(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await backdate(payment["id"])
    await expire_due_payments()
    cancel = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"])
    )
    assert cancel.status_code == 409
    refund = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 100, "reason": "测试"},
        headers=auth(keys["psb"], "rf-expired"),
    )
    assert refund.status_code == 409


async def test_opening_the_pay_page_past_expires_at_expires_the_payment(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await backdate(payment["id"])
    page = await app_client.get(f"/pay/{token_of(payment)}")
    assert page.status_code == 200
    assert "该缴费已过期" in page.text
    assert (await current(app_client, keys["psb"], payment["id"]))["status"] == "expired"
