"""The sweeps that do not wait for webhooks: polling stuck payments (the webhook was
lost) and expiring unpaid ones (the PaymentIntent is cancelled at Stripe first)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
import stripe
from sqlalchemy import update

from ledger.service import STRIPE_CLEARING
from onetrip.clock import utcnow
from onetrip.db import unit_of_work
from onetrip.settings import reset_settings
from payments import service
from payments.gateways import stripe as gateway
from payments.models import Payment
from tests import stripe_fixtures
from tests.stripe_fixtures import (
    BLACK_HOLE,
    CARD_DECLINED,
    CARD_OK,
    StripeStack,
    intent_in_page,
)

# the shared fixtures (one localstripe per session; the app per test)
localstripe = stripe_fixtures.localstripe
stripe_stack = stripe_fixtures.stripe_stack


async def backdate(payment_id: str, **columns: object) -> None:
    async with unit_of_work() as session:
        await session.execute(update(Payment).where(Payment.id == payment_id).values(**columns))


async def started_payment(stack: StripeStack, reference: str) -> tuple[dict[str, object], str]:
    payment = await stack.create_payment(reference=reference)
    page, started = await stack.open_pay_page(payment)
    assert started["status"] == "started"
    intent_id, _ = intent_in_page(page)
    return payment, intent_id


async def test_lost_webhook_is_made_good_by_polling_stuck_payments(
    stripe_stack: StripeStack, env: pytest.MonkeyPatch
) -> None:
    stack = stripe_stack
    await stack.point_webhooks(BLACK_HOLE)  # localstripe's webhooks never arrive
    paid, paid_intent = await started_payment(stack, "CRJ-2026-000501")
    waiting, _ = await started_payment(stack, "CRJ-2026-000502")
    assert stack.pay_with_card(paid_intent, CARD_OK).status == "succeeded"
    assert (await stack.payment(paid["id"]))["status"] == "started"

    env.setenv("ONETRIP_STUCK_PAYMENT_MINUTES", "0")
    reset_settings()
    assert await service.poll_stuck_payments() == 2

    current = await stack.payment(paid["id"])
    assert current["status"] == "succeeded"
    assert (await stack.payment(waiting["id"]))["status"] == "started"  # not paid yet
    balances = await stack.balances()
    assert balances[STRIPE_CLEARING] == 12000
    balance = await stack.trial_balance()
    assert balance["total_debits"] == balance["total_credits"] == 12000
    assert "payment.succeeded" in [e["type"] for e in await stack.events(paid["id"])]

    # A second sweep finds nothing left to do for the paid one.
    assert await service.poll_stuck_payments() == 1
    assert await stack.ledger_transaction_count() == 1


async def test_expiry_cancels_the_payment_intent_and_expires_the_payment(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    payment, intent_id = await started_payment(stack, "CRJ-2026-000503")
    await backdate(payment["id"], expires_at=utcnow() - timedelta(minutes=1))

    assert await service.expire_due_payments() == 1

    assert stack.sdk.v1.payment_intents.retrieve(intent_id).status == "canceled"
    current = await stack.payment(payment["id"])
    assert current["status"] == "expired"
    assert await stack.ledger_transaction_count() == 0
    assert "payment.expired" in [e["type"] for e in await stack.events(payment["id"])]
    assert await service.expire_due_payments() == 0


async def test_expiry_books_a_payment_intent_that_already_succeeded(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    await stack.point_webhooks(BLACK_HOLE)  # paid, but we have not heard of it yet
    payment, intent_id = await started_payment(stack, "CRJ-2026-000504")
    assert stack.pay_with_card(intent_id, CARD_OK).status == "succeeded"
    await backdate(payment["id"], expires_at=utcnow() - timedelta(minutes=1))

    assert await service.expire_due_payments() == 1

    assert stack.sdk.v1.payment_intents.retrieve(intent_id).status == "succeeded"
    current = await stack.payment(payment["id"])
    assert current["status"] == "succeeded" and current["failure_reason"] is None
    assert (await stack.balances())[STRIPE_CLEARING] == 12000
    types = [e["type"] for e in await stack.events(payment["id"])]
    assert "payment.succeeded" in types and "payment.expired" not in types


async def test_stripe_calls_from_the_worker_loop_do_not_borrow_the_api_loops_connections(
    stripe_stack: StripeStack,
) -> None:
    """The sweeps run on the Dramatiq worker's event loop while the API serves on its
    own: each loop must get its own Stripe client (pooled connections are per loop)."""
    stack = stripe_stack
    _, intent_id = await started_payment(stack, "CRJ-2026-000505")  # the API loop called Stripe
    here = gateway.stripe_client()

    def in_another_loop() -> tuple[object, str]:
        async def call() -> tuple[object, str]:
            client = gateway.stripe_client()
            intent = await client.v1.payment_intents.retrieve_async(intent_id)
            return client, intent.status

        return asyncio.run(call())

    seen = [here]
    for _ in range(2):
        there, status = await asyncio.to_thread(in_another_loop)
        assert status == "requires_payment_method"
        assert all(there is not other for other in seen)
        seen.append(there)
    assert (
        await gateway.stripe_client().v1.payment_intents.retrieve_async(intent_id)
    ).id == intent_id


async def test_one_payment_stripe_cannot_answer_for_does_not_stop_the_expiry_sweep(
    stripe_stack: StripeStack,
) -> None:
    """A PaymentIntent Stripe no longer knows (404) makes its payment's expiry fail;
    the others due must still expire, and that one is left for a later sweep."""
    stack = stripe_stack
    orphan, _ = await started_payment(stack, "CRJ-2026-000506")
    async with httpx.AsyncClient() as raw:  # Stripe forgets every PaymentIntent so far
        assert (await raw.delete(f"{stack.localstripe_url}/_config/data")).status_code == 200
    due, intent_id = await started_payment(stack, "CRJ-2026-000507")
    await backdate(orphan["id"], expires_at=utcnow() - timedelta(minutes=2))
    await backdate(due["id"], expires_at=utcnow() - timedelta(minutes=1))

    await service.expire_due_payments()

    assert (await stack.payment(due["id"]))["status"] == "expired"
    assert stack.sdk.v1.payment_intents.retrieve(intent_id).status == "canceled"
    assert (await stack.payment(orphan["id"]))["status"] == "started"


async def declined_payment(stack: StripeStack, reference: str) -> tuple[dict[str, object], str]:
    payment, intent_id = await started_payment(stack, reference)
    with pytest.raises(stripe.CardError):
        stack.pay_with_card(intent_id, CARD_DECLINED)
    await stack.wait_for_status(str(payment["id"]), "failed")
    return payment, intent_id


async def test_a_declined_payment_past_its_time_is_closed_at_stripe_and_expires(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    payment, intent_id = await declined_payment(stack, "CRJ-2026-000506")
    await backdate(str(payment["id"]), expires_at=utcnow() - timedelta(minutes=1))

    assert await service.expire_due_payments() == 1

    assert stack.sdk.v1.payment_intents.retrieve(intent_id).status == "canceled"
    assert (await stack.payment(str(payment["id"])))["status"] == "expired"
    assert await stack.ledger_transaction_count() == 0


async def test_polling_also_finds_a_declined_payment_that_was_paid_on_retry(
    stripe_stack: StripeStack, env: pytest.MonkeyPatch
) -> None:
    """After a decline the card may be retried on the same PaymentIntent; if that
    success's webhook is lost, polling must still find and book it. (localstripe will
    not confirm a declined PaymentIntent again, so the decline is recorded directly.)"""
    stack = stripe_stack
    await stack.point_webhooks(BLACK_HOLE)
    payment, intent_id = await started_payment(stack, "CRJ-2026-000507")
    assert stack.pay_with_card(intent_id, CARD_OK).status == "succeeded"
    await backdate(str(payment["id"]), status="failed", failure_reason="card declined")

    env.setenv("ONETRIP_STUCK_PAYMENT_MINUTES", "0")
    reset_settings()
    assert await service.poll_stuck_payments() == 1

    assert (await stack.payment(str(payment["id"])))["status"] == "succeeded"
    assert (await stack.balances())[STRIPE_CLEARING] == 12000
