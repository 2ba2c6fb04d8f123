"""Reading payments, their refunds and their timeline (no writes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip import outbox
from onetrip.auth import Principal
from onetrip.errors import Forbidden, NotFound
from onetrip.pagination import check_limit, envelope, page
from payments.models import Payment, Refund
from payments.views import RefundView, TimelineEntry, payment_view, refund_view


def holds_share(principal: Principal, payment: Payment) -> bool:
    """Whether a department the key sees is in the payment's fee split (a joint
    matter: the departments it is booked to besides its owner)."""
    return any(
        principal.sees_department(share.get("department")) for share in payment.fee_split or ()
    )


async def _load(session: AsyncSession, payment_id: str, lock: bool) -> Payment:
    stmt = select(Payment).where(Payment.id == payment_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    payment = (await session.execute(stmt)).scalar_one_or_none()
    if payment is None:
        raise NotFound(f"no payment {payment_id}", code="payment_not_found")
    return payment


async def get_payment(
    session: AsyncSession, principal: Principal, payment_id: str, *, lock: bool = False
) -> Payment:
    """The payment if the key may act on it: its department's (or any, for admins and
    all-department keys). The way to a payment that is to be changed.

    A department that only has a share of it (in a joint matter's fee split) may read it
    (`get_readable_payment`) but not cancel, refund or collect it: 403
    `not_payment_owner`, since it can see the payment anyway; for any other department
    it is a 404, never a hint that it exists."""
    payment = await _load(session, payment_id, lock)
    if not principal.sees_department(payment.department):
        if holds_share(principal, payment):
            raise Forbidden(
                f"payment {payment_id} belongs to {payment.department}; a department with "
                "a share of its fee may read it, only its own department may change it",
                code="not_payment_owner",
            )
        raise NotFound(f"no payment {payment_id}", code="payment_not_found")
    return payment


async def get_readable_payment(
    session: AsyncSession, principal: Principal, payment_id: str
) -> Payment:
    """The payment if the key may read it: its department's, or one whose fee split
    books a share to a department the key sees (a joint matter); else a 404."""
    payment = await _load(session, payment_id, False)
    if not (principal.sees_department(payment.department) or holds_share(principal, payment)):
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
    """One page of the key's own departments' payments, newest first (not those of
    other departments it has a share of in a joint matter: it reads those one by one,
    by id, e.g. from its ledger entries).

    Each filter has an index in the cursor's order — (department, status, id),
    (status, id), (department, reference), (reference, id), (department, id) — so a page
    reads about `limit` index entries however many payments there are. A key of several
    departments reads each department's page that way and merges them (an IN list would
    make the database sort every matching payment)."""
    filters = []
    if status:
        filters.append(Payment.status == status)
    if reference:
        filters.append(Payment.reference == reference)
    if created_from:
        filters.append(Payment.created_at >= created_from)
    if created_to:
        filters.append(Payment.created_at < created_to)
    if principal.role == "admin" or principal.all_departments:
        query = page(select(Payment).where(*filters), Payment.id, cursor, limit, prefix="pay")
    elif len(principal.departments) <= 1:
        query = page(
            select(Payment).where(Payment.department.in_(principal.departments), *filters),
            Payment.id,
            cursor,
            limit,
            prefix="pay",
        )
    else:
        # Each department's newest limit+1 ids, by its own index; the page is the newest
        # limit+1 of their union.
        per_department = [
            page(
                select(Payment.id).where(Payment.department == code, *filters),
                Payment.id,
                cursor,
                limit,
                prefix="pay",
            ).subquery()
            for code in principal.departments
        ]
        ids = union_all(*(select(sub.c.id) for sub in per_department)).subquery()
        query = (
            select(Payment)
            .where(Payment.id.in_(select(ids.c.id)))
            .order_by(Payment.id.desc())
            .limit(check_limit(limit) + 1)
        )
    rows = (await session.execute(query)).scalars().all()
    return envelope([payment_view(p, principal) for p in rows], limit, id_of=lambda view: view.id)


async def timeline(
    session: AsyncSession, principal: Principal, payment_id: str
) -> list[TimelineEntry]:
    """Everything that happened to a payment the key may read, oldest first."""
    await get_readable_payment(session, principal, payment_id)
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
    """The refunds of a payment the key may read, oldest first."""
    await get_readable_payment(session, principal, payment_id)
    rows = (
        await session.execute(
            select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.id)
        )
    ).scalars()
    return [refund_view(r) for r in rows]
