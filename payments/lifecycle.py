"""A payment's life on its machine (payments/states.py): the applicant's page, the
department's cancel and counter collection, and what the gateways tell us.

`apply_event` works in the caller's unit of work. The functions that talk to a gateway
(`start_online`, `cancel_once`, `resolve_online`) orchestrate their own short units of
work around the network call, so no database lock is held while we wait on Stripe.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip import idempotency, metrics
from onetrip import states as machine
from onetrip.auth import Principal
from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.errors import InvalidTransition
from onetrip.money import Money
from payments import events
from payments.booking import book_acceptance, book_payment
from payments.events import PaymentDetail
from payments.gateways import gateway_named, online_gateway
from payments.gateways.sandbox import SandboxGateway, card_outcome
from payments.models import Payment
from payments.queries import get_payment, payment_by_token
from payments.schemas import CounterCollectionIn
from payments.states import CREATED, FAILED, NEEDS_REVIEW, PAYMENT_MACHINE, STARTED, SUCCEEDED
from payments.views import PaymentView, payment_view


async def apply_event(
    session: AsyncSession,
    payment_id: str,
    event: str,
    *,
    gateway: str | None = None,
    gateway_ref: str | None = None,
    reason: str | None = None,
    detail: PaymentDetail | None = None,
    received: Money | None = None,
) -> tuple[Payment, bool]:
    """Apply a payment event on the machine, under the row lock; returns (payment,
    changed). A repeat changes nothing; a move the table lacks raises
    InvalidTransition. Money that moves books its ledger transaction in this same
    transaction: `succeed` and `review` record `received` (what the gateway took; for
    `succeed` without it, the fee, as the sandbox, the counter and a polled gateway
    take exactly the fee), `accept` books what a payment in review received."""

    async def effect(payment: Payment, move: machine.Transition[Payment]) -> events.PaymentEvent:
        if gateway:
            payment.gateway = gateway
        if gateway_ref:
            payment.gateway_ref = gateway_ref
        if reason:
            payment.failure_reason = reason[:500]
        if event in ("succeed", "review"):
            taken = received if received is not None else Money(payment.amount, payment.currency)
            payment.amount_received, payment.received_currency = taken.amount, taken.currency
            payment.failure_reason = None
            if move.current == SUCCEEDED:
                payment.succeeded_at = payment.updated_at
            await book_payment(session, payment)
        elif event == "accept":
            payment.succeeded_at = payment.updated_at
            await book_acceptance(session, payment)
        return events.payment_moved(payment, move.previous, detail)

    move = await machine.apply(session, PAYMENT_MACHINE, payment_id, event, effect)
    if move.changed:
        metrics.payment_transitions.labels(move.current, move.row.gateway or "none").inc()
    return move.row, move.changed


# --- the applicant's page -----------------------------------------------------------


async def start_online(token: str) -> Payment:
    """The applicant opened the payment page: make sure the online gateway is ready to
    take this payment (a PaymentIntent on Stripe), once."""
    async with get_database().session() as session:
        payment = await payment_by_token(session, token)
    if payment.status in (CREATED, STARTED) and payment.expires_at <= utcnow():
        # Past its time but not swept yet: expire it now rather than take it.
        await resolve_online(payment, expire=True)
        async with get_database().session() as session:
            return await payment_by_token(session, token)
    if payment.status not in (CREATED, STARTED) or payment.gateway_secret or _ready(payment):
        return payment
    gateway = online_gateway()
    started = await gateway.start(payment)  # idempotent per payment id
    async with unit_of_work() as session:
        payment, _ = await apply_event(
            session, payment.id, "start", gateway=gateway.name, gateway_ref=started.gateway_ref
        )
        if started.client_secret:
            payment.gateway_secret = started.client_secret
    return payment


def _ready(payment: Payment) -> bool:
    """Started at a gateway whose page needs nothing more from it."""
    return (
        payment.status == STARTED
        and payment.gateway is not None
        and not gateway_named(payment.gateway).needs_client_secret
    )


async def sandbox_pay(token: str, card_number: str) -> tuple[Payment, str | None]:
    """The sandbox page's form: a test card decides the outcome."""
    async with unit_of_work() as session:
        payment = await payment_by_token(session, token)
        if payment.gateway != SandboxGateway.name or payment.status != STARTED:
            return payment, None
        if payment.expires_at <= utcnow():  # due, and the sweep has not run yet
            payment, _ = await apply_event(session, payment.id, "expire", reason="expired")
            return payment, None
        outcome = card_outcome(card_number)
        if outcome is None:
            return payment, "unknown_card"
        status, label = outcome
        try:
            if status == "succeeded":
                payment, _ = await apply_event(
                    session, payment.id, "succeed", detail=PaymentDetail(card=label)
                )
            else:
                payment, _ = await apply_event(session, payment.id, "fail", reason=label)
        except InvalidTransition:
            # A double submit lost the race to the first one: show what that did.
            await session.refresh(payment)
        return payment, None


async def retry_online(token: str) -> Payment:
    """The applicant tries another card after a decline: the same payment starts again
    on the gateway it failed on (on Stripe, the same PaymentIntent, which takes a new
    card until it is cancelled), so each attempt is a `start` then its outcome in the
    payment's events. A payment past its time expires instead (closed at the gateway
    first); one in any other status is returned as it is, for the page to show."""
    async with get_database().session() as session:
        payment = await payment_by_token(session, token)
    if payment.status != FAILED or payment.gateway not in _RETRYABLE_GATEWAYS:
        return payment
    if payment.expires_at <= utcnow():
        await resolve_online(payment, expire=True)
    else:
        # InvalidTransition: it moved meanwhile (paid, cancelled, expired): show that
        async with unit_of_work() as session:
            with contextlib.suppress(InvalidTransition):
                await apply_event(session, payment.id, "start")
    async with get_database().session() as session:
        return await payment_by_token(session, token)


#: the gateways whose declined payments take another card on the applicant's page
_RETRYABLE_GATEWAYS = frozenset({"sandbox", "stripe"})


def can_retry(payment: Payment) -> bool:
    """True if the applicant may try another card on this payment now."""
    return (
        payment.status == FAILED
        and payment.gateway in _RETRYABLE_GATEWAYS
        and payment.expires_at > utcnow()
    )


# --- department actions -------------------------------------------------------------


async def cancel_payment(
    session: AsyncSession, principal: Principal, payment_id: str
) -> PaymentView:
    """Cancel a payment that has not succeeded, in the caller's unit of work."""
    payment = await get_payment(session, principal, payment_id, lock=True)
    if payment.status == SUCCEEDED:
        raise InvalidTransition(
            "a succeeded payment cannot be cancelled; refund it", code="payment_already_succeeded"
        )
    if payment.status == NEEDS_REVIEW:
        raise InvalidTransition(
            "money was received for this payment; refund it, or an admin accepts it",
            code="payment_needs_review",
        )
    payment, _ = await apply_event(session, payment_id, "cancel", reason="cancelled by department")
    return payment_view(payment, principal)


async def cancel_once(
    principal: Principal, payment_id: str, key: str | None, request_fingerprint: str
) -> tuple[int, Any]:
    """Cancel a payment that has not succeeded; returns (status, body). The gateway is
    told first, outside any transaction. Cancelling is idempotent by state, so the key
    is optional; with one, a replay returns the first response."""
    await release_at_gateway(principal, payment_id)

    async def cancel(session: AsyncSession) -> tuple[int, Any]:
        return 200, msgspec.to_builtins(await cancel_payment(session, principal, payment_id))

    if key is None:
        async with unit_of_work() as session:
            return await cancel(session)
    return await idempotency.run_idempotent(principal.key_id, key, request_fingerprint, cancel)


async def release_at_gateway(principal: Principal, payment_id: str) -> None:
    """Before cancelling an online payment that could still be taken (started, or
    declined but retryable on its PaymentIntent), stop the gateway from taking it. If
    it was taken meanwhile, record the success (and the cancel will then be a 409)."""
    async with get_database().session() as session:
        payment = await get_payment(session, principal, payment_id)
    if payment.status not in (STARTED, FAILED) or payment.gateway is None:
        return
    gateway = gateway_named(payment.gateway)
    if not gateway.cancellable:
        return
    outcome = await gateway.cancel(payment)
    if outcome == "succeeded":
        async with unit_of_work() as session:
            await apply_event(
                session, payment_id, "succeed", detail=PaymentDetail(source="cancel_check")
            )


async def collect_at_counter(
    session: AsyncSession, principal: Principal, payment_id: str, data: CounterCollectionIn
) -> PaymentView:
    """Record the fee as taken at a service window, in the caller's unit of work."""
    payment = await get_payment(session, principal, payment_id, lock=True)
    if payment.status not in (CREATED,):
        raise InvalidTransition(
            f"payment is {payment.status}; only a payment not yet started online can be "
            "collected at the counter",
            code="payment_not_collectable",
        )
    payment, _ = await apply_event(
        session,
        payment_id,
        "succeed",
        gateway="counter",
        gateway_ref=data.receipt_no,
        detail=PaymentDetail(counter=msgspec.to_builtins(data)),
    )
    return payment_view(payment, principal)


async def accept_payment(
    session: AsyncSession, principal: Principal, payment_id: str
) -> PaymentView:
    """An admin accepts the money a payment in review received as its payment, in the
    caller's unit of work: it succeeds with `amount_received` as the amount paid, and
    what is left in suspense is booked to the departments."""
    payment = await get_payment(session, principal, payment_id, lock=True)
    if payment.status != NEEDS_REVIEW:
        raise InvalidTransition(
            f"payment is {payment.status}; only a payment in review can be accepted",
            code="payment_not_in_review",
        )
    if payment.received_currency != payment.currency:
        # No department account holds that currency, and converting is not ours to do.
        raise InvalidTransition(
            f"the money was received in {payment.received_currency}, not "
            f"{payment.currency}; refund it instead",
            code="payment_currency_mismatch",
        )
    if (payment.amount_received or 0) <= payment.amount_refunded:
        raise InvalidTransition(
            "nothing received is left to accept: it was refunded", code="payment_nothing_to_accept"
        )
    # payment.succeeded says what was paid: the money received, not the fee
    mismatch = events.AmountMismatch(
        received=payment.amount_received or 0,
        expected=payment.amount,
        received_currency=payment.currency,
        expected_currency=payment.currency,
    )
    payment, _ = await apply_event(
        session,
        payment_id,
        "accept",
        detail=PaymentDetail(source="accepted_in_review", amount_mismatch=mismatch),
    )
    return payment_view(payment, principal)


async def accept_once(
    principal: Principal, payment_id: str, key: str | None, request_fingerprint: str
) -> tuple[int, Any]:
    """Accept a payment in review under an Idempotency-Key (it moves money in the
    ledger, so the key is required); returns (status, body)."""

    async def accept(session: AsyncSession) -> tuple[int, Any]:
        return 200, msgspec.to_builtins(await accept_payment(session, principal, payment_id))

    return await idempotency.run_idempotent(principal.key_id, key, request_fingerprint, accept)


# --- asking the gateway -------------------------------------------------------------


async def resolve_online(payment: Payment, *, expire: bool) -> str:
    """Ask the gateway about a started payment and apply what it says; with `expire`,
    stop it at the gateway and expire it unless it succeeded meanwhile."""
    gateway = gateway_named(payment.gateway) if payment.gateway else None
    if gateway is None or payment.status == CREATED:
        outcome = "cancelled" if expire else "pending"
    elif expire:
        outcome = await gateway.cancel(payment)
    else:
        outcome = await gateway.outcome(payment)
    event = {
        "succeeded": "succeed",
        "failed": "fail",
        "cancelled": "expire" if expire else "cancel",
        "pending": "expire" if expire else None,
    }[outcome]
    if event is None:
        return "pending"
    async with unit_of_work() as session:
        try:
            await apply_event(session, payment.id, event, reason="expired" if expire else None)
        except InvalidTransition:
            return "unchanged"
    return event
