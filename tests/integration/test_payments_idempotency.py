"""Idempotency-Key on every POST that creates or moves money (API.md, Conventions)."""

from __future__ import annotations

import asyncio
import json

from tests.factories import auth, payment_body
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    paid_payment,
)

pytest_plugins = ["tests.integration.test_payments_support"]

# --- creating a payment -----------------------------------------------------------------


async def test_replayed_payment_returns_the_first_201_and_body_and_creates_one_payment(
    app_client, keys
):
    body = payment_body(reference="CRJ-2026-000101")
    first = await app_client.post(
        "/api/v1/payments", json=body, headers=auth(keys["psb"], "crj-101")
    )
    second = await app_client.post(
        "/api/v1/payments", json=body, headers=auth(keys["psb"], "crj-101")
    )
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert await count_rows("payments") == 1
    assert await count_rows("outbox_events", "type = 'payment.created'") == 1


async def test_replay_with_the_same_json_serialised_differently_is_the_same_request(
    app_client, keys
):
    body = payment_body(reference="CRJ-2026-000102")
    compact = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    spaced = json.dumps(dict(reversed(list(body.items()))), ensure_ascii=True, indent=2).encode()
    headers = {**auth(keys["psb"], "crj-102"), "Content-Type": "application/json"}
    first = await app_client.post("/api/v1/payments", content=compact, headers=headers)
    second = await app_client.post("/api/v1/payments", content=spaced, headers=headers)
    assert first.status_code == second.status_code == 201, second.text
    assert second.json()["id"] == first.json()["id"]
    assert await count_rows("payments") == 1


async def test_same_key_with_a_different_body_is_422_idempotency_key_reused(app_client, keys):
    first = await create_payment(app_client, keys["psb"], "crj-103", reference="CRJ-2026-000103")
    reused = await app_client.post(
        "/api/v1/payments",
        json=payment_body(reference="CRJ-2026-000999"),
        headers=auth(keys["psb"], "crj-103"),
    )
    assert_problem(reused, 422, "idempotency_key_reused")
    assert await count_rows("payments") == 1
    again = await app_client.get(f"/api/v1/payments/{first['id']}", headers=auth(keys["psb"]))
    assert again.json()["reference"] == "CRJ-2026-000103"


async def test_payment_without_idempotency_key_is_400_idempotency_key_required(app_client, keys):
    response = await app_client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(keys["psb"])
    )
    body = assert_problem(response, 400, "idempotency_key_required")
    assert "Idempotency-Key" in body["detail"]
    assert await count_rows("payments") == 0
    assert await count_rows("outbox_events") == 0


async def test_blank_idempotency_key_is_400_idempotency_key_required(app_client, keys):
    headers = {**auth(keys["psb"]), "Idempotency-Key": "   "}
    response = await app_client.post("/api/v1/payments", json=payment_body(), headers=headers)
    assert_problem(response, 400, "idempotency_key_required")
    assert await count_rows("payments") == 0


async def test_idempotency_key_over_255_characters_is_400(app_client, keys):
    response = await app_client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(keys["psb"], "k" * 256)
    )
    assert_problem(response, 400, "idempotency_key_invalid")
    assert await count_rows("payments") == 0


async def test_idempotency_keys_are_scoped_per_api_key(app_client, keys):
    online = await app_client.post(
        "/api/v1/payments",
        json=payment_body(reference="CRJ-2026-000104"),
        headers=auth(keys["psb"], "order-1"),
    )
    # another reference: one reference has one payment (test_duplicate_reference.py)
    window = await app_client.post(
        "/api/v1/payments",
        json=payment_body(reference="CRJ-2026-000104-W"),
        headers=auth(keys["psb_window"], "order-1"),
    )
    assert online.status_code == window.status_code == 201
    assert online.json()["id"] != window.json()["id"]
    assert await count_rows("payments") == 2


async def test_concurrent_duplicate_payments_with_one_key_share_one_payment(app_client, keys):
    body = payment_body(reference="CRJ-2026-000105")
    responses = await asyncio.gather(
        *(
            app_client.post(
                "/api/v1/payments", json=body, headers=auth(keys["psb"], "crj-105-burst")
            )
            for _ in range(10)
        )
    )
    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert all(r.json() == responses[0].json() for r in responses)
    assert await count_rows("payments") == 1
    assert await count_rows("outbox_events", "type = 'payment.created'") == 1


async def test_a_payment_rejected_by_validation_does_not_burn_its_key(app_client, keys):
    rejected = await app_client.post(
        "/api/v1/payments",
        json=payment_body(matter_code="no-such-matter"),
        headers=auth(keys["psb"], "crj-106"),
    )
    assert_problem(rejected, 422, "unknown_matter")
    fixed = await app_client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(keys["psb"], "crj-106")
    )
    assert fixed.status_code == 201, fixed.text


# --- cancel -----------------------------------------------------------------------------


async def test_replayed_cancel_returns_the_first_response(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    url = f"/api/v1/payments/{payment['id']}/cancel"
    first = await app_client.post(url, headers=auth(keys["psb"], "cancel-1"))
    second = await app_client.post(url, headers=auth(keys["psb"], "cancel-1"))
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert second.json() == first.json()
    assert await count_rows("outbox_events", "type = 'payment.cancelled'") == 1


async def test_cancel_key_reused_for_another_payment_is_422(app_client, keys):
    one = await create_payment(app_client, keys["psb"], reference="CRJ-2026-000201")
    other = await create_payment(app_client, keys["psb"], reference="CRJ-2026-000202")
    assert (
        await app_client.post(
            f"/api/v1/payments/{one['id']}/cancel", headers=auth(keys["psb"], "c-2")
        )
    ).status_code == 200
    reused = await app_client.post(
        f"/api/v1/payments/{other['id']}/cancel", headers=auth(keys["psb"], "c-2")
    )
    assert_problem(reused, 422, "idempotency_key_reused")
    current = await app_client.get(f"/api/v1/payments/{other['id']}", headers=auth(keys["psb"]))
    assert current.json()["status"] == "created"


# --- counter collection -----------------------------------------------------------------


async def test_replayed_counter_collection_returns_the_first_response_and_books_once(
    app_client, keys
):
    payment = await create_payment(app_client, keys["psb"])
    url = f"/api/v1/payments/{payment['id']}/counter"
    cash = {"method": "cash", "operator": "窗口 3 号 李娜", "receipt_no": "SJ-2026-0042"}
    first = await app_client.post(url, json=cash, headers=auth(keys["psb"], "counter-1"))
    second = await app_client.post(url, json=cash, headers=auth(keys["psb"], "counter-1"))
    assert first.status_code == second.status_code == 200, second.text
    assert second.json() == first.json()
    assert first.json()["status"] == "succeeded" and first.json()["gateway"] == "counter"
    assert await count_rows("ledger_transactions") == 1


async def test_counter_collection_key_reused_with_another_body_is_422(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    url = f"/api/v1/payments/{payment['id']}/counter"
    await app_client.post(url, json={"method": "cash"}, headers=auth(keys["psb"], "counter-2"))
    reused = await app_client.post(
        url, json={"method": "pos"}, headers=auth(keys["psb"], "counter-2")
    )
    assert_problem(reused, 422, "idempotency_key_reused")


async def test_counter_collection_without_idempotency_key_is_400(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/counter",
        json={"method": "cash"},
        headers=auth(keys["psb"]),
    )
    assert_problem(response, 400, "idempotency_key_required")
    current = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb"]))
    assert current.json()["status"] == "created"


# --- refunds ----------------------------------------------------------------------------


async def test_replayed_refund_returns_the_first_201_and_refunds_once(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    url = f"/api/v1/payments/{payment['id']}/refunds"
    body = {"amount": 5000, "reason": "申请人撤回申请"}
    first = await app_client.post(url, json=body, headers=auth(keys["psb"], "rf-1"))
    second = await app_client.post(url, json=body, headers=auth(keys["psb"], "rf-1"))
    assert first.status_code == second.status_code == 201, second.text
    assert second.json() == first.json()
    assert await count_rows("refunds") == 1
    current = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb"]))
    assert current.json()["amount_refunded"] == 5000


async def test_refund_key_reused_with_another_amount_is_422(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    url = f"/api/v1/payments/{payment['id']}/refunds"
    await app_client.post(
        url, json={"amount": 5000, "reason": "申请人撤回申请"}, headers=auth(keys["psb"], "rf-2")
    )
    reused = await app_client.post(
        url, json={"amount": 6000, "reason": "申请人撤回申请"}, headers=auth(keys["psb"], "rf-2")
    )
    assert_problem(reused, 422, "idempotency_key_reused")
    assert await count_rows("refunds") == 1


async def test_refund_without_idempotency_key_is_400(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 5000, "reason": "申请人撤回申请"},
        headers=auth(keys["psb"]),
    )
    assert_problem(response, 400, "idempotency_key_required")
    assert await count_rows("refunds") == 0


async def test_refund_key_fresh_for_an_api_key_even_if_another_key_used_it(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    url = f"/api/v1/payments/{payment['id']}/refunds"
    body = {"amount": 1000, "reason": "重复缴费"}
    one = await app_client.post(url, json=body, headers=auth(keys["psb"], "rf-3"))
    two = await app_client.post(url, json=body, headers=auth(keys["psb_window"], "rf-3"))
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]
    assert await count_rows("refunds") == 2
