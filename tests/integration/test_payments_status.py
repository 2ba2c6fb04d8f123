"""Cancel (only before success) and counter collection, through the API."""

from __future__ import annotations

from tests.factories import auth
from tests.integration.test_payments_support import (
    assert_problem,
    balances,
    count_rows,
    create_payment,
    idem,
    paid_payment,
    pay_with_sandbox,
    token_of,
)

pytest_plugins = ["tests.integration.test_payments_support"]


async def status_of(client, key: str, payment_id: str) -> str:  # type: ignore[no-untyped-def]
    return (await client.get(f"/api/v1/payments/{payment_id}", headers=auth(key))).json()["status"]


async def event_types(client, key: str, payment_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    response = await client.get(f"/api/v1/payments/{payment_id}/events", headers=auth(key))
    return [e["type"] for e in response.json()["data"]]


# --- cancel -----------------------------------------------------------------------------


async def test_cancelling_a_created_payment_makes_it_cancelled(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert await event_types(app_client, keys["psb"], payment["id"]) == [
        "payment.created",
        "payment.cancelled",
    ]


async def test_cancelling_a_started_payment_makes_it_cancelled(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    assert (await app_client.get(f"/pay/{token_of(payment)}")).status_code == 200
    assert await status_of(app_client, keys["psb"], payment["id"]) == "started"
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"])
    )
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


async def test_cancelling_a_succeeded_payment_is_409_and_changes_nothing(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"])
    )
    assert_problem(response, 409, "payment_already_succeeded")
    assert await status_of(app_client, keys["psb"], payment["id"]) == "succeeded"
    assert "payment.cancelled" not in await event_types(app_client, keys["psb"], payment["id"])


async def test_cancelling_twice_is_200_unchanged_and_records_one_cancellation(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    url = f"/api/v1/payments/{payment['id']}/cancel"
    first = await app_client.post(url, headers=auth(keys["psb"]))
    second = await app_client.post(url, headers=auth(keys["psb"]))
    assert first.status_code == second.status_code == 200
    assert second.json()["status"] == "cancelled"
    assert second.json()["updated_at"] == first.json()["updated_at"]
    assert await count_rows("outbox_events", "type = 'payment.cancelled'") == 1


async def test_cancelling_with_a_new_key_after_a_cancel_is_200_unchanged(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    url = f"/api/v1/payments/{payment['id']}/cancel"
    assert (await app_client.post(url, headers=auth(keys["psb"], idem("c")))).status_code == 200
    again = await app_client.post(url, headers=auth(keys["psb"], idem("c")))
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert await count_rows("outbox_events", "type = 'payment.cancelled'") == 1


async def test_a_declined_payment_can_be_cancelled_so_the_card_is_not_retried(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await pay_with_sandbox(app_client, payment, card="4000000000000002")
    assert await status_of(app_client, keys["psb"], payment["id"]) == "failed"
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"


async def test_a_cancelled_payment_cannot_be_paid_on_the_sandbox_page(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await app_client.post(f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"]))
    await pay_with_sandbox(app_client, payment)
    assert await status_of(app_client, keys["psb"], payment["id"]) == "cancelled"
    assert await count_rows("ledger_transactions") == 0


# --- counter collection -----------------------------------------------------------------


async def collect_cash(client, key: str, payment_id: str):  # type: ignore[no-untyped-def]
    return await client.post(
        f"/api/v1/payments/{payment_id}/counter",
        json={
            "method": "cash",
            "operator": "政务服务中心 3 号窗口 王芳",
            "receipt_no": "ZJ-2026-0315-007",
        },
        headers=auth(key, idem("counter")),
    )


async def test_counter_collection_succeeds_and_books_to_counter_cash(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await collect_cash(app_client, keys["psb"], payment["id"])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded" and response.json()["gateway"] == "counter"
    books = await balances(app_client, keys["finance"])
    assert books["platform:counter_cash"] == 12000
    assert books["dept:PSB:fees_payable"] == -12000
    assert books.get("platform:sandbox_clearing", 0) == 0


async def test_counter_refund_reverses_the_counter_cash_booking(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await collect_cash(app_client, keys["psb"], payment["id"])
    refund = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 12000, "reason": "材料不全，不予受理，退还现金"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["status"] == "succeeded"
    books = await balances(app_client, keys["finance"])
    assert books["platform:counter_cash"] == 0
    assert books["dept:PSB:fees_payable"] == 0
    current = (
        await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb"]))
    ).json()
    assert current["refund_status"] == "full" and current["amount_refunded"] == 12000


async def test_counter_collection_of_a_succeeded_payment_is_409(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    response = await collect_cash(app_client, keys["psb"], payment["id"])
    assert_problem(response, 409, "payment_not_collectable")
    assert await count_rows("ledger_transactions") == 1


async def test_counter_collection_of_a_payment_started_online_is_409(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await app_client.get(f"/pay/{token_of(payment)}")
    response = await collect_cash(app_client, keys["psb"], payment["id"])
    assert_problem(response, 409, "payment_not_collectable")
    assert await status_of(app_client, keys["psb"], payment["id"]) == "started"


async def test_counter_collection_of_a_cancelled_payment_is_409(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await app_client.post(f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"]))
    response = await collect_cash(app_client, keys["psb"], payment["id"])
    assert_problem(response, 409, "payment_not_collectable")


async def test_counter_collection_with_an_unknown_method_is_a_validation_error(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/counter",
        json={"method": "alipay"},
        headers=auth(keys["psb"], idem("counter")),
    )
    assert_problem(response, (400, 422), "validation_failed", field="method")
    assert await status_of(app_client, keys["psb"], payment["id"]) == "created"
