"""Payments and refunds: the rules.

Functions that take a session work inside the caller's unit of work and never commit.
The few that talk to a gateway (`start_online`, `cancel_payment`, `request_refund`,
the expiry and polling sweeps) orchestrate their own short units of work around the
network call, so no database lock is held while we wait on Stripe.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger import service as ledger
from onetrip import idempotency, metrics, outbox
from onetrip.auth import Principal
from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.errors import (
    Conflict,
    IdempotencyInProgress,
    InvalidTransition,
    NotFound,
    OneTripError,
    ValidationFailed,
)
from onetrip.ids import new_id, new_token
from onetrip.money import split_by_bps
from onetrip.pagination import envelope, page
from onetrip.settings import get_settings
from payments import catalogue
from payments.gateways import gateway_named, online_gateway
from payments.models import Department, Payment, Receipt, Refund
from payments.schemas import CounterCollectionIn, PaymentIn, RefundIn
from payments.states import (
    CREATED,
    EVENT_TYPES,
    FAILED,
    STARTED,
    SUCCEEDED,
    next_status,
)

log = logging.getLogger(__name__)

PAYMENTS = Payment.__table__


# --- views --------------------------------------------------------------------------


def payment_urls(token: str) -> dict[str, str]:
    base = get_settings().public_url
    return {"payment_url": f"{base}/pay/{token}", "tracking_url": f"{base}/track/{token}"}


def payment_view(p: Payment | Any) -> dict[str, Any]:
    """The public representation of a payment (API.md)."""
    return {
        "id": p.id,
        "status": p.status,
        "amount": p.amount,
        "currency": p.currency,
        "matter_code": p.matter_code,
        "matter_name": p.matter_name,
        "department": p.department,
        "reference": p.reference,
        "quantity": p.quantity,
        "unit_amount": p.unit_amount,
        "fee_split": p.fee_split,
        "refund_status": p.refund_status,
        "amount_refunded": p.amount_refunded,
        "applicant": p.applicant,
        "delivery": p.delivery,
        "return_url": p.return_url,
        "metadata": p.metadata_ if hasattr(p, "metadata_") else p.metadata,
        "gateway": p.gateway,
        "failure_reason": p.failure_reason,
        **payment_urls(p.token),
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "expires_at": p.expires_at,
        "succeeded_at": p.succeeded_at,
    }


def refund_view(r: Refund) -> dict[str, Any]:
    return {
        "id": r.id,
        "payment_id": r.payment_id,
        "amount": r.amount,
        "currency": r.currency,
        "reason": r.reason,
        "status": r.status,
        "failure_reason": r.failure_reason,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }


# --- creating and reading -----------------------------------------------------------


def _unknown_matter(code: str) -> ValidationFailed:
    return ValidationFailed(
        f"there is no matter {code} for this department",
        code="unknown_matter",
        errors=[{"field": "matter_code", "message": "unknown matter"}],
    )


def new_payment_values(
    principal: Principal, info: catalogue.MatterInfo | None, data: PaymentIn
) -> dict[str, Any]:
    """Check a new payment against the catalogue and build its row (no I/O).

    The amount is the catalogue's fee in force now times the quantity, never the
    client's; the fee split is snapshotted so later fee versions cannot change it."""
    if info is None or info.department != principal.department:
        raise _unknown_matter(data.matter_code)
    now = utcnow()
    fee = info.fee_at(now)
    if fee is None:
        raise ValidationFailed(
            f"matter {data.matter_code} has no fee in force yet",
            code="no_fee_in_force",
            errors=[{"field": "matter_code", "message": "no fee in force"}],
        )
    delivery = data.delivery
    if delivery.method == "courier":
        if not info.deliverable:
            raise ValidationFailed(
                "this matter's licence cannot be delivered; use pickup",
                code="not_deliverable",
                errors=[{"field": "delivery.method", "message": "matter is not deliverable"}],
            )
        if delivery.address is None:
            raise ValidationFailed(
                "courier delivery needs an address",
                code="address_required",
                errors=[{"field": "delivery.address", "message": "required for courier"}],
            )
    return {
        "id": new_id("pay"),
        "token": new_token(),
        "department": principal.department,
        "matter_code": info.code,
        "matter_name": info.name,
        "reference": data.reference,
        "quantity": data.quantity,
        "unit_amount": fee.amount,
        "amount": fee.amount * data.quantity,
        "currency": fee.currency,
        "fee_split": [{"department": d, "share_bps": bps} for d, bps in fee.fee_split],
        "status": CREATED,
        "refund_status": "none",
        "amount_refunded": 0,
        "applicant": _builtins(data.applicant),
        "delivery": _builtins(data.delivery),
        "return_url": data.return_url,
        "metadata": data.metadata or {},
        "gateway": None,
        "gateway_ref": None,
        "gateway_secret": None,
        "failure_reason": None,
        "created_at": now,
        "updated_at": now,
        "expires_at": now + timedelta(minutes=get_settings().payment_expiry_minutes),
        "succeeded_at": None,
    }


async def create_payment(
    session: AsyncSession, principal: Principal, data: PaymentIn
) -> dict[str, Any]:
    """Create a payment in the caller's unit of work (payment row + outbox event) and
    return its view. `create_payment_once` is the API's entry point."""
    values = new_payment_values(principal, await catalogue.matter_info(data.matter_code), data)
    await session.execute(insert(PAYMENTS).values(values))
    await outbox.record_event(
        session,
        "payment.created",
        _event_data(values),
        payment_id=values["id"],
        subject_id=values["id"],
        department=values["department"],
        occurred_at=values["created_at"],
    )
    return payment_view(_Row(values))


# The create path on PostgreSQL, in one statement and one round trip (autocommit):
# claim the Idempotency-Key, and only if it was new insert the payment and its outbox
# event. A concurrent request with the same key waits on the key's unique index and
# inserts nothing. Measured: ~0.8 ms of API CPU per payment instead of ~3.5 ms through
# the session (benchmarks/RESULTS.md). The columns must follow payments/models.py and
# onetrip/outbox.py, onetrip/idempotency.py; every PostgreSQL test of payment creation
# runs through here.
_CREATE_ONCE_SQL = """
WITH claim AS (
    INSERT INTO idempotency_keys
           (scope, key, fingerprint, resource_id, status_code, response, created_at)
    VALUES ($1, $2, $3, $4, 201, $5::json, $6)
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING key
), payment AS (
    INSERT INTO payments
           (id, token, department, matter_code, matter_name, reference, quantity,
            unit_amount, amount, currency, fee_split, status, refund_status,
            amount_refunded, applicant, delivery, return_url, metadata,
            created_at, updated_at, expires_at)
    SELECT $4, $7, $8, $9, $10, $11, $12::int, $13::bigint, $14::bigint, $15, $16::json,
           'created', 'none', 0, $17::json, $18::json, $19, $20::json, $6, $6, $21
      FROM claim
), event AS (
    INSERT INTO outbox_events (id, type, payment_id, subject_id, department, data, occurred_at)
    SELECT $22, 'payment.created', $4, $4, $8, $23::json, $6 FROM claim
)
SELECT count(*) FROM claim
"""

_json_encode = msgspec.json.Encoder().encode


def _json_text(value: Any) -> str:
    return _json_encode(value).decode()


async def create_payment_once(
    principal: Principal, data: PaymentIn, key: str | None, request_fingerprint: str
) -> tuple[int, Any]:
    """Create a payment under an Idempotency-Key; returns (status, body), the first
    response again on a replay. One round trip on PostgreSQL, a unit of work elsewhere."""
    database = get_database()
    if database.is_sqlite:

        async def create(session: AsyncSession) -> tuple[int, Any]:
            return 201, msgspec.to_builtins(await create_payment(session, principal, data))

        response = await idempotency.run_idempotent(
            principal.key_id, key, request_fingerprint, create
        )
        metrics.payments_created.labels(principal.department).inc()
        return response

    key = idempotency.check_key(key)
    scope = principal.key_id
    try:
        values = new_payment_values(principal, await catalogue.matter_info(data.matter_code), data)
    except OneTripError:
        stored = await idempotency.stored_response(scope, key, request_fingerprint)
        if stored is None:
            raise
        return stored
    body = msgspec.to_builtins(payment_view(_Row(values)))
    async with database.engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        claimed = await raw.fetchval(
            _CREATE_ONCE_SQL,
            scope,
            key,
            request_fingerprint,
            values["id"],
            _json_text(body),
            values["created_at"],
            values["token"],
            values["department"],
            values["matter_code"],
            values["matter_name"],
            values["reference"],
            values["quantity"],
            values["unit_amount"],
            values["amount"],
            values["currency"],
            _json_text(values["fee_split"]),
            _json_text(values["applicant"]),
            _json_text(values["delivery"]),
            values["return_url"],
            _json_text(values["metadata"]),
            values["expires_at"],
            new_id("evt"),
            _json_text(_event_data(values)),
        )
    if claimed:
        database.notify_committed()
        metrics.payments_created.labels(principal.department).inc()
        return 201, body
    stored = await idempotency.stored_response(scope, key, request_fingerprint)
    if stored is None:  # cannot happen: a claim that did not insert found a row
        raise IdempotencyInProgress()
    return stored


class _Row:
    """Attribute access over a values dict, so views work on rows we just inserted."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _builtins(value: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(value)


def _event_data(p: Payment | dict[str, Any]) -> dict[str, Any]:
    get = p.get if isinstance(p, dict) else lambda k: getattr(p, k)
    return {
        "payment_id": get("id"),
        "department": get("department"),
        "matter_code": get("matter_code"),
        "reference": get("reference"),
        "amount": get("amount"),
        "currency": get("currency"),
        "status": get("status"),
        "gateway": get("gateway"),
    }


async def get_payment(
    session: AsyncSession, principal: Principal, payment_id: str, *, lock: bool = False
) -> Payment:
    """The payment if the key may see it; another department's payment is a 404."""
    stmt = select(Payment).where(Payment.id == payment_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    payment = (await session.execute(stmt)).scalar_one_or_none()
    if payment is None or not principal.sees_department(payment.department):
        raise NotFound(f"no payment {payment_id}", code="payment_not_found")
    return payment


async def payment_by_token(session: AsyncSession, token: str) -> Payment:
    payment = (
        await session.execute(select(Payment).where(Payment.token == token))
    ).scalar_one_or_none()
    if payment is None:
        raise NotFound("this payment link is not valid", code="payment_not_found")
    return payment


async def list_payments(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    reference: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int | None,
    cursor: str | None,
) -> dict[str, Any]:
    stmt = select(Payment)
    if principal.role != "admin" and not principal.all_departments:
        stmt = stmt.where(Payment.department.in_(principal.departments))
    if status:
        stmt = stmt.where(Payment.status == status)
    if reference:
        stmt = stmt.where(Payment.reference == reference)
    if created_from:
        stmt = stmt.where(Payment.created_at >= created_from)
    if created_to:
        stmt = stmt.where(Payment.created_at < created_to)
    rows = (await session.execute(page(stmt, Payment.id, cursor, limit))).scalars().all()
    return envelope([payment_view(p) for p in rows], limit)


async def timeline(
    session: AsyncSession, principal: Principal, payment_id: str
) -> list[dict[str, Any]]:
    """Everything that happened to a payment, oldest first."""
    await get_payment(session, principal, payment_id)
    table = outbox.OutboxEvent.__table__
    rows = (
        await session.execute(
            select(table).where(table.c.payment_id == payment_id).order_by(table.c.id)
        )
    ).all()
    return [
        {"id": r.id, "type": r.type, "occurred_at": r.occurred_at, "data": r.data} for r in rows
    ]


# --- the status machine -------------------------------------------------------------


async def apply_event(
    session: AsyncSession,
    payment_id: str,
    event: str,
    *,
    gateway: str | None = None,
    gateway_ref: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
    received: int | None = None,
) -> tuple[Payment, bool]:
    """Apply a status-machine event under a row lock; returns (payment, changed).

    Repeating the event that led to the current status changes nothing (consumers are
    idempotent); any other move the table does not allow raises InvalidTransition.
    A payment that succeeds books its ledger transaction in this same transaction.
    """
    payment = (
        await session.execute(
            select(Payment)
            .where(Payment.id == payment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if payment is None:
        raise NotFound(f"no payment {payment_id}", code="payment_not_found")
    target = next_status(payment.status, event)
    if target is None:
        if EVENT_TYPES.get(payment.status) and _event_for(payment.status) == event:
            return payment, False
        raise InvalidTransition(
            f"payment {payment_id} is {payment.status}; cannot {event}",
            code="invalid_state_transition",
        )
    if target == payment.status:
        return payment, False
    previous = payment.status
    now = utcnow()
    payment.status = target
    payment.updated_at = now
    if gateway:
        payment.gateway = gateway
    if gateway_ref:
        payment.gateway_ref = gateway_ref
    if reason:
        payment.failure_reason = reason[:500]
    if target == SUCCEEDED:
        payment.succeeded_at = now
        payment.failure_reason = None
        await _book_payment(session, payment, received)
    data = {**_event_data(payment), "previous_status": previous, **(detail or {})}
    await outbox.record_event(
        session,
        EVENT_TYPES[target],
        data,
        payment_id=payment.id,
        subject_id=payment.id,
        department=payment.department,
        occurred_at=now,
    )
    await session.flush()
    metrics.payment_transitions.labels(target, payment.gateway or "none").inc()
    return payment, True


def _event_for(status: str) -> str:
    return {
        STARTED: "start",
        SUCCEEDED: "succeed",
        "failed": "fail",
        "cancelled": "cancel",
        "expired": "expire",
    }[status]


def _shares(payment: Payment) -> list[tuple[str, int]]:
    return [(s["department"], int(s["share_bps"])) for s in payment.fee_split]


async def _book_payment(
    session: AsyncSession, payment: Payment, received: int | None = None
) -> None:
    """Book the fee to its departments against the gateway's clearing account. If the
    gateway took another amount than the fee (it should never), the clearing account
    gets what was really taken and the difference waits in suspense for finance."""
    gateway = gateway_named(payment.gateway or "sandbox")
    received = payment.amount if received is None else received
    lines = []
    if received:
        lines.append(ledger.Line(gateway.clearing_account, received, payment.currency))
    if received != payment.amount:
        lines.append(ledger.Line(ledger.SUSPENSE, payment.amount - received, payment.currency))
    for department, part in split_by_bps(payment.amount, _shares(payment)):
        if part:
            lines.append(
                ledger.Line(ledger.department_fees_account(department), -part, payment.currency)
            )
    await ledger.post_transaction(
        session,
        idempotency_key=f"payment:{payment.id}:succeeded",
        description=f"{payment.matter_name} {payment.reference} ({payment.id})",
        lines=lines,
        effective_at=payment.succeeded_at,
        metadata={"payment_id": payment.id, "department": payment.department, "kind": "payment"},
    )


async def _book_refund(session: AsyncSession, payment: Payment, refund: Refund) -> None:
    """The reversal of a refund's share of the payment. Shares are taken cumulatively
    (what all refunds so far owe minus what earlier ones took), so partial refunds that
    add up to the whole reverse the payment's split exactly, fen for fen."""
    shares = _shares(payment)
    before = dict(split_by_bps(payment.amount_refunded, shares))
    after = dict(split_by_bps(payment.amount_refunded + refund.amount, shares))
    gateway = gateway_named(payment.gateway or "sandbox")
    lines = [ledger.Line(gateway.clearing_account, -refund.amount, refund.currency)]
    for department, _ in shares:
        part = after[department] - before[department]
        if part:
            lines.append(
                ledger.Line(ledger.department_fees_account(department), part, refund.currency)
            )
    await ledger.post_transaction(
        session,
        idempotency_key=f"refund:{refund.id}",
        description=f"Refund {refund.id} of {payment.id}",
        lines=lines,
        metadata={
            "payment_id": payment.id,
            "refund_id": refund.id,
            "department": payment.department,
            "kind": "refund",
        },
    )


# --- the applicant's page -----------------------------------------------------------


async def start_online(token: str) -> Payment:
    """The applicant opened the payment page: make sure the online gateway is ready to
    take this payment (a PaymentIntent on Stripe), once."""
    async with get_database().session() as session:
        payment = await payment_by_token(session, token)
    if payment.status in (CREATED, STARTED) and payment.expires_at <= utcnow():
        # Past its time but not swept yet: expire it now rather than take it.
        await _resolve_online(payment, expire=True)
        async with get_database().session() as session:
            return await payment_by_token(session, token)
    if (
        payment.status not in (CREATED, STARTED)
        or payment.gateway_secret
        or (payment.status == STARTED and payment.gateway == "sandbox")
    ):
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


async def sandbox_pay(token: str, card_number: str) -> tuple[Payment, str | None]:
    """The sandbox page's form: a test card decides the outcome."""
    from payments.gateways.sandbox import card_outcome

    async with unit_of_work() as session:
        payment = await payment_by_token(session, token)
        if payment.gateway != "sandbox" or payment.status != STARTED:
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
                    session, payment.id, "succeed", detail={"card": label}
                )
            else:
                payment, _ = await apply_event(session, payment.id, "fail", reason=label)
        except InvalidTransition:
            # A double submit lost the race to the first one: show what that did.
            await session.refresh(payment)
        return payment, None


# --- department actions -------------------------------------------------------------


async def cancel_payment(
    session: AsyncSession, principal: Principal, payment_id: str
) -> dict[str, Any]:
    payment = await get_payment(session, principal, payment_id, lock=True)
    if payment.status == SUCCEEDED:
        raise InvalidTransition(
            "a succeeded payment cannot be cancelled; refund it", code="payment_already_succeeded"
        )
    payment, _ = await apply_event(session, payment_id, "cancel", reason="cancelled by department")
    return payment_view(payment)


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
    if payment.status not in (STARTED, FAILED) or payment.gateway in (None, "sandbox", "counter"):
        return
    outcome = await gateway_named(payment.gateway).cancel(payment)
    if outcome == "succeeded":
        async with unit_of_work() as session:
            await apply_event(session, payment_id, "succeed", detail={"source": "cancel_check"})


async def collect_at_counter(
    session: AsyncSession, principal: Principal, payment_id: str, data: CounterCollectionIn
) -> dict[str, Any]:
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
        detail={"counter": _builtins(data)},
    )
    return payment_view(payment)


# --- refunds ------------------------------------------------------------------------


async def reserve_refund(
    session: AsyncSession, principal: Principal, payment_id: str, data: RefundIn
) -> Refund:
    """Check and record a refund as pending, under the payment's row lock, so that
    concurrent requests can never together refund more than was paid."""
    payment = await get_payment(session, principal, payment_id, lock=True)
    if payment.status != SUCCEEDED:
        raise Conflict(
            f"payment is {payment.status}; only a succeeded payment can be refunded",
            code="payment_not_refundable",
        )
    reserved = (
        await session.execute(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.payment_id == payment_id, Refund.status.in_(("pending", "succeeded"))
            )
        )
    ).scalar_one()
    available = payment.amount - int(reserved)
    if data.amount > available:
        raise Conflict(
            f"only {available} {payment.currency} minor units can still be refunded",
            code="refund_exceeds_available",
            extra={"available": available},
        )
    now = utcnow()
    refund = Refund(
        id=new_id("rf"),
        payment_id=payment.id,
        department=payment.department,
        amount=data.amount,
        currency=payment.currency,
        reason=data.reason,
        status="pending",
        gateway=payment.gateway or "sandbox",
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    await session.flush()
    await outbox.record_event(
        session,
        "refund.created",
        {
            "refund_id": refund.id,
            "payment_id": payment.id,
            "amount": refund.amount,
            "currency": refund.currency,
        },
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
    """Record the gateway's answer for a pending refund (idempotent). A refund the
    gateway reports as failed after it had succeeded (a bank returned it) is undone:
    its ledger transaction is reversed and the amount counts as refundable again."""
    refund = (
        await session.execute(
            select(Refund)
            .where(Refund.id == refund_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if refund is None:
        raise NotFound(f"no refund {refund_id}", code="refund_not_found")
    undo = refund.status == "succeeded" and status == "failed"
    if (refund.status != "pending" or status == "pending") and not undo:
        if gateway_ref and not refund.gateway_ref:
            refund.gateway_ref = gateway_ref
        return refund, False
    payment = (
        await session.execute(
            select(Payment)
            .where(Payment.id == refund.payment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    now = utcnow()
    refund.status = status
    refund.updated_at = now
    refund.gateway_ref = gateway_ref or refund.gateway_ref
    refund.failure_reason = failure_reason
    if status == "succeeded":
        await _book_refund(session, payment, refund)
        payment.amount_refunded += refund.amount
    elif undo:
        booked = await ledger.transaction_for_key(session, f"refund:{refund.id}")
        await ledger.reverse_transaction(
            session,
            booked.id,
            idempotency_key=f"refund:{refund.id}:failed",
            description=f"Refund {refund.id} of {payment.id} failed after it was paid",
        )
        payment.amount_refunded -= refund.amount
    if status == "succeeded" or undo:
        payment.refund_status = (
            "none"
            if payment.amount_refunded == 0
            else "full"
            if payment.amount_refunded >= payment.amount
            else "partial"
        )
        payment.updated_at = now
    metrics.refunds_settled.labels(status).inc()
    await outbox.record_event(
        session,
        f"refund.{status}",
        {
            "refund_id": refund.id,
            "payment_id": payment.id,
            "amount": refund.amount,
            "currency": refund.currency,
            "amount_refunded": payment.amount_refunded,
            "refund_status": payment.refund_status,
            "failure_reason": failure_reason,
        },
        payment_id=payment.id,
        subject_id=refund.id,
        department=payment.department,
        occurred_at=now,
    )
    await session.flush()
    return refund, True


async def send_refund_to_gateway(refund_id: str) -> Refund:
    """Ask the gateway to pay a pending refund back and record its answer. Safe to call
    again: the gateway call is idempotent per refund id."""
    async with get_database().session() as session:
        refund = await session.get(Refund, refund_id)
        if refund is None:
            raise NotFound(f"no refund {refund_id}", code="refund_not_found")
        if refund.status != "pending":
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


async def list_refunds(
    session: AsyncSession, principal: Principal, payment_id: str
) -> list[dict[str, Any]]:
    await get_payment(session, principal, payment_id)
    rows = (
        await session.execute(
            select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.id)
        )
    ).scalars()
    return [refund_view(r) for r in rows]


# --- sweeps (run by periodic jobs) --------------------------------------------------


async def _resolve_online(payment: Payment, *, expire: bool) -> str:
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
            await _resolve_online(payment, expire=True)
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
                        Payment.gateway == "stripe",
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
            await _resolve_online(payment, expire=False)
        except Exception:
            log.exception("could not poll payment %s", payment.id)
    return len(stuck)


async def retry_pending_refunds(limit: int = 200) -> int:
    older_than = utcnow() - timedelta(minutes=1)
    async with get_database().session() as session:
        ids = (
            (
                await session.execute(
                    select(Refund.id)
                    .where(Refund.status == "pending", Refund.created_at < older_than)
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


# --- Stripe webhooks ----------------------------------------------------------------


async def handle_stripe_event(event: dict[str, Any]) -> str:
    """Apply one verified Stripe event exactly once; returns what was done.

    Duplicates are recognised by event id; an event that no longer fits the payment's
    state (a late failure after success) is acknowledged and ignored.
    """
    obj = event.get("data", {}).get("object", {}) or {}
    async with unit_of_work() as session:
        if not await outbox.first_consumption(session, "stripe-webhook", event["id"]):
            return "duplicate"
        kind = event.get("type", "")
        if kind.startswith("payment_intent."):
            return await _on_payment_intent(session, kind, obj)
        if kind in (
            "charge.refunded",
            "charge.refund.updated",
            "refund.created",
            "refund.updated",
            "refund.failed",
        ):
            return await _on_refund(session, obj)
        return "ignored"


async def _payment_for_intent(session: AsyncSession, intent: dict[str, Any]) -> str | None:
    payment_id = (intent.get("metadata") or {}).get("payment_id")
    if payment_id:
        return payment_id
    if intent.get("id"):
        return (
            await session.execute(select(Payment.id).where(Payment.gateway_ref == intent["id"]))
        ).scalar_one_or_none()
    return None


async def _on_payment_intent(session: AsyncSession, kind: str, intent: dict[str, Any]) -> str:
    payment_id = await _payment_for_intent(session, intent)
    if payment_id is None or await session.get(Payment, payment_id) is None:
        log.warning("stripe %s for unknown payment (%s)", kind, intent.get("id"))
        return "unknown_payment"
    event = {
        "payment_intent.succeeded": "succeed",
        "payment_intent.payment_failed": "fail",
        "payment_intent.canceled": "cancel",
    }.get(kind)
    if event is None:
        return "ignored"
    detail: dict[str, Any] = {"stripe_payment_intent": intent.get("id")}
    reason = None
    received = None
    if event == "succeed":
        payment = await session.get(Payment, payment_id)
        received = intent.get("amount_received", intent.get("amount"))
        currency = str(intent.get("currency", "")).upper()
        if payment is not None and currency != payment.currency:
            # Not ours to convert: book nothing, keep the event for finance to handle.
            log.error("payment %s: Stripe took %s %s", payment_id, received, currency)
            return "currency_mismatch"
        if payment is not None and received != payment.amount:
            detail["amount_mismatch"] = {"received": received, "expected": payment.amount}
            log.error(
                "payment %s: Stripe received %s, expected %s", payment_id, received, payment.amount
            )
    if event == "fail":
        error = intent.get("last_payment_error") or {}
        reason = error.get("message") or error.get("code") or "card declined"
    try:
        _, changed = await apply_event(
            session,
            payment_id,
            event,
            gateway="stripe",
            gateway_ref=intent.get("id"),
            reason=reason,
            detail=detail,
            received=received,
        )
    except InvalidTransition:
        return "ignored_out_of_order"
    return "applied" if changed else "unchanged"


async def _on_refund(session: AsyncSession, obj: dict[str, Any]) -> str:
    refunds = [obj] if obj.get("object") == "refund" else (obj.get("refunds") or {}).get("data", [])
    applied = "ignored"
    for item in refunds:
        refund_id = (item.get("metadata") or {}).get("refund_id")
        if not refund_id:
            continue
        status = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed"}.get(
            item.get("status")
        )
        if status is None:
            continue
        try:
            _, changed = await settle_refund(session, refund_id, status, gateway_ref=item.get("id"))
        except NotFound:
            continue
        applied = "applied" if changed else "unchanged"
    return applied


# --- receipts -----------------------------------------------------------------------


async def receipt_data(session: AsyncSession, payment: Payment) -> Any:
    from payments.receipt import ReceiptData

    shares = _shares(payment)
    codes = {payment.department, *(department for department, _ in shares)}
    names = {
        d.code: d.name
        for d in (
            await session.execute(select(Department).where(Department.code.in_(codes)))
        ).scalars()
    }
    return ReceiptData(
        payment_id=payment.id,
        reference=payment.reference,
        matter_code=payment.matter_code,
        matter_name=payment.matter_name,
        department_name=names.get(payment.department, payment.department),
        applicant_name=payment.applicant.get("name", ""),
        quantity=payment.quantity,
        unit_amount=payment.unit_amount,
        amount=payment.amount,
        currency=payment.currency,
        paid_at=payment.succeeded_at or payment.updated_at,
        gateway=payment.gateway or "sandbox",
        tracking_url=payment_urls(payment.token)["tracking_url"],
        fee_split=[(names.get(d, d), part) for d, part in split_by_bps(payment.amount, shares)],
        amount_refunded=payment.amount_refunded,
    )


async def render_receipt(payment_id: str) -> bool:
    """Render and keep the receipt of a succeeded payment; False if it already exists."""
    from payments.receipt import render_receipt as render

    async with get_database().session() as session:
        if await session.get(Receipt, payment_id) is not None:
            return False
        payment = await session.get(Payment, payment_id)
        if payment is None or payment.status != SUCCEEDED:
            return False
        data = await receipt_data(session, payment)
    pdf = render(data)  # outside any transaction: no lock held while we draw
    from onetrip.db import insert_ignoring_conflicts

    async with unit_of_work() as session:
        stmt = insert_ignoring_conflicts(session, Receipt.__table__, ["payment_id"]).values(
            payment_id=payment_id, content=pdf, rendered_at=utcnow(), note=None
        )
        result = await session.execute(stmt)
    return bool(result.rowcount)


async def receipt_pdf(principal: Principal, payment_id: str) -> bytes:
    async with get_database().session() as session:
        payment = await get_payment(session, principal, payment_id)
        if payment.status != SUCCEEDED:
            raise Conflict(
                "the receipt exists once the payment has succeeded", code="payment_not_succeeded"
            )
        receipt = await session.get(Receipt, payment_id)
        if receipt is not None:
            return receipt.content
    await render_receipt(payment_id)  # the job has not run yet: render it now
    async with get_database().session() as session:
        receipt = await session.get(Receipt, payment_id)
        assert receipt is not None
        return receipt.content
