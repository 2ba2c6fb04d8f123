"""Creating payments: checked against the catalogue and the department's references,
inserted with their outbox event.

On PostgreSQL the API's create path is one raw transaction of three round trips (see
`_CREATE_ONCE_SQL`); elsewhere a unit of work through the session.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from onetrip import idempotency, metrics, outbox
from onetrip.auth import Principal
from onetrip.clock import utcnow
from onetrip.db import connection_lost, get_database
from onetrip.errors import (
    DuplicateReference,
    IdempotencyInProgress,
    OneTripError,
    ValidationFailed,
)
from onetrip.ids import new_id, new_token
from onetrip.settings import get_settings
from payments import catalogue, events
from payments.models import Payment
from payments.schemas import PaymentIn
from payments.states import CREATED, NEEDS_REVIEW, STARTED, SUCCEEDED
from payments.views import PaymentView, new_payment_view

PAYMENTS = Payment.__table__

log = logging.getLogger("onetrip.payments")


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
        "applicant": msgspec.to_builtins(data.applicant),
        "delivery": msgspec.to_builtins(data.delivery),
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


#: a payment in these states holds its reference: it may still be paid, or was paid (a
#: new payment for the reference is fine once the earlier one failed, was cancelled or
#: expired)
HOLDS_REFERENCE = (CREATED, STARTED, SUCCEEDED, NEEDS_REVIEW)


def reference_lock(department: str, reference: str) -> int:
    """The PostgreSQL advisory lock (a signed 64-bit key) that serialises creating
    payments for one department's reference, so two concurrent requests cannot both
    find it free."""
    digest = hashlib.blake2b(
        f"payment-reference\x1f{department}\x1f{reference}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def duplicate_reference(reference: str, payment_id: str, status: str) -> DuplicateReference:
    return DuplicateReference(
        f"reference {reference} already has payment {payment_id} ({status}); a new payment "
        "for it can be created once that one has failed, been cancelled or expired",
        errors=[{"field": "reference", "message": f"already used by payment {payment_id}"}],
        extra={"existing_payment_id": payment_id, "existing_payment_status": status},
    )


async def check_reference_free(session: AsyncSession, department: str, reference: str) -> None:
    """Refuse (409 duplicate_reference) a reference that a payment of the department
    holds. On PostgreSQL the reference's advisory lock is taken first, in the caller's
    transaction, and held until it ends; SQLite's writers are serialised anyway
    (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(func.pg_advisory_xact_lock(reference_lock(department, reference)))
        )
    holder = (
        await session.execute(
            select(PAYMENTS.c.id, PAYMENTS.c.status)
            .where(
                PAYMENTS.c.department == department,
                PAYMENTS.c.reference == reference,
                PAYMENTS.c.status.in_(HOLDS_REFERENCE),
            )
            .limit(1)
        )
    ).first()
    if holder is not None:
        raise duplicate_reference(reference, holder.id, holder.status)


async def create_payment(
    session: AsyncSession, principal: Principal, data: PaymentIn
) -> PaymentView:
    """Create a payment in the caller's unit of work (payment row + outbox event) and
    return its view; 409 duplicate_reference if the reference is held (see
    `HOLDS_REFERENCE`). `create_payment_once` is the API's entry point."""
    values = new_payment_values(principal, await catalogue.matter_info(data.matter_code), data)
    await check_reference_free(session, values["department"], values["reference"])
    await session.execute(insert(PAYMENTS).values(values))
    await outbox.record_event(
        session,
        "payment.created",
        events.as_data(events.payment_created(values)),
        payment_id=values["id"],
        subject_id=values["id"],
        department=values["department"],
        occurred_at=values["created_at"],
    )
    return new_payment_view(values)


# The create path on PostgreSQL: one transaction of three round trips. The first takes
# the reference's advisory lock (`reference_lock`, an integer: safe to send as text).
# The statement then checks, on a snapshot taken after the lock, that no payment holds
# the reference (one indexed query, ix_payments_department_reference), and only if none
# does and the Idempotency-Key was new, claims the key and inserts the payment and its
# outbox event. A concurrent request with the same key waits on the key's unique index
# (or the lock) and inserts nothing; one with the same reference waits on the lock and
# then finds the first payment. Measured before the reference check (one round trip):
# ~0.8 ms of API CPU per payment instead of ~3.5 ms through the session
# (benchmarks/RESULTS.md). The columns must follow payments/models.py and
# onetrip/outbox.py, onetrip/idempotency.py; every PostgreSQL test of payment creation
# runs through here.
_LOCK_SQL = "BEGIN; SELECT pg_advisory_xact_lock({lock:d})"

_CREATE_ONCE_SQL = """
WITH holder AS (
    SELECT id, status FROM payments
     WHERE department = $8 AND reference = $11 AND status IN ({holds})
     LIMIT 1
), claim AS (
    INSERT INTO idempotency_keys
           (scope, key, fingerprint, resource_id, status_code, response, created_at)
    SELECT $1, $2, $3, $4, 201, $5::json, $6
     WHERE NOT EXISTS (SELECT 1 FROM holder)
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
SELECT (SELECT count(*) FROM claim) AS claimed,
       (SELECT id FROM holder) AS holder_id,
       (SELECT status FROM holder) AS holder_status
""".format(holds=", ".join(f"'{status}'" for status in HOLDS_REFERENCE))

_json_encode = msgspec.json.Encoder().encode

# asyncpg errors that mean the connection is gone (SQLSTATE class 08, or the server
# shutting down or terminating the backend), whether or not asyncpg has marked it closed
# yet. InternalClientError: the server's "terminating connection" arrived while the
# connection sat idle in the pool, which leaves asyncpg's protocol refusing any statement
# (nothing was sent) until the socket's close is read.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.InternalClientError,
    ConnectionError,
)


async def _create_in_transaction(raw: asyncpg.Connection, lock: int, args: tuple[Any, ...]) -> Any:
    """Lock the reference, run `_CREATE_ONCE_SQL` and commit; its row. Never leaves the
    connection inside a transaction: rolled back on any error, closed if even that
    fails (the pool guard replaces a closed connection at its next checkout)."""
    committed = False
    try:
        await raw.execute(_LOCK_SQL.format(lock=lock))
        row = await raw.fetchrow(_CREATE_ONCE_SQL, *args)
        await raw.execute("COMMIT")
        committed = True
        return row
    finally:
        if not committed and not raw.is_closed() and raw.is_in_transaction():
            try:
                await raw.execute("ROLLBACK")
            except BaseException:
                raw.terminate()
                raise


async def _claim_and_insert(engine: AsyncEngine, lock: int, args: tuple[Any, ...]) -> Any:
    """Run `_CREATE_ONCE_SQL` under the reference's lock on a pooled connection; its row
    (`claimed`: the number of claims it made; `holder_id`, `holder_status`: a payment
    that holds the reference).

    The raw statements bypass SQLAlchemy's disconnect handling, so a connection that
    turns out dead is invalidated here (never put back in the pool), and the
    transaction is sent once more on a fresh one. Sending it again is safe: the same
    Idempotency-Key claim is in the same statement, so if the first attempt did commit,
    the second claims nothing (it finds the first payment holding the reference) and
    the caller returns the stored first response.
    """
    for attempt in (1, 2):
        async with engine.connect() as connection:
            pooled = await connection.get_raw_connection()
            raw = pooled.driver_connection
            try:
                return await _create_in_transaction(raw, lock, args)
            except (asyncpg.InterfaceError, *_CONNECTION_LOST) as exc:
                lost = raw.is_closed() or isinstance(exc, _CONNECTION_LOST)
                if not lost:
                    raise
                connection_lost(engine, pooled)  # its siblings are as old: replace them
                await connection.invalidate(exc)
                if attempt == 2:
                    raise
                log.warning("the database connection was lost; creating the payment again")
    raise AssertionError("unreachable")


def _json_text(value: Any) -> str:
    return _json_encode(value).decode()


async def create_payment_once(
    principal: Principal, data: PaymentIn, key: str | None, request_fingerprint: str
) -> tuple[int, Any]:
    """Create a payment under an Idempotency-Key; returns (status, body), the first
    response again on a replay; 409 duplicate_reference if a payment holds the reference.
    One short raw transaction on PostgreSQL, a unit of work elsewhere."""
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
    body = msgspec.to_builtins(new_payment_view(values))
    args = (
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
        _json_encode(events.payment_created(values)).decode(),
    )
    lock = reference_lock(values["department"], values["reference"])
    row = await _claim_and_insert(database.engine, lock, args)
    if row["claimed"]:
        database.notify_committed()
        metrics.payments_created.labels(principal.department).inc()
        return 201, body
    # A replay of a request that was answered (its payment holds the reference too)
    stored = await idempotency.stored_response(scope, key, request_fingerprint)
    if stored is not None:
        return stored
    if row["holder_id"] is not None:
        raise duplicate_reference(values["reference"], row["holder_id"], row["holder_status"])
    raise IdempotencyInProgress()  # cannot happen: a claim that did not insert found a row
