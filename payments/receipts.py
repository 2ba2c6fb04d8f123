"""Receipts of succeeded payments: gathered here, laid out by payments/receipt.py,
rendered once (by a job, or on the first request) and kept."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip.auth import Principal
from onetrip.clock import utcnow
from onetrip.db import get_database, insert_ignoring_conflicts, unit_of_work
from onetrip.errors import Conflict
from onetrip.money import split_by_bps
from payments.booking import shares
from payments.models import Department, Payment, Receipt
from payments.queries import get_payment
from payments.states import SUCCEEDED
from payments.views import payment_urls


async def receipt_data(session: AsyncSession, payment: Payment) -> Any:
    """What the receipt of `payment` shows, with the departments' names."""
    from payments.receipt import ReceiptData

    split = shares(payment)
    paid = payment.amount if payment.amount_received is None else payment.amount_received
    codes = {payment.department, *(department for department, _ in split)}
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
        # the money received, once an admin accepted a payment whose money differed
        fee_split=[(names.get(d, d), part) for d, part in split_by_bps(paid, split)],
        amount_refunded=payment.amount_refunded,
        amount_received=paid,
    )


async def render_receipt(payment_id: str) -> bool:
    """Render and keep the receipt of a succeeded payment; False if it already exists."""
    pdf = await draw_receipt(payment_id)
    if pdf is None:
        return False
    async with unit_of_work() as session:
        return await keep_receipt(session, payment_id, pdf)


async def draw_receipt(payment_id: str) -> bytes | None:
    """The receipt PDF of a succeeded payment that has none kept yet, else None. Writes
    nothing, and draws outside any transaction: no lock is held while we draw."""
    from payments.receipt import render_receipt as render

    async with get_database().session() as session:
        if await session.get(Receipt, payment_id) is not None:
            return None
        payment = await session.get(Payment, payment_id)
        if payment is None or payment.status != SUCCEEDED:
            return None
        data = await receipt_data(session, payment)
    return render(data)


async def keep_receipt(session: AsyncSession, payment_id: str, pdf: bytes) -> bool:
    """Keep `pdf` as the receipt in the caller's unit of work; False if one was kept
    already (the first one stands: a receipt never changes once issued)."""
    stmt = insert_ignoring_conflicts(session, Receipt.__table__, ["payment_id"]).values(
        payment_id=payment_id, content=pdf, rendered_at=utcnow(), note=None
    )
    return bool((await session.execute(stmt)).rowcount)


async def receipt_pdf(principal: Principal, payment_id: str) -> bytes:
    """The receipt PDF of a succeeded payment the key may see (rendered now if the job
    has not run yet)."""
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
