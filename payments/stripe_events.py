"""Applying Stripe's webhook events (verified and read by payments.gateways.stripe)."""

from __future__ import annotations

import logging

from msgspec import UNSET
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip import outbox
from onetrip.db import unit_of_work
from onetrip.errors import InvalidTransition, NotFound
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
    mismatch: AmountMismatch | None = None
    if intent.move == "succeed":
        if intent.currency != payment.currency:
            # Not ours to convert: book nothing, keep the event for finance to handle.
            log.error("payment %s: Stripe took %s %s", payment_id, intent.received, intent.currency)
            return "currency_mismatch"
        if intent.received != payment.amount:
            mismatch = AmountMismatch(received=intent.received, expected=payment.amount)
            log.error(
                "payment %s: Stripe received %s, expected %s",
                payment_id,
                intent.received,
                payment.amount,
            )
    detail = PaymentDetail(
        stripe_payment_intent=intent.intent_id,
        amount_mismatch=UNSET if mismatch is None else mismatch,
    )
    try:
        _, changed = await apply_event(
            session,
            payment_id,
            intent.move,
            gateway=StripeGateway.name,
            gateway_ref=intent.intent_id,
            reason=intent.failure,
            detail=detail,
            received=intent.received if intent.move == "succeed" else None,
        )
    except InvalidTransition:
        return "ignored_out_of_order"
    return "applied" if changed else "unchanged"


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
