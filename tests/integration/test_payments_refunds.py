"""Refunds: partial and full, never more than was paid, even under concurrent requests."""

from __future__ import annotations

import asyncio

from tests.factories import auth
from tests.integration.test_payments_support import (
    assert_problem,
    balances,
    count_rows,
    create_payment,
    idem,
    paid_payment,
)

pytest_plugins = ["tests.integration.test_payments_support"]


async def refund(client, key: str, payment_id: str, amount: int, reason: str = "申请人撤回申请"):  # type: ignore[no-untyped-def]
    return await client.post(
        f"/api/v1/payments/{payment_id}/refunds",
        json={"amount": amount, "reason": reason},
        headers=auth(key, idem("rf")),
    )


async def current(client, key: str, payment_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return (await client.get(f"/api/v1/payments/{payment_id}", headers=auth(key))).json()


async def test_a_paid_payment_starts_with_no_refund(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    assert payment["refund_status"] == "none" and payment["amount_refunded"] == 0


async def test_partial_then_full_refund_moves_refund_status_and_sums_amount_refunded(
    app_client, keys
):
    payment = await paid_payment(app_client, keys["psb"])
    first = await refund(app_client, keys["psb"], payment["id"], 5000)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["id"].startswith("rf_") and body["payment_id"] == payment["id"]
    assert body["amount"] == 5000 and body["status"] == "succeeded"
    after_first = await current(app_client, keys["psb"], payment["id"])
    assert (after_first["refund_status"], after_first["amount_refunded"]) == ("partial", 5000)

    second = await refund(app_client, keys["psb"], payment["id"], 7000, "不予受理，全额退费")
    assert second.status_code == 201, second.text
    after_second = await current(app_client, keys["psb"], payment["id"])
    assert (after_second["refund_status"], after_second["amount_refunded"]) == ("full", 12000)
    assert after_second["status"] == "succeeded"

    listed = await app_client.get(
        f"/api/v1/payments/{payment['id']}/refunds", headers=auth(keys["psb"])
    )
    assert [r["amount"] for r in listed.json()["data"]] == [5000, 7000]
    books = await balances(app_client, keys["finance"])
    assert books["dept:PSB:fees_payable"] == 0
    assert books["platform:sandbox_clearing"] == 0


async def test_refund_above_what_is_left_is_409_refund_exceeds_available(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    assert (await refund(app_client, keys["psb"], payment["id"], 10000)).status_code == 201
    response = await refund(app_client, keys["psb"], payment["id"], 2001)
    body = assert_problem(response, 409, "refund_exceeds_available")
    assert body["available"] == 2000
    assert await count_rows("refunds") == 1
    assert (await current(app_client, keys["psb"], payment["id"]))["amount_refunded"] == 10000


async def test_refund_of_more_than_the_payment_is_409(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    response = await refund(app_client, keys["psb"], payment["id"], 12001)
    assert_problem(response, 409, "refund_exceeds_available")
    assert await count_rows("refunds") == 0


async def test_refund_of_an_unpaid_payment_is_409(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await refund(app_client, keys["psb"], payment["id"], 1000)
    assert_problem(response, 409, "payment_not_refundable")
    assert await count_rows("refunds") == 0
    assert await count_rows("outbox_events", "type LIKE 'refund.%'") == 0


async def test_refund_of_a_cancelled_payment_is_409(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await app_client.post(f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"]))
    response = await refund(app_client, keys["psb"], payment["id"], 1000)
    assert_problem(response, 409, "payment_not_refundable")


async def test_refund_of_zero_or_a_negative_amount_is_a_validation_error(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    for amount in (0, -500):
        response = await refund(app_client, keys["psb"], payment["id"], amount)
        assert_problem(response, (400, 422), "validation_failed", field="amount")
    assert await count_rows("refunds") == 0


async def test_refund_without_a_reason_is_a_validation_error(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 100},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert_problem(response, (400, 422), "validation_failed", field="reason")


async def test_refund_is_on_the_payment_timeline(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    await refund(app_client, keys["psb"], payment["id"], 3000)
    events = await app_client.get(
        f"/api/v1/payments/{payment['id']}/events", headers=auth(keys["psb"])
    )
    assert [e["type"] for e in events.json()["data"]][-2:] == ["refund.created", "refund.succeeded"]


async def test_partial_refunds_of_a_joint_matter_reverse_each_department_share_exactly(
    app_client, keys
):
    payment = await paid_payment(
        app_client, keys["nrb"], matter_code="real-estate-transfer", reference="BDC-2026-0410"
    )
    for amount in (1, 1, 49999):
        assert (await refund(app_client, keys["nrb"], payment["id"], amount)).status_code == 201
    books = await balances(app_client, keys["finance"])
    assert books["dept:NRB:fees_payable"] == 0
    assert books["dept:HCB:fees_payable"] == 0
    assert books["platform:sandbox_clearing"] == 0


async def test_concurrent_refunds_never_exceed_the_amount_paid(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    thirty_percent = payment["amount"] * 30 // 100  # 3600 of 12000
    responses = await asyncio.gather(
        *(
            refund(app_client, keys["psb"], payment["id"], thirty_percent, f"批量退费 {n}")
            for n in range(10)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [409] * 7, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "refund_exceeds_available")
    after = await current(app_client, keys["psb"], payment["id"])
    assert after["amount_refunded"] == 3 * thirty_percent <= payment["amount"]
    assert after["refund_status"] == "partial"
    assert await count_rows("refunds") == 3
    books = await balances(app_client, keys["finance"])
    assert books["dept:PSB:fees_payable"] == -(payment["amount"] - 3 * thirty_percent)
    assert books["platform:sandbox_clearing"] == payment["amount"] - 3 * thirty_percent


async def test_concurrent_retries_of_one_refund_key_refund_once_and_never_report_exceeded(
    app_client, keys
):
    payment = await paid_payment(app_client, keys["psb"])
    url = f"/api/v1/payments/{payment['id']}/refunds"
    body = {"amount": payment["amount"], "reason": "不予受理，全额退费"}
    responses = await asyncio.gather(
        *(
            app_client.post(url, json=body, headers=auth(keys["psb"], "rf-full-retry"))
            for _ in range(6)
        )
    )
    created = [r for r in responses if r.status_code == 201]
    assert created, [r.text for r in responses]
    assert len({r.json()["id"] for r in created}) == 1
    for response in responses:
        if response.status_code != 201:  # still running when this retry looked
            assert_problem(response, 409, "idempotency_request_in_progress")
    assert await count_rows("refunds") == 1
    replay = await app_client.post(url, json=body, headers=auth(keys["psb"], "rf-full-retry"))
    assert replay.status_code == 201 and replay.json() == created[0].json()


async def test_a_retry_finishes_a_refund_whose_request_crashed_after_reserving_it(app_client, keys):
    """The first request reserved the refund and claimed its key, then died before
    asking the gateway: the client's retry with the same key completes it, once."""
    import json
    from datetime import timedelta

    from sqlalchemy import update

    from onetrip import idempotency
    from onetrip.auth import principal_for_key
    from onetrip.clock import utcnow
    from onetrip.db import unit_of_work
    from payments import service
    from payments.schemas import RefundIn

    payment = await paid_payment(app_client, keys["psb"])
    principal = await principal_for_key(keys["psb"])
    body = {"amount": 3000, "reason": "申请人撤回申请"}
    path = f"/api/v1/payments/{payment['id']}/refunds"

    fingerprint = idempotency.fingerprint("POST", path, json.dumps(body).encode())
    async with unit_of_work() as session:  # what the crashed request had done
        refund = await service.reserve_refund(session, principal, payment["id"], RefundIn(**body))
        assert await idempotency.claim(
            session, principal.key_id, "crashed-1", fingerprint, resource_id=refund.id
        )
    early = await app_client.post(path, json=body, headers=auth(keys["psb"], "crashed-1"))
    assert_problem(early, 409, "idempotency_request_in_progress")

    stalled = utcnow() - timedelta(seconds=service.STALLED_REFUND_SECONDS + 5)
    async with unit_of_work() as session:
        await session.execute(
            update(idempotency.IdempotencyRecord)
            .where(idempotency.IdempotencyRecord.key == "crashed-1")
            .values(created_at=stalled)
        )
    retry = await app_client.post(path, json=body, headers=auth(keys["psb"], "crashed-1"))
    assert retry.status_code == 201, retry.text
    assert retry.json()["id"] == refund.id and retry.json()["status"] == "succeeded"
    again = await app_client.post(path, json=body, headers=auth(keys["psb"], "crashed-1"))
    assert again.json() == retry.json()
    assert await count_rows("refunds") == 1
    assert (await current(app_client, keys["psb"], payment["id"]))["amount_refunded"] == 3000
