"""Refunds: reserved under the payment's lock, paid back by the gateway, settled on the
refund machine (payments/states.py), booked in the ledger.

`reserve_refund` and `settle_refund` work in the caller's unit of work; `refund_once`
and `send_refund_to_gateway` orchestrate their own around the gateway call.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip import idempotency, metrics, outbox
from onetrip import states as machine
from onetrip.auth import Principal
from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.errors import (
    Conflict,
    IdempotencyInProgress,
    InvalidTransition,
    NotFound,
    OneTripError,
)
from onetrip.ids import new_id
from payments import events
from payments.booking import book_refund, unbook_refund
from payments.gateways import gateway_named
from payments.models import Payment, Refund
from payments.queries import get_payment
from payments.schemas import RefundIn
from payments.states import (
    PAYMENT_MACHINE,
    REFUND_MACHINE,
    REFUND_PENDING,
    REFUND_SUCCEEDED,
    REFUNDABLE,
)
from payments.views import refund_view

log = logging.getLogger(__name__)

#: the gateway's answer → the refund machine's event (None: not decided yet)
_EVENTS = {"succeeded": "succeed", "failed": "fail", "pending": None}


async def reserve_refund(
    session: AsyncSession, principal: Principal, payment_id: str, data: RefundIn
) -> Refund:
    """Check and record a refund as pending, under the payment's row lock, so that
    concurrent requests can never together refund more than was received (never the
    fee: a payment in review may have received less, or another currency)."""
    payment = await get_payment(session, principal, payment_id, lock=True)
    if payment.status not in REFUNDABLE or payment.amount_received is None:
        raise Conflict(
            f"payment is {payment.status}; only a succeeded payment can be refunded",
            code="payment_not_refundable",
        )
    currency = payment.received_currency or payment.currency
    reserved = (
        await session.execute(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.payment_id == payment_id,
                Refund.status.in_((REFUND_PENDING, REFUND_SUCCEEDED)),
            )
        )
    ).scalar_one()
    available = payment.amount_received - int(reserved)
    if data.amount > available:
        raise Conflict(
            f"only {available} {currency} minor units can still be refunded",
            code="refund_exceeds_available",
            extra={"available": available},
        )
    now = utcnow()
    refund = Refund(
        id=new_id("rf"),
        payment_id=payment.id,
        department=payment.department,
        amount=data.amount,
        currency=currency,
        reason=data.reason,
        status=REFUND_PENDING,
        gateway=payment.gateway or "sandbox",
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    await session.flush()
    await outbox.record_event(
        session,
        "refund.created",
        events.as_data(events.refund_created(refund)),
        payment_id=payment.id,
        subject_id=refund.id,
        department=payment.department,
        occurred_at=now,
    )
    return refund


async def settle_refund(
    session: AsyncSession,
    refund_id: str,
    status: str,
    *,
    gateway_ref: str | None = None,
    failure_reason: str | None = None,
) -> tuple[Refund, bool]:
    """Record the gateway's answer (succeeded, failed or pending) for a refund;
    returns (refund, changed). Idempotent: a repeated answer changes nothing. A refund
    the gateway reports failed after it had succeeded (a bank returned it) is undone:
    its ledger transaction is reversed and the amount counts as refundable again."""
    event = _EVENTS.get(status)

    async def effect(refund: Refund, move: machine.Transition[Refund]) -> events.RefundEvent:
        payment = await machine.lock(session, PAYMENT_MACHINE, refund.payment_id)
        refund.gateway_ref = gateway_ref or refund.gateway_ref
        refund.failure_reason = failure_reason
        if move.current == REFUND_SUCCEEDED:
            await book_refund(session, payment, refund)
            _count_refunded(payment, refund.amount, refund.updated_at)
        elif move.previous == REFUND_SUCCEEDED:  # the undo
            await unbook_refund(session, payment, refund)
            _count_refunded(payment, -refund.amount, refund.updated_at)
        metrics.refunds_settled.labels(status).inc()
        return events.refund_settled(refund, payment)

    refund: Refund | None = None
    if event is not None:
        try:
            move = await machine.apply(session, REFUND_MACHINE, refund_id, event, effect)
        except InvalidTransition:
            pass  # a failed refund reported paid later: it stays failed
        else:
            if move.changed:
                return move.row, True
            refund = move.row
    if refund is None:
        refund = await machine.lock(session, REFUND_MACHINE, refund_id)
    # Nothing moved: keep the gateway's reference if we did not have it yet.
    if gateway_ref and not refund.gateway_ref:
        refund.gateway_ref = gateway_ref
    return refund, False


def _count_refunded(payment: Payment, amount: int, at: datetime) -> None:
    payment.amount_refunded += amount
    payment.refund_status = (
        "none"
        if payment.amount_refunded == 0
        else "full"
        if payment.amount_refunded >= (payment.amount_received or payment.amount)
        else "partial"
    )
    payment.updated_at = at


async def send_refund_to_gateway(refund_id: str) -> Refund:
    """Ask the gateway to pay a pending refund back and record its answer. Safe to call
    again: the gateway call is idempotent per refund id."""
    async with get_database().session() as session:
        refund = await session.get(Refund, refund_id)
        if refund is None:
            raise NotFound(f"no refund {refund_id}", code="refund_not_found")
        if refund.status != REFUND_PENDING:
            return refund
        payment = await session.get(Payment, refund.payment_id)
    assert payment is not None
    result = await gateway_named(refund.gateway).refund(payment, refund)
    async with unit_of_work() as session:
        refund, _ = await settle_refund(
            session,
            refund_id,
            result.status,
            gateway_ref=result.gateway_ref,
            failure_reason=result.failure_reason,
        )
    return refund


#: a refund request whose record is still "in progress" after this long has crashed
#: between reserving the refund and answering; a retry with its key finishes it.
STALLED_REFUND_SECONDS = 60


async def refund_once(
    principal: Principal,
    payment_id: str,
    data: RefundIn,
    key: str | None,
    request_fingerprint: str,
) -> tuple[int, Any]:
    """Refund under an Idempotency-Key; returns (status, body).

    Three steps, so no database lock is held while the gateway answers: reserve the
    refund and claim the key in one transaction, ask the gateway, record the answer and
    the response. A retry of a request that crashed between them finishes it (the
    gateway call is idempotent per refund id)."""
    key = idempotency.check_key(key)
    scope = principal.key_id
    record = await idempotency.find_record(scope, key, request_fingerprint)
    if record is None:
        try:
            async with unit_of_work() as session:
                refund = await reserve_refund(session, principal, payment_id, data)
                if not await idempotency.claim(
                    session, scope, key, request_fingerprint, resource_id=refund.id
                ):
                    raise IdempotencyInProgress()  # rolls this refund back
            return await _finish_refund(scope, key, refund.id)
        except OneTripError:
            # A concurrent request with this key got there first (and may have taken
            # the amount): answer as a replay of it, never as a new refund's error.
            record = await idempotency.find_record(scope, key, request_fingerprint)
            if record is None:
                raise
    if record.status_code is not None:
        return record.status_code, record.response
    age = (utcnow() - record.created_at).total_seconds()
    if record.resource_id is None or age < STALLED_REFUND_SECONDS:
        raise IdempotencyInProgress()
    return await _finish_refund(scope, key, record.resource_id)


async def _finish_refund(scope: str, key: str, refund_id: str) -> tuple[int, Any]:
    try:
        await send_refund_to_gateway(refund_id)
    except Exception:
        # It stays pending and the answer says so; the retry job asks again.
        log.warning("refund %s left pending", refund_id, exc_info=True)
    async with unit_of_work() as session:
        refund = await session.get(Refund, refund_id)
        assert refund is not None
        response = (201, msgspec.to_builtins(refund_view(refund)))
        return await idempotency.complete(session, scope, key, response)
