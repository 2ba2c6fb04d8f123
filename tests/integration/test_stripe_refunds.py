"""Refunds through Stripe (localstripe): full, partial, replayed, too large, concurrent.

localstripe accepts over-refunds and ignores idempotency keys, so every limit seen
here is OneTrip's own."""

from __future__ import annotations

import asyncio
from typing import Any

from ledger.service import STRIPE_CLEARING, department_fees_account
from tests import stripe_fixtures
from tests.factories import auth
from tests.stripe_fixtures import StripeStack, paid_by_card

# the shared fixtures (one localstripe per session; the app per test)
localstripe = stripe_fixtures.localstripe
stripe_stack = stripe_fixtures.stripe_stack


async def refund(
    stack: StripeStack,
    payment: dict[str, Any],
    amount: int,
    key: str,
    reason: str = "申请人撤回申请",
) -> Any:
    return await stack.client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": amount, "reason": reason},
        headers=auth(stack.owner(payment["id"]), key),
    )


def stripe_refunds(stack: StripeStack, intent_id: str) -> list[Any]:
    return list(stack.sdk.v1.refunds.list(params={"payment_intent": intent_id, "limit": 100}).data)


async def test_full_refund_goes_to_stripe_once_and_replays_the_same_answer(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    paid, intent_id = await paid_by_card(stack, reference="CRJ-2026-000401")

    first = await refund(stack, paid, 12000, "rf-CRJ-2026-000401")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "succeeded" and body["amount"] == 12000
    assert body["payment_id"] == paid["id"] and body["id"].startswith("rf_")

    [at_stripe] = stripe_refunds(stack, intent_id)
    assert at_stripe.amount == 12000 and at_stripe.status == "succeeded"
    assert at_stripe.metadata["refund_id"] == body["id"]
    assert at_stripe.metadata["payment_id"] == paid["id"]

    replay = await refund(stack, paid, 12000, "rf-CRJ-2026-000401")
    assert replay.status_code == 201 and replay.json() == body
    assert len(stripe_refunds(stack, intent_id)) == 1

    reused = await refund(stack, paid, 100, "rf-CRJ-2026-000401")
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"

    more = await refund(stack, paid, 1, "rf-CRJ-2026-000401-b")
    assert more.status_code == 409 and more.json()["code"] == "refund_exceeds_available"
    assert len(stripe_refunds(stack, intent_id)) == 1

    current = await stack.payment(paid["id"])
    assert current["refund_status"] == "full" and current["amount_refunded"] == 12000
    balances = await stack.balances()
    assert balances[STRIPE_CLEARING] == 0 and balances[department_fees_account("PSB")] == 0
    balance = await stack.trial_balance()
    assert balance["total_debits"] == balance["total_credits"] == 24000
    assert "refund.succeeded" in [e["type"] for e in await stack.events(paid["id"])]


async def test_partial_refunds_of_a_joint_matter_never_exceed_what_was_paid(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    paid, intent_id = await paid_by_card(
        stack, key="nrb", matter_code="real-estate-transfer", reference="BDC-2026-000402"
    )
    assert paid["amount"] == 50001

    part = await refund(stack, paid, 20000, "rf-BDC-402-1", "部分材料退回，减收登记费")
    assert part.status_code == 201 and part.json()["status"] == "succeeded", part.text
    current = await stack.payment(paid["id"])
    assert current["refund_status"] == "partial" and current["amount_refunded"] == 20000

    too_much = await refund(stack, paid, 30002, "rf-BDC-402-2")
    assert too_much.status_code == 409, too_much.text
    problem = too_much.json()
    assert problem["code"] == "refund_exceeds_available"
    assert problem["type"] and problem["status"] == 409
    assert [r.amount for r in stripe_refunds(stack, intent_id)] == [20000]

    rest = await refund(stack, paid, 30001, "rf-BDC-402-3")
    assert rest.status_code == 201 and rest.json()["status"] == "succeeded", rest.text
    assert sorted(r.amount for r in stripe_refunds(stack, intent_id)) == [20000, 30001]

    current = await stack.payment(paid["id"])
    assert current["refund_status"] == "full" and current["amount_refunded"] == 50001
    balances = await stack.balances()
    assert balances[STRIPE_CLEARING] == 0
    assert balances[department_fees_account("NRB")] == 0
    assert balances[department_fees_account("HCB")] == 0


async def test_concurrent_refunds_never_exceed_the_amount_paid(stripe_stack: StripeStack) -> None:
    """Ten refunds of 30 % each at once, each with its own key: exactly three fit."""
    stack = stripe_stack
    paid, intent_id = await paid_by_card(stack, reference="CRJ-2026-000403")
    share = paid["amount"] * 30 // 100

    answers = await asyncio.gather(
        *(refund(stack, paid, share, f"rf-CRJ-2026-000403-{i}") for i in range(10))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 3 + [409] * 7, [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 201:
            assert answer.json()["status"] == "succeeded"
        else:
            assert answer.json()["code"] == "refund_exceeds_available"

    assert sorted(r.amount for r in stripe_refunds(stack, intent_id)) == [share] * 3
    current = await stack.payment(paid["id"])
    assert current["amount_refunded"] == 3 * share and current["refund_status"] == "partial"
    balances = await stack.balances()
    assert balances[STRIPE_CLEARING] == paid["amount"] - 3 * share
    assert balances[department_fees_account("PSB")] == -(paid["amount"] - 3 * share)
    assert await stack.ledger_transaction_count() == 1 + 3
    balance = await stack.trial_balance()
    assert balance["total_debits"] == balance["total_credits"]


async def test_a_refund_stripe_reports_failed_after_paying_it_is_undone_once(
    stripe_stack: StripeStack,
) -> None:
    """The applicant's bank returned the money: Stripe's refund.failed arrives after
    the refund had succeeded. The books take it back and it can be refunded again."""
    import time

    from tests.stripe_fixtures import event_body

    stack = stripe_stack
    paid, intent_id = await paid_by_card(stack, reference="CRJ-2026-000409")
    done = await refund(stack, paid, 5000, "rf-CRJ-2026-000409")
    assert done.json()["status"] == "succeeded"
    [at_stripe] = stripe_refunds(stack, intent_id)

    failed = at_stripe.to_dict()
    failed.update(status="failed", failure_reason="lost_or_stolen_card")
    event = {
        "id": f"evt_refund_failed_{time.monotonic_ns()}",
        "object": "event",
        "type": "refund.failed",
        "created": int(time.time()),
        "data": {"object": failed},
    }
    for outcome in ("applied", "duplicate"):
        answer = await stack.post_webhook(event_body(event))
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == outcome

    current = await stack.payment(paid["id"])
    assert current["refund_status"] == "none" and current["amount_refunded"] == 0
    balances = await stack.balances()
    assert balances[STRIPE_CLEARING] == 12000
    assert balances[department_fees_account("PSB")] == -12000
    listed = await stack.client.get(
        f"/api/v1/payments/{paid['id']}/refunds", headers=auth(stack.owner(paid["id"]))
    )
    assert [r["status"] for r in listed.json()["data"]] == ["failed"]
    again = await refund(stack, paid, 12000, "rf-CRJ-2026-000409-b")
    assert again.status_code == 201 and again.json()["status"] == "succeeded"
