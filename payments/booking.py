"""The ledger postings of payments and refunds, in the caller's unit of work."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ledger import service as ledger
from onetrip.money import split_by_bps
from payments.gateways import gateway_named
from payments.models import Payment, Refund


def shares(payment: Payment) -> list[tuple[str, int]]:
    """The payment's fee split as (department, basis points), as snapshotted."""
    return [(s["department"], int(s["share_bps"])) for s in payment.fee_split]


def _clearing_account(payment: Payment) -> str:
    return gateway_named(payment.gateway or "sandbox").clearing_account


async def book_payment(
    session: AsyncSession, payment: Payment, received: int | None = None
) -> None:
    """Book the fee to its departments against the gateway's clearing account. If the
    gateway took another amount than the fee (it should never), the clearing account
    gets what was really taken and the difference waits in suspense for finance."""
    received = payment.amount if received is None else received
    lines = []
    if received:
        lines.append(ledger.Line(_clearing_account(payment), received, payment.currency))
    if received != payment.amount:
        lines.append(ledger.Line(ledger.SUSPENSE, payment.amount - received, payment.currency))
    for department, part in split_by_bps(payment.amount, shares(payment)):
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


async def book_refund(session: AsyncSession, payment: Payment, refund: Refund) -> None:
    """The reversal of a refund's share of the payment. Shares are taken cumulatively
    (what all refunds so far owe minus what earlier ones took), so partial refunds that
    add up to the whole reverse the payment's split exactly, fen for fen."""
    split = shares(payment)
    before = dict(split_by_bps(payment.amount_refunded, split))
    after = dict(split_by_bps(payment.amount_refunded + refund.amount, split))
    lines = [ledger.Line(_clearing_account(payment), -refund.amount, refund.currency)]
    for department, _ in split:
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


async def unbook_refund(session: AsyncSession, payment: Payment, refund: Refund) -> None:
    """Reverse a paid refund's posting: the gateway reported it failed after all."""
    booked = await ledger.transaction_for_key(session, f"refund:{refund.id}")
    await ledger.reverse_transaction(
        session,
        booked.id,
        idempotency_key=f"refund:{refund.id}:failed",
        description=f"Refund {refund.id} of {payment.id} failed after it was paid",
    )
