"""Receipts of succeeded payments: gathered here, laid out by payments/receipt.py.

A receipt is rendered when the payment succeeds (by a job, or on the first request) and
kept. It is re-issued, under the same number with the next version, when what it shows
is no longer true: the payment's succeeded refunds changed (a refund paid, or one the
bank returned), or it was drawn with the non-embedded fallback font (blank Chinese text
in most viewers) while an embedded one is in use now. The refund consumer re-issues it
after each refund; `current_receipt` heals whatever is still stale when it is asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip.auth import Principal
from onetrip.clock import utcnow
from onetrip.consumers import reading
from onetrip.db import get_database, insert_ignoring_conflicts, unit_of_work
from onetrip.errors import Conflict
from onetrip.money import split_by_bps
from onetrip.pdf import CID_FALLBACK_FONT, FontInUse, cjk_font_in_use
from payments.booking import shares
from payments.models import Department, Payment, Receipt, Refund
from payments.queries import get_readable_payment
from payments.states import REFUND_SUCCEEDED, SUCCEEDED
from payments.views import payment_urls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrawnReceipt:
    """A receipt drawn and not kept yet, with what it was drawn from."""

    payment_id: str
    pdf: bytes
    version: int
    font: FontInUse
    refund_ids: list[str]


def has_receipt(payment: Payment) -> bool:
    """True when the payment has (or will have, once drawn) a receipt: it succeeded."""
    return payment.status == SUCCEEDED


async def succeeded_refunds(session: AsyncSession, payment_id: str) -> list[Refund]:
    """The payment's refunds that were paid back and not returned, oldest first."""
    stmt = (
        select(Refund)
        .where(Refund.payment_id == payment_id, Refund.status == REFUND_SUCCEEDED)
        .order_by(Refund.updated_at, Refund.id)
    )
    return list((await session.execute(stmt)).scalars())


async def receipt_data(
    session: AsyncSession,
    payment: Payment,
    *,
    refunds: list[Refund] | None = None,
    version: int = 1,
    issued_at: datetime | None = None,
) -> Any:
    """What the receipt of `payment` shows, with the departments' names and its refunds
    (`refunds`: the succeeded ones, read when not given)."""
    if refunds is None:
        refunds = await succeeded_refunds(session, payment.id)
    names = await _department_names(session, payment)
    return _receipt_data(payment, refunds, names, version=version, issued_at=issued_at)


async def _department_names(executor: Any, payment: Any) -> dict[str, str]:
    """The names of the payment's department and of those sharing its fee (`executor`:
    a session or a connection: the statement is Core)."""
    codes = {payment.department, *(department for department, _ in shares(payment))}
    rows = await executor.execute(
        select(Department.code, Department.name).where(Department.code.in_(codes))
    )
    return {code: name for code, name in rows.all()}


def _receipt_data(
    payment: Any,
    refunds: list[Any],
    names: dict[str, str],
    *,
    version: int,
    issued_at: datetime | None,
) -> Any:
    from payments.receipt import ReceiptData

    listed = [(refund.updated_at, refund.amount) for refund in refunds]
    if sum(amount for _, amount in listed) != payment.amount_refunded:
        # Never print a list that does not add up to the total: the total alone then.
        log.warning("payment %s: refunds do not add up to amount_refunded", payment.id)
        listed = []
    split = shares(payment)
    paid = payment.amount if payment.amount_received is None else payment.amount_received
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
        refunds=listed,
        version=version,
        issued_at=issued_at if version > 1 else None,
    )


def drawn_embedded(receipt: Receipt) -> bool:
    """Whether the kept receipt's Chinese font was embedded. Receipts kept before fonts
    were recorded are read: the fallback CID font appears by name in the PDF."""
    if receipt.font_embedded is not None:
        return receipt.font_embedded
    return f"/{CID_FALLBACK_FONT}".encode() not in receipt.content


def is_stale(receipt: Receipt, refund_ids: list[str], font: FontInUse) -> bool:
    """True when the kept receipt no longer shows the truth: other refunds than
    `refund_ids` (the succeeded ones now), or the fallback font while `font`, the one in
    use now, is embedded."""
    if font.embedded and not drawn_embedded(receipt):
        return True
    if receipt.refund_ids is None:  # kept before refunds were recorded
        return bool(refund_ids)
    return list(receipt.refund_ids) != refund_ids


async def _draw(session: AsyncSession, payment: Payment, kept: Receipt | None) -> DrawnReceipt:
    """Draw the receipt `payment` should have now: version 1, or the one after `kept`."""
    from payments.receipt import render_receipt as render

    refunds = await succeeded_refunds(session, payment.id)
    version = 1 if kept is None else kept.version + 1
    data = await receipt_data(
        session, payment, refunds=refunds, version=version, issued_at=utcnow()
    )
    font = cjk_font_in_use()  # the font `render` draws with
    return DrawnReceipt(
        payment_id=payment.id,
        pdf=render(data),
        version=version,
        font=font,
        refund_ids=[refund.id for refund in refunds],
    )


async def store_receipt(session: AsyncSession, drawn: DrawnReceipt) -> bool:
    """Keep `drawn` in the caller's unit of work: as the first receipt, or in place of
    the version before it. False when another got there first (a receipt kept already,
    or the previous version replaced meanwhile): that one stands."""
    values = {
        "content": drawn.pdf,
        "rendered_at": utcnow(),
        "version": drawn.version,
        "font": drawn.font.label,
        "font_embedded": drawn.font.embedded,
        "refund_ids": drawn.refund_ids,
    }
    if drawn.version == 1:
        stmt = insert_ignoring_conflicts(session, Receipt.__table__, ["payment_id"]).values(
            payment_id=drawn.payment_id, note=None, **values
        )
    else:
        stmt = (
            update(Receipt)
            .where(Receipt.payment_id == drawn.payment_id, Receipt.version == drawn.version - 1)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    return bool((await session.execute(stmt)).rowcount)


async def current_receipt(session: AsyncSession, payment: Payment) -> bytes:
    """The PDF of `payment`'s receipt as it should be now (see the module docstring):
    the kept one, or one drawn now and kept in `session` (the caller's unit of work
    commits it; the number stays, the version goes up). Raises Conflict
    `payment_not_succeeded` when the payment has no receipt (see `has_receipt`)."""
    if not has_receipt(payment):
        raise Conflict(
            "the receipt exists once the payment has succeeded", code="payment_not_succeeded"
        )
    kept = await session.get(Receipt, payment.id)
    if kept is not None:
        refund_ids = [refund.id for refund in await succeeded_refunds(session, payment.id)]
        if not is_stale(kept, refund_ids, cjk_font_in_use()):
            return kept.content
    drawn = await _draw(session, payment, kept)
    await store_receipt(session, drawn)
    return drawn.pdf


async def redraw_if_stale(payment_id: str) -> DrawnReceipt | None:
    """The receipt a succeeded payment should have now, drawn, when it has none kept or
    the kept one is stale; else None. Writes nothing (a consumer's `prepare`)."""
    async with get_database().session() as session:
        payment = await session.get(Payment, payment_id)
        if payment is None or not has_receipt(payment):
            return None
        kept = await session.get(Receipt, payment_id)
        if kept is not None:
            refund_ids = [refund.id for refund in await succeeded_refunds(session, payment_id)]
            if not is_stale(kept, refund_ids, cjk_font_in_use()):
                return None
        return await _draw(session, payment, kept)


async def render_receipt(payment_id: str) -> bool:
    """Render and keep the receipt of a succeeded payment; False if it already exists."""
    drawn = await draw_receipt(payment_id)
    if drawn is None:
        return False
    async with unit_of_work() as session:
        return await keep_receipt(session, drawn)


async def draw_receipt(payment_id: str) -> DrawnReceipt | None:
    """The first receipt of a succeeded payment that has none kept yet, else None.
    Writes nothing, and draws outside any unit of work: no lock is held while we draw."""
    payments = Payment.__table__
    kept = exists().where(Receipt.__table__.c.payment_id == payments.c.id)
    refunds = Refund.__table__.c
    async with reading() as connection:  # Core reads, three statements, no transaction
        payment = (
            await connection.execute(
                select(payments, kept.label("receipt_kept")).where(payments.c.id == payment_id)
            )
        ).first()
        if payment is None or payment.receipt_kept or not has_receipt(payment):
            return None
        succeeded = (
            await connection.execute(
                select(Refund.__table__)
                .where(refunds.payment_id == payment_id, refunds.status == REFUND_SUCCEEDED)
                .order_by(refunds.updated_at, refunds.id)
            )
        ).all()
        names = await _department_names(connection, payment)
    from payments.receipt import render_receipt as render

    data = _receipt_data(payment, list(succeeded), names, version=1, issued_at=utcnow())
    font = cjk_font_in_use()  # the font `render` draws with
    return DrawnReceipt(
        payment_id=payment.id,
        pdf=render(data),
        version=1,
        font=font,
        refund_ids=[refund.id for refund in succeeded],
    )


async def keep_receipt(session: AsyncSession, drawn: DrawnReceipt) -> bool:
    """Keep a first receipt in the caller's unit of work; False if one was kept already
    (the first one stands; later versions come from `store_receipt`)."""
    if drawn.version != 1:
        raise ValueError("keep_receipt keeps a first receipt; use store_receipt")
    return await store_receipt(session, drawn)


async def receipt_pdf(principal: Principal, payment_id: str) -> bytes:
    """The current receipt PDF of a succeeded payment the key may see (rendered, or
    re-issued, now if it is missing or stale)."""
    async with unit_of_work() as session:
        payment = await get_readable_payment(session, principal, payment_id)
        return await current_receipt(session, payment)
