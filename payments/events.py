"""The events payments emits (the outbox's `data`), declared once, built in one place.

They become a public contract once department webhooks carry them: fields are only
ever added. A field that does not apply to an event is left out (UNSET), never sent as
null; a field that applies but has no value (a refund's `failure_reason`) is null.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

from payments.models import Payment, Refund


class AmountMismatch(Struct):
    """What the gateway took against the fee, when they differ (in amount or currency)."""

    received: int
    expected: int
    received_currency: str | UnsetType = UNSET
    expected_currency: str | UnsetType = UNSET


class PaymentEvent(Struct):
    """payment.created, payment.started, payment.succeeded, payment.failed, …"""

    payment_id: str
    department: str
    matter_code: str
    reference: str
    amount: int
    currency: str
    status: str
    gateway: str | None
    #: on every transition (not on payment.created)
    previous_status: str | UnsetType = UNSET
    #: what the gateway or the counter told us about the move, when it said anything
    stripe_payment_intent: str | UnsetType | None = UNSET
    amount_mismatch: AmountMismatch | UnsetType = UNSET
    card: str | UnsetType = UNSET
    source: str | UnsetType = UNSET
    counter: dict[str, Any] | UnsetType = UNSET


class PaymentDetail(Struct):
    """The optional part of a transition's event, as its cause reported it."""

    stripe_payment_intent: str | UnsetType | None = UNSET
    amount_mismatch: AmountMismatch | UnsetType = UNSET
    card: str | UnsetType = UNSET
    source: str | UnsetType = UNSET
    counter: dict[str, Any] | UnsetType = UNSET


class RefundEvent(Struct):
    """refund.created, refund.succeeded, refund.failed."""

    refund_id: str
    payment_id: str
    amount: int
    currency: str
    #: once settled: the payment's refund totals after this refund
    amount_refunded: int | UnsetType = UNSET
    refund_status: str | UnsetType = UNSET
    failure_reason: str | UnsetType | None = UNSET


def payment_created(values: dict[str, Any]) -> PaymentEvent:
    """payment.created, from the values of the row being inserted."""
    return PaymentEvent(
        payment_id=values["id"],
        department=values["department"],
        matter_code=values["matter_code"],
        reference=values["reference"],
        amount=values["amount"],
        currency=values["currency"],
        status=values["status"],
        gateway=values["gateway"],
    )


def payment_moved(
    payment: Payment, previous: str, detail: PaymentDetail | None = None
) -> PaymentEvent:
    """The event of a payment's transition from `previous` to its status now."""
    extra = detail or PaymentDetail()
    return PaymentEvent(
        payment_id=payment.id,
        department=payment.department,
        matter_code=payment.matter_code,
        reference=payment.reference,
        amount=payment.amount,
        currency=payment.currency,
        status=payment.status,
        gateway=payment.gateway,
        previous_status=previous,
        stripe_payment_intent=extra.stripe_payment_intent,
        amount_mismatch=extra.amount_mismatch,
        card=extra.card,
        source=extra.source,
        counter=extra.counter,
    )


def refund_created(refund: Refund) -> RefundEvent:
    return RefundEvent(
        refund_id=refund.id,
        payment_id=refund.payment_id,
        amount=refund.amount,
        currency=refund.currency,
    )


def refund_settled(refund: Refund, payment: Payment) -> RefundEvent:
    """refund.succeeded or refund.failed, with the payment's totals after it."""
    return RefundEvent(
        refund_id=refund.id,
        payment_id=payment.id,
        amount=refund.amount,
        currency=refund.currency,
        amount_refunded=payment.amount_refunded,
        refund_status=payment.refund_status,
        failure_reason=refund.failure_reason,
    )


def as_data(event: Struct) -> dict[str, Any]:
    """The event as the outbox stores it (UNSET fields left out)."""
    return msgspec.to_builtins(event)  # type: ignore[no-any-return]
