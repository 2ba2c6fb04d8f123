"""The Stripe path end to end: the real stripe SDK, localstripe, and our app served by
uvicorn so localstripe's signed webhooks reach it — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import stripe

from ledger.service import STRIPE_CLEARING, department_fees_account
from tests import stripe_fixtures
from tests.factories import auth
from tests.stripe_fixtures import (
    BLACK_HOLE,
    CARD_DECLINED,
    CARD_OK,
    StripeStack,
    intent_in_page,
    paid_by_card,
)

# the shared fixtures (one localstripe per session; the app per test)
localstripe = stripe_fixtures.localstripe
stripe_stack = stripe_fixtures.stripe_stack


async def test_card_payment_succeeds_through_stripe_webhook_and_books_the_fee(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    created = await stack.create_payment(reference="CRJ-2026-000101")
    assert created["status"] == "created" and created["amount"] == 12000

    page, started = await stack.open_pay_page(created)
    assert started["status"] == "started" and started["gateway"] == "stripe"
    intent_id, client_secret = intent_in_page(page)
    assert "普通护照签发" in page and "张伟" in page

    intent = stack.sdk.v1.payment_intents.retrieve(intent_id)
    assert intent.client_secret == client_secret
    assert intent.amount == 12000 and intent.currency == "cny"
    assert intent.metadata["payment_id"] == created["id"]
    assert intent.metadata["department"] == "PSB"

    # Reopening the page reuses the PaymentIntent: no second one at Stripe.
    again, _ = await stack.open_pay_page(created)
    assert intent_in_page(again) == (intent_id, client_secret)

    confirmed = stack.pay_with_card(intent_id, CARD_OK)
    assert confirmed.status == "succeeded"

    paid = await stack.wait_for_status(created["id"], "succeeded")
    assert paid["succeeded_at"] is not None and paid["failure_reason"] is None
    assert paid["refund_status"] == "none" and paid["amount_refunded"] == 0

    balance = await stack.trial_balance()
    assert balance["total_debits"] == balance["total_credits"] == 12000
    balances = await stack.balances()
    assert balances[STRIPE_CLEARING] == 12000
    assert balances[department_fees_account("PSB")] == -12000
    assert await stack.ledger_transaction_count() == 1

    types = [e["type"] for e in await stack.events(created["id"])]
    assert types == ["payment.created", "payment.started", "payment.succeeded"]


async def test_declined_card_fails_the_payment_with_a_reason(stripe_stack: StripeStack) -> None:
    stack = stripe_stack
    payment = await stack.create_payment(reference="CRJ-2026-000102")
    page, _ = await stack.open_pay_page(payment)
    intent_id, _ = intent_in_page(page)

    with pytest.raises(stripe.CardError):
        stack.pay_with_card(intent_id, CARD_DECLINED)

    failed = await stack.wait_for_status(payment["id"], "failed")
    assert failed["failure_reason"]
    assert "declined" in failed["failure_reason"].lower()
    assert failed["succeeded_at"] is None
    assert await stack.ledger_transaction_count() == 0
    assert "payment.failed" in [e["type"] for e in await stack.events(payment["id"])]


async def test_joint_matter_paid_through_stripe_books_each_department_share(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    paid, _ = await paid_by_card(
        stack, key="nrb", matter_code="real-estate-transfer", reference="BDC-2026-000201"
    )
    assert paid["amount"] == 50001
    balances = await stack.balances()
    assert balances[STRIPE_CLEARING] == 50001
    nrb, hcb = balances[department_fees_account("NRB")], balances[department_fees_account("HCB")]
    assert nrb + hcb == -50001
    assert {nrb, hcb} == {-30001, -20000} or {nrb, hcb} == {-30000, -20001}


async def test_cancelling_a_started_stripe_payment_cancels_its_payment_intent(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    payment = await stack.create_payment(reference="CRJ-2026-000104")
    page, _ = await stack.open_pay_page(payment)
    intent_id, _ = intent_in_page(page)

    answer = await stack.client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(stack.keys["psb"], "cancel-104")
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "cancelled"
    assert stack.sdk.v1.payment_intents.retrieve(intent_id).status == "canceled"
    assert await stack.ledger_transaction_count() == 0


async def test_cancelling_a_payment_stripe_already_took_books_it_and_is_409(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    await stack.point_webhooks(BLACK_HOLE)  # paid, but the webhook has not arrived
    payment = await stack.create_payment(reference="CRJ-2026-000105")
    page, _ = await stack.open_pay_page(payment)
    intent_id, _ = intent_in_page(page)
    assert stack.pay_with_card(intent_id, CARD_OK).status == "succeeded"

    answer = await stack.client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(stack.keys["psb"], "cancel-105")
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "payment_already_succeeded"
    assert (await stack.payment(payment["id"]))["status"] == "succeeded"
    assert (await stack.balances())[STRIPE_CLEARING] == 12000
    assert stack.sdk.v1.payment_intents.retrieve(intent_id).status == "succeeded"
