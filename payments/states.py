"""The payment status machine, as data: (from, event) → to, and the event it emits."""

from __future__ import annotations

from typing import Final

CREATED, STARTED, SUCCEEDED, FAILED, CANCELLED, EXPIRED = (
    "created",
    "started",
    "succeeded",
    "failed",
    "cancelled",
    "expired",
)
FINAL: Final = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})

#: (current status, event) → new status. Anything else is not allowed.
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (CREATED, "start"): STARTED,
    (STARTED, "start"): STARTED,  # the applicant reopened the page
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
}

#: the outbox event each transition emits
EVENT_TYPES: Final[dict[str, str]] = {
    STARTED: "payment.started",
    SUCCEEDED: "payment.succeeded",
    FAILED: "payment.failed",
    CANCELLED: "payment.cancelled",
    EXPIRED: "payment.expired",
}


def next_status(current: str, event: str) -> str | None:
    return TRANSITIONS.get((current, event))
