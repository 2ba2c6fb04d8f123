"""The ledger postings of payments and refunds, in the caller's unit of work."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ledger import service as ledger
from onetrip.clock import utcnow
from onetrip.money import split_by_bps
from payments.gateways import gateway_named
from payments.models import Payment, Refund
from payments.states import NEEDS_REVIEW


def shares(payment: Payment) -> list[tuple[str, int]]:
    """The payment's fee split as (department, basis points), as snapshotted."""
    return [(s["department"], int(s["share_bps"])) for s in payment.fee_split]


def _clearing_account(payment: Payment) -> str:
    return gateway_named(payment.gateway or "sandbox").clearing_account


async def _booked_at(
    session: AsyncSession, payment: Payment, moment: datetime, metadata: dict[str, str]
) -> datetime:
    """When the payment's own posting is effective: when it happened, unless that lies
    in a closed period of one of its departments (a webhook that came after the day
    was closed): then the first open moment, with when it happened in the metadata."""
    departments = [department for department, _ in shares(payment)] + [payment.department]
    at = await ledger.first_open_moment(session, departments, moment)
    if at != moment:
        metadata["occurred_at"] = moment.isoformat()
    return at


def _metadata(payment: Payment, kind: str) -> dict[str, str]:
    return {
        "payment_id": payment.id,
        "department": payment.department,
        "kind": kind,
        "matter_code": payment.matter_code,  # issue 10: settlement report by matter
        "matter_name": payment.matter_name,  # its name as the applicant paid for it
    }


def _department_lines(payment: Payment, parts: list[tuple[str, int]]) -> list[ledger.Line]:
    return [
        ledger.Line(ledger.department_fees_account(department), part, payment.currency)
        for department, part in parts
        if part
    ]


def received_matches(payment: Payment) -> bool:
    """The gateway took exactly the fee, in the fee's currency."""
    return (
        payment.amount_received == payment.amount and payment.received_currency == payment.currency
    )


async def book_payment(session: AsyncSession, payment: Payment) -> None:
    """Book what the gateway took (`amount_received`, set by the caller) against its
    clearing account. The fee goes to its departments by the fee split; money that
    differs from the fee (amount or currency) waits in suspense, in the currency it came
    in, until a department refunds it or an admin accepts it (`book_acceptance`)."""
    received, currency = payment.amount_received, payment.received_currency
    if received is None or received < 0 or currency is None:
        # Never book a guess: the caller refuses such an event before it gets here.
        raise ValueError(f"payment {payment.id}: no amount received to book")
    if not received:
        return  # nothing moved (a 0 "success" still needs review), nothing to book
    clearing = ledger.Line(_clearing_account(payment), received, currency)
    if received_matches(payment):
        kind, key = "payment", f"payment:{payment.id}:succeeded"
        lines = [
            clearing,
            *_department_lines(payment, _negated(split_by_bps(received, shares(payment)))),
        ]
    else:
        kind, key = "payment_in_review", f"payment:{payment.id}:received"
        if currency != payment.currency:
            # Money in another currency is not ours to convert: it is shown as it is,
            # in that currency's clearing and suspense, and no department is booked.
            await ledger.ensure_platform_accounts(session, currency)
        lines = [clearing, ledger.Line(ledger.SUSPENSE, -received, currency)]
    metadata = _metadata(payment, kind)
    await ledger.post_transaction(
        session,
        idempotency_key=key,
        description=f"{payment.matter_name} {payment.reference} ({payment.id})",
        lines=lines,
        effective_at=await _booked_at(
            session, payment, payment.succeeded_at or payment.updated_at, metadata
        ),
        metadata=metadata,
    )


def _negated(parts: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(department, -part) for department, part in parts]


async def book_acceptance(session: AsyncSession, payment: Payment) -> None:
    """An admin accepted what a payment in review received: what is left of it in
    suspense (received − refunded) goes to the departments by the fee split. Each
    department's part is its share of what was received minus its share of what was
    refunded, the same cumulative rule `book_refund` follows, so refunds made before
    and after the acceptance add up to the departments' split exactly."""
    received = payment.amount_received or 0
    left = received - payment.amount_refunded
    if left <= 0:
        return
    split = shares(payment)
    paid = dict(split_by_bps(received, split))
    refunded = dict(split_by_bps(payment.amount_refunded, split))
    parts = [(department, refunded[department] - paid[department]) for department, _ in split]
    metadata = _metadata(payment, "payment_accepted")
    await ledger.post_transaction(
        session,
        idempotency_key=f"payment:{payment.id}:accepted",
        description=f"Accepted {payment.matter_name} {payment.reference} ({payment.id})",
        lines=[
            ledger.Line(ledger.SUSPENSE, left, payment.currency),
            *_department_lines(payment, parts),
        ],
        effective_at=await _booked_at(session, payment, payment.succeeded_at or utcnow(), metadata),
        metadata=metadata,
    )


async def book_refund(session: AsyncSession, payment: Payment, refund: Refund) -> None:
    """The reversal of a refund's share of the payment. Shares are taken cumulatively
    (what all refunds so far owe minus what earlier ones took), so partial refunds that
    add up to the whole reverse the payment's split exactly, fen for fen. A refund of a
    payment still in review gives back money that waits in suspense."""
    if payment.status == NEEDS_REVIEW:
        await ledger.post_transaction(
            session,
            idempotency_key=f"refund:{refund.id}",
            description=f"Refund {refund.id} of {payment.id} (in review)",
            lines=[
                ledger.Line(_clearing_account(payment), -refund.amount, refund.currency),
                ledger.Line(ledger.SUSPENSE, refund.amount, refund.currency),
            ],
            metadata={**_metadata(payment, "refund"), "refund_id": refund.id},
        )
        return
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
    """Reverse a paid refund's posting: the gateway reported it failed after all. Call
    it before the payment's refund total is lowered by this refund."""
    booked = await ledger.transaction_for_key(session, f"refund:{refund.id}")
    await ledger.reverse_transaction(
        session,
        booked.id,
        idempotency_key=f"refund:{refund.id}:failed",
        description=f"Refund {refund.id} of {payment.id} failed after it was paid",
    )
    from_suspense = any(entry.account_code == ledger.SUSPENSE for entry in booked.entries)
    if from_suspense and payment.status != NEEDS_REVIEW:
        # Given back out of suspense while in review; since then an admin accepted the
        # payment and the rest went to the departments: the money back goes there too.
        split = shares(payment)
        before = dict(split_by_bps(payment.amount_refunded, split))
        after = dict(split_by_bps(payment.amount_refunded - refund.amount, split))
        parts = [(department, after[department] - before[department]) for department, _ in split]
        await ledger.post_transaction(
            session,
            idempotency_key=f"refund:{refund.id}:failed:accepted",
            description=f"Refund {refund.id} of accepted {payment.id} came back",
            lines=[
                ledger.Line(ledger.SUSPENSE, refund.amount, refund.currency),
                *_department_lines(payment, parts),
            ],
            metadata={**_metadata(payment, "refund_returned"), "refund_id": refund.id},
        )
