"""One payment per business reference (issue 7, item 5): a department's second payment
for a reference that a payment still holds (created, started, succeeded, needs_review)
is a 409 `duplicate_reference` naming it; after a failure, a cancel or an expiry a new
one is fine. Race-safe on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from onetrip.auth import principal_for_key
from onetrip.errors import DuplicateReference
from onetrip.idempotency import fingerprint
from payments import service
from payments.schemas import PaymentIn
from tests.factories import auth, payment_body
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    execute,
    idem,
    paid_payment,
)

pytest_plugins = ["tests.integration.test_payments_support"]

REFERENCE = "CRJ-2026-000777"


async def post(client, key: str, idempotency_key: str, reference: str = REFERENCE, **extra):  # type: ignore[no-untyped-def]
    return await client.post(
        "/api/v1/payments",
        json=payment_body(reference=reference, **extra),
        headers=auth(key, idempotency_key),
    )


def assert_duplicate_of(response, payment_id: str) -> None:  # type: ignore[no-untyped-def]
    body = assert_problem(response, 409, "duplicate_reference")
    assert body["existing_payment_id"] == payment_id, body
    assert payment_id in body["detail"], body
    assert REFERENCE in body["detail"], body


async def test_a_second_payment_for_a_reference_awaiting_payment_is_409(app_client, keys):
    first = await create_payment(app_client, keys["psb"], reference=REFERENCE)
    response = await post(app_client, keys["psb"], idem("second"))
    assert_duplicate_of(response, first["id"])
    assert await count_rows("payments") == 1
    assert await count_rows("outbox_events", "type = 'payment.created'") == 1


async def test_another_key_of_the_same_department_is_refused_too(app_client, keys):
    first = await create_payment(app_client, keys["psb"], reference=REFERENCE)
    response = await post(app_client, keys["psb_window"], idem("window"))
    assert_duplicate_of(response, first["id"])


async def test_a_paid_reference_cannot_be_charged_again(app_client, keys):
    first = await paid_payment(app_client, keys["psb"], reference=REFERENCE)
    response = await post(app_client, keys["psb"], idem("again"))
    assert_duplicate_of(response, first["id"])
    assert response.json()["existing_payment_status"] == "succeeded"


@pytest.mark.parametrize("status", ["started", "needs_review"])
async def test_a_reference_held_in_other_live_states_is_refused(app_client, keys, status):
    first = await create_payment(app_client, keys["psb"], reference=REFERENCE)
    await execute(
        "UPDATE payments SET status = :status WHERE id = :id", status=status, id=first["id"]
    )
    response = await post(app_client, keys["psb"], idem("held"))
    assert_duplicate_of(response, first["id"])


@pytest.mark.parametrize("status", ["failed", "expired"])
async def test_a_new_payment_is_fine_after_the_earlier_one_ended_unpaid(app_client, keys, status):
    first = await create_payment(app_client, keys["psb"], reference=REFERENCE)
    await execute(
        "UPDATE payments SET status = :status WHERE id = :id", status=status, id=first["id"]
    )
    response = await post(app_client, keys["psb"], idem("after"))
    assert response.status_code == 201, response.text
    assert response.json()["id"] != first["id"]
    assert await count_rows("payments", "reference = :r", r=REFERENCE) == 2


async def test_a_new_payment_is_fine_after_the_department_cancelled_the_first(app_client, keys):
    first = await create_payment(app_client, keys["psb"], reference=REFERENCE)
    cancelled = await app_client.post(
        f"/api/v1/payments/{first['id']}/cancel", headers=auth(keys["psb"], idem("cancel"))
    )
    assert cancelled.status_code == 200, cancelled.text
    response = await post(app_client, keys["psb"], idem("after-cancel"))
    assert response.status_code == 201, response.text
    # and that one holds the reference now
    third = await post(app_client, keys["psb"], idem("third"))
    assert_duplicate_of(third, response.json()["id"])


async def test_the_same_reference_in_another_department_is_its_own(app_client, keys):
    await create_payment(app_client, keys["psb"], reference=REFERENCE)
    response = await post(app_client, keys["nrb"], idem("nrb"), matter_code="real-estate-transfer")
    assert response.status_code == 201, response.text


async def test_a_replay_of_the_first_request_still_returns_its_201(app_client, keys):
    key = idem("first")
    first = await post(app_client, keys["psb"], key)
    assert first.status_code == 201, first.text
    replay = await post(app_client, keys["psb"], key)
    assert replay.status_code == 201, replay.text
    assert replay.json() == first.json()
    # the same key with another body is still a key reused, not a duplicate
    reused = await post(app_client, keys["psb"], key, quantity=2)
    assert_problem(reused, 422, "idempotency_key_reused")


async def test_a_refused_duplicate_does_not_use_up_its_idempotency_key(app_client, keys):
    first = await create_payment(app_client, keys["psb"], reference=REFERENCE)
    key = idem("later")
    refused = await post(app_client, keys["psb"], key)
    assert_duplicate_of(refused, first["id"])
    await execute("UPDATE payments SET status = 'expired' WHERE id = :id", id=first["id"])
    retried = await post(app_client, keys["psb"], key)
    assert retried.status_code == 201, retried.text


async def test_concurrent_requests_for_one_reference_create_one_payment(app_client, keys):
    """Department systems send the same reference at the same moment, each with its own
    key: one payment, and every other request a 409 naming it, whichever wins. (The
    service's entry point is called from concurrent tasks: the in-process HTTP client
    answers one request at a time, so it cannot race them.)"""
    principal = await principal_for_key(keys["psb"])
    for round_ in range(8):
        reference = f"CRJ-2026-RACE-{round_}"
        body = json.dumps(payment_body(reference=reference)).encode()
        data = msgspec.json.decode(body, type=PaymentIn)
        print_ = fingerprint("POST", "/api/v1/payments", body)
        outcomes = await asyncio.gather(
            *(
                service.create_payment_once(principal, data, idem(f"race{i}"), print_)
                for i in range(4)
            ),
            return_exceptions=True,
        )
        created = [o for o in outcomes if isinstance(o, tuple)]
        refused = [o for o in outcomes if isinstance(o, DuplicateReference)]
        assert len(created) == 1 and len(refused) == 3, outcomes
        status, payment = created[0]
        assert status == 201
        assert {e.extra["existing_payment_id"] for e in refused} == {payment["id"]}
        assert await count_rows("payments", "reference = :r", r=reference) == 1
