"""Reading payments, their refunds and their timeline (no writes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip import outbox
from onetrip.auth import Principal
from onetrip.errors import NotFound
from onetrip.pagination import envelope, page
from payments.models import Payment, Refund
from payments.views import RefundView, TimelineEntry, payment_view, refund_view


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
    """The payment an applicant's link names (the token is their capability)."""
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
    """One page of the payments the key may see, newest first."""
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
    return envelope([payment_view(p, principal) for p in rows], limit, id_of=lambda view: view.id)


async def timeline(
    session: AsyncSession, principal: Principal, payment_id: str
) -> list[TimelineEntry]:
    """Everything that happened to a payment, oldest first."""
    await get_payment(session, principal, payment_id)
    table = outbox.OutboxEvent.__table__
    rows = (
        await session.execute(
            select(table).where(table.c.payment_id == payment_id).order_by(table.c.id)
        )
    ).all()
    return [
        TimelineEntry(id=r.id, type=r.type, occurred_at=r.occurred_at, data=r.data) for r in rows
    ]


async def list_refunds(
    session: AsyncSession, principal: Principal, payment_id: str
) -> list[RefundView]:
    """The refunds of a payment the key may see, oldest first."""
    await get_payment(session, principal, payment_id)
    rows = (
        await session.execute(
            select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.id)
        )
    ).scalars()
    return [refund_view(r) for r in rows]
