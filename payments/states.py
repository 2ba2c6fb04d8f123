"""The payment and refund machines, as data, run by the kernel (onetrip/states.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from onetrip.states import Machine
from payments.models import Payment, Refund

CREATED, STARTED, SUCCEEDED, FAILED, CANCELLED, EXPIRED, NEEDS_REVIEW = (
    "created",
    "started",
    "succeeded",
    "failed",
    "cancelled",
    "expired",
    "needs_review",
)
FINAL: Final = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})
#: money was received: refunds may be made (never above what was received)
REFUNDABLE: Final = frozenset({SUCCEEDED, NEEDS_REVIEW})

#: (current status, event) → new status. Anything else is not allowed; an event that
#: led to the current status is a repeat and changes nothing (the kernel's rule).
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (CREATED, "start"): STARTED,
    (STARTED, "start"): STARTED,  # the applicant reopened the page
    # After a decline the applicant tries another card on the same payment (and the
    # same PaymentIntent) until it expires: each attempt is a start, then its outcome.
    (FAILED, "start"): STARTED,
    (CREATED, "succeed"): SUCCEEDED,  # taken at a counter
    (STARTED, "succeed"): SUCCEEDED,
    # The gateway's word that money moved always wins: a card may be retried on the
    # same PaymentIntent after a decline, or succeed just as we expired it. The books
    # must show the money; a department can refund it.
    (FAILED, "succeed"): SUCCEEDED,
    (EXPIRED, "succeed"): SUCCEEDED,
    (CANCELLED, "succeed"): SUCCEEDED,
    (STARTED, "fail"): FAILED,
    (CREATED, "cancel"): CANCELLED,
    (STARTED, "cancel"): CANCELLED,
    # A department may close a declined payment so the card cannot be retried on it.
    (FAILED, "cancel"): CANCELLED,
    (CREATED, "expire"): EXPIRED,
    (STARTED, "expire"): EXPIRED,
    # A declined payment's PaymentIntent stays open for a retry until its time is up;
    # then the sweep closes it at Stripe and the payment expires.
    (FAILED, "expire"): EXPIRED,
    # The gateway took money that differs from the fee (amount or currency): from
    # wherever `succeed` could have come, it waits for a person instead. It leaves
    # review only when an admin accepts what was received (a department may refund it
    # meanwhile; the status stays, refund_status tells).
    **{(state, "review"): NEEDS_REVIEW for state in (CREATED, STARTED, FAILED, EXPIRED)},
    (CANCELLED, "review"): NEEDS_REVIEW,
    (NEEDS_REVIEW, "accept"): SUCCEEDED,
}

#: the outbox event each transition emits (payment.created is written at creation)
EVENT_TYPES: Final[dict[str, str]] = {
    STARTED: "payment.started",
    SUCCEEDED: "payment.succeeded",
    FAILED: "payment.failed",
    CANCELLED: "payment.cancelled",
    EXPIRED: "payment.expired",
    NEEDS_REVIEW: "payment.needs_review",
}


def _payment_routing(payment: Payment) -> Mapping[str, str | None]:
    return {"payment_id": payment.id, "department": payment.department}


PAYMENT_MACHINE: Final = Machine(
    name="payment",
    model=Payment,
    transitions=TRANSITIONS,
    emits=EVENT_TYPES,
    routing=_payment_routing,
)

REFUND_PENDING, REFUND_SUCCEEDED, REFUND_FAILED = "pending", "succeeded", "failed"

#: A refund waits for the gateway's answer. One it reported paid can still fail later
#: (the bank returned it): that move is the undo, booked as a reversal by the service.
REFUND_TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (REFUND_PENDING, "succeed"): REFUND_SUCCEEDED,
    (REFUND_PENDING, "fail"): REFUND_FAILED,
    (REFUND_SUCCEEDED, "fail"): REFUND_FAILED,
}

REFUND_EVENT_TYPES: Final[dict[str, str]] = {
    REFUND_SUCCEEDED: "refund.succeeded",
    REFUND_FAILED: "refund.failed",
}


def _refund_routing(refund: Refund) -> Mapping[str, str | None]:
    return {"payment_id": refund.payment_id, "department": refund.department}


REFUND_MACHINE: Final = Machine(
    name="refund",
    model=Refund,
    transitions=REFUND_TRANSITIONS,
    emits=REFUND_EVENT_TYPES,
    routing=_refund_routing,
)


def next_status(current: str, event: str) -> str | None:
    """The payment status `event` leads to from `current`, or None if not allowed."""
    return PAYMENT_MACHINE.target(current, event)
