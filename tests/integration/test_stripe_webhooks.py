"""POST /webhooks/stripe: duplicates, late and out-of-order events, and signatures —
with events that localstripe really sent, replayed or adapted and signed by us."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
import stripe

from ledger.service import STRIPE_CLEARING
from tests import stripe_fixtures
from tests.stripe_fixtures import (
    CARD_DECLINED,
    StripeStack,
    event_body,
    intent_in_page,
    paid_by_card,
    sign,
)

# the shared fixtures (one localstripe per session; the app per test)
localstripe = stripe_fixtures.localstripe
stripe_stack = stripe_fixtures.stripe_stack


def adapted(event: dict[str, Any], type_: str, **intent: Any) -> dict[str, Any]:
    """Another event about the same PaymentIntent (a new event id, as Stripe would)."""
    other = copy.deepcopy(event)
    other["id"] = f"evt_test_{time.monotonic_ns()}"
    other["type"] = type_
    other["created"] = int(time.time())
    other["data"]["object"].update(intent)
    return other


async def ledger_state(stack: StripeStack) -> tuple[int, dict[str, int]]:
    return await stack.ledger_transaction_count(), await stack.balances()


async def test_duplicate_stripe_event_is_acknowledged_and_books_nothing_twice(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    paid, intent_id = await paid_by_card(stack, reference="CRJ-2026-000301")
    [event] = stack.events_of(intent_id, "payment_intent.succeeded")
    before = await ledger_state(stack)
    assert before[0] == 1 and before[1][STRIPE_CLEARING] == 12000

    body = event_body(event)
    for _ in range(2):
        answer = await stack.post_webhook(body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"received": event["id"], "outcome": "duplicate"}

    assert await ledger_state(stack) == before
    assert (await stack.payment(paid["id"]))["status"] == "succeeded"
    types = [e["type"] for e in await stack.events(paid["id"])]
    assert types.count("payment.succeeded") == 1


async def test_late_payment_failed_after_success_is_acknowledged_and_ignored(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    paid, intent_id = await paid_by_card(stack, reference="CRJ-2026-000302")
    [succeeded] = stack.events_of(intent_id, "payment_intent.succeeded")
    before = await ledger_state(stack)

    late = adapted(
        succeeded,
        "payment_intent.payment_failed",
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "message": "Your card was declined."},
    )
    answer = await stack.post_webhook(event_body(late))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "ignored_out_of_order"

    current = await stack.payment(paid["id"])
    assert current["status"] == "succeeded" and current["failure_reason"] is None
    assert await ledger_state(stack) == before


async def test_success_after_a_decline_moves_the_failed_payment_to_succeeded(
    stripe_stack: StripeStack,
) -> None:
    """The card was retried on the same PaymentIntent and money moved: the books must
    show it even though the payment had failed first."""
    stack = stripe_stack
    payment = await stack.create_payment(reference="CRJ-2026-000303")
    page, _ = await stack.open_pay_page(payment)
    intent_id, _ = intent_in_page(page)
    with pytest.raises(stripe.CardError):
        stack.pay_with_card(intent_id, CARD_DECLINED)
    await stack.wait_for_status(payment["id"], "failed")
    [failed] = stack.events_of(intent_id, "payment_intent.payment_failed")
    assert await stack.ledger_transaction_count() == 0

    success = adapted(
        failed, "payment_intent.succeeded", status="succeeded", last_payment_error=None
    )
    answer = await stack.post_webhook(event_body(success))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "applied"

    current = await stack.payment(payment["id"])
    assert current["status"] == "succeeded" and current["failure_reason"] is None
    assert await stack.ledger_transaction_count() == 1
    assert (await stack.balances())[STRIPE_CLEARING] == 12000
    types = [e["type"] for e in await stack.events(payment["id"])]
    assert types == ["payment.created", "payment.started", "payment.failed", "payment.succeeded"]


async def test_bad_or_stale_signature_is_rejected_and_changes_nothing(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    # A declined payment gives us a real event about a real PaymentIntent; turned into
    # a success it would move money, so each rejected copy must change nothing.
    payment = await stack.create_payment(reference="CRJ-2026-000304")
    page, _ = await stack.open_pay_page(payment)
    intent_id, _ = intent_in_page(page)
    with pytest.raises(stripe.CardError):
        stack.pay_with_card(intent_id, CARD_DECLINED)
    await stack.wait_for_status(payment["id"], "failed")
    [failed] = stack.events_of(intent_id, "payment_intent.payment_failed")
    forged = adapted(
        failed, "payment_intent.succeeded", status="succeeded", last_payment_error=None
    )
    body = event_body(forged)

    rejected = {
        "wrong secret": sign(body, secret="whsec_someone_else"),
        "six minutes old": sign(body, timestamp=int(time.time()) - 360),
        "signed another body": sign(body.replace(b"succeeded", b"canceled")),
        "no v1 signature": f"t={int(time.time())}",
    }
    for why, signature in rejected.items():
        answer = await stack.post_webhook(body, signature)
        assert answer.status_code == 400, (why, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json"), why
        problem = answer.json()
        assert problem["code"] == "invalid_signature", why
        assert problem["status"] == 400, why

    missing = await stack.client.post(
        "/webhooks/stripe", content=body, headers={"Content-Type": "application/json"}
    )
    assert missing.status_code == 400 and missing.json()["code"] == "invalid_signature"

    current = await stack.payment(payment["id"])
    assert current["status"] == "failed"
    assert await stack.ledger_transaction_count() == 0
    assert "payment.succeeded" not in [e["type"] for e in await stack.events(payment["id"])]

    # Nothing was recorded as consumed either: the genuine event still applies once.
    genuine = await stack.post_webhook(body)
    assert genuine.status_code == 200 and genuine.json()["outcome"] == "applied"


async def test_an_amount_taken_other_than_the_fee_waits_in_review_in_suspense(
    stripe_stack: StripeStack,
) -> None:
    """Stripe says it took 100 fen less than the fee: the clearing account shows what
    was taken, and all of it waits in suspense (no department is booked) while the
    payment needs review. (Issue 6 changed this rule: the fee used to be booked to the
    department with the gap in suspense, and the payment counted as succeeded.)"""
    stack = stripe_stack
    payment = await stack.create_payment(reference="CRJ-2026-000304")
    page, _ = await stack.open_pay_page(payment)
    intent_id, _ = intent_in_page(page)
    with pytest.raises(stripe.CardError):
        stack.pay_with_card(intent_id, CARD_DECLINED)
    await stack.wait_for_status(payment["id"], "failed")
    [failed] = stack.events_of(intent_id, "payment_intent.payment_failed")

    short = adapted(
        failed,
        "payment_intent.succeeded",
        status="succeeded",
        last_payment_error=None,
        amount_received=11900,
    )
    answer = await stack.post_webhook(event_body(short))
    assert answer.json()["outcome"] == "applied"
    books = await stack.balances()
    assert books[STRIPE_CLEARING] == 11900
    assert books["platform:suspense"] == -11900
    assert books.get("dept:PSB:fees_payable", 0) == 0
    assert (await stack.payment(payment["id"]))["status"] == "needs_review"
    types = [e["type"] for e in await stack.events(payment["id"])]
    assert "payment.succeeded" not in types
    [review] = [e for e in await stack.events(payment["id"]) if e["type"] == "payment.needs_review"]
    assert review["data"]["amount_mismatch"] == {
        "received": 11900,
        "expected": 12000,
        "received_currency": "CNY",
        "expected_currency": "CNY",
    }
