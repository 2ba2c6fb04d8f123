"""Applying Stripe's webhook events (verified and read by payments.gateways.stripe)."""

from __future__ import annotations

import logging

from msgspec import UNSET
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip import outbox
from onetrip.db import unit_of_work
from onetrip.errors import BadRequest, InvalidTransition, NotFound
from onetrip.money import Money, valid_currency
from payments.events import AmountMismatch, PaymentDetail
from payments.gateways.stripe import IntentUpdate, RefundUpdate, StripeEvent, StripeGateway
from payments.lifecycle import apply_event
from payments.models import Payment
from payments.refunds import settle_refund

log = logging.getLogger(__name__)


async def handle_stripe_event(event: StripeEvent) -> str:
    """Apply one verified Stripe event exactly once; returns what was done.

    Duplicates are recognised by event id; an event that no longer fits the payment's
    state (a late failure after success) is acknowledged and ignored.
    """
    async with unit_of_work() as session:
        if not await outbox.first_consumption(session, "stripe-webhook", event.id):
            return "duplicate"
        if event.intent is not None:
            return await _on_payment_intent(session, event.intent)
        if event.about_refunds:
            return await _on_refunds(session, event.refunds)
        return "ignored"


async def _payment_for_intent(session: AsyncSession, intent: IntentUpdate) -> str | None:
    if intent.payment_id:
        return intent.payment_id
    if intent.intent_id:
        return (
            await session.execute(select(Payment.id).where(Payment.gateway_ref == intent.intent_id))
        ).scalar_one_or_none()
    return None


async def _on_payment_intent(session: AsyncSession, intent: IntentUpdate) -> str:
    payment_id = await _payment_for_intent(session, intent)
    payment = await session.get(Payment, payment_id) if payment_id else None
    if payment_id is None or payment is None:
        log.warning("stripe %s for unknown payment (%s)", intent.kind, intent.intent_id)
        return "unknown_payment"
    if intent.move is None:
        return "ignored"
    move: str = intent.move
    received: Money | None = None
    mismatch: AmountMismatch | None = None
    if move == "succeed":
        received = _received(intent)
        if received != Money(payment.amount, payment.currency):
            # Less, more, or another currency than the fee: the money is booked as it
            # came, and the payment waits for a person (payments/states.py, `review`).
            move = "review"
            mismatch = AmountMismatch(
                received=received.amount,
                expected=payment.amount,
                received_currency=received.currency,
                expected_currency=payment.currency,
            )
            log.error(
                "payment %s: Stripe took %s %s, the fee is %s %s; it needs review",
                payment_id,
                received.amount,
                received.currency,
                payment.amount,
                payment.currency,
            )
    detail = PaymentDetail(
        stripe_payment_intent=intent.intent_id,
        amount_mismatch=UNSET if mismatch is None else mismatch,
    )
    try:
        _, changed = await apply_event(
            session,
            payment_id,
            move,
            gateway=StripeGateway.name,
            gateway_ref=intent.intent_id,
            reason=intent.failure,
            detail=detail,
            received=received,
        )
    except InvalidTransition:
        return "ignored_out_of_order"
    return "applied" if changed else "unchanged"


def _received(intent: IntentUpdate) -> Money:
    """What a `payment_intent.succeeded` says Stripe took. A missing or negative amount,
    or no currency, is a malformed event: refused (400, and the unit of work rolls back,
    so the event is not marked consumed), never booked as a guess."""
    amount, currency = intent.received, intent.currency
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise BadRequest(
            "a succeeded PaymentIntent must carry amount_received, a whole number ≥ 0",
            code="malformed_event",
        )
    if not valid_currency(currency):
        raise BadRequest(
            "a succeeded PaymentIntent must carry its currency", code="malformed_event"
        )
    return Money(amount, currency)


async def _on_refunds(session: AsyncSession, refunds: tuple[RefundUpdate, ...]) -> str:
    applied = "ignored"
    for item in refunds:
        try:
            _, changed = await settle_refund(
                session, item.refund_id, item.status, gateway_ref=item.gateway_ref
            )
        except NotFound:
            continue
        applied = "applied" if changed else "unchanged"
    return applied
