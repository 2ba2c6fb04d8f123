"""Sweeps, run by periodic jobs: expire unpaid payments, poll the ones whose webhook may
have been lost, and ask again about refunds still pending at the gateway."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from onetrip.clock import utcnow
from onetrip.db import get_database
from onetrip.settings import get_settings
from payments.gateways import pollable_gateways
from payments.lifecycle import resolve_online
from payments.models import Payment, Refund
from payments.refunds import send_refund_to_gateway
from payments.states import CREATED, FAILED, REFUND_PENDING, STARTED

log = logging.getLogger(__name__)


async def expire_due_payments(limit: int = 500) -> int:
    """Expire payments left unpaid past `expires_at`; returns how many were swept."""
    async with get_database().session() as session:
        due = (
            (
                await session.execute(
                    select(Payment)
                    .where(
                        Payment.status.in_((CREATED, STARTED, FAILED)),
                        Payment.expires_at < utcnow(),
                    )
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    for payment in due:
        try:
            await resolve_online(payment, expire=True)
        except Exception:  # one the gateway cannot answer for must not stop the others
            log.exception("could not expire payment %s", payment.id)
    return len(due)


async def poll_stuck_payments(limit: int = 200) -> int:
    """Ask the gateway about online payments started (or declined) a while ago and not
    settled since — in case their webhook was lost."""
    older_than = utcnow() - timedelta(minutes=get_settings().stuck_payment_after_minutes)
    async with get_database().session() as session:
        stuck = (
            (
                await session.execute(
                    select(Payment)
                    .where(
                        # A declined payment can still be paid on its open PaymentIntent.
                        Payment.status.in_((STARTED, FAILED)),
                        Payment.gateway.in_(pollable_gateways()),
                        Payment.updated_at < older_than,
                        Payment.expires_at > utcnow(),
                    )
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    for payment in stuck:
        try:
            await resolve_online(payment, expire=False)
        except Exception:
            log.exception("could not poll payment %s", payment.id)
    return len(stuck)


async def retry_pending_refunds(limit: int = 200) -> int:
    """Send refunds still pending a minute after they were asked for again."""
    older_than = utcnow() - timedelta(minutes=1)
    async with get_database().session() as session:
        ids = (
            (
                await session.execute(
                    select(Refund.id)
                    .where(Refund.status == REFUND_PENDING, Refund.created_at < older_than)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    for refund_id in ids:
        try:
            await send_refund_to_gateway(refund_id)
        except Exception:
            log.exception("refund %s still pending", refund_id)
    return len(ids)
