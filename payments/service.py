"""Payments and refunds: the domain's public entry (the controllers, pages, jobs, the
demo, the CLI and the tests call what is exported here).

The rules live along their seams: `creation` (checked against the catalogue; the raw
create path), `lifecycle` (the payment machine: the applicant's page, cancel, counter),
`refunds` (the refund machine), `booking` (ledger postings), `sweeps` (periodic jobs),
`stripe_events` (Stripe webhooks), `receipts`, `queries`, `views` and `events`.

Functions that take a session work inside the caller's unit of work and never commit.
The few that talk to a gateway orchestrate their own short units of work around the
network call, so no database lock is held while we wait on Stripe.
"""

from __future__ import annotations

from payments.booking import book_acceptance, book_payment, book_refund, shares
from payments.creation import create_payment, create_payment_once, new_payment_values
from payments.lifecycle import (
    accept_once,
    accept_payment,
    apply_event,
    cancel_once,
    cancel_payment,
    collect_at_counter,
    release_at_gateway,
    resolve_online,
    sandbox_pay,
    start_online,
)
from payments.queries import (
    get_payment,
    get_readable_payment,
    list_payments,
    list_refunds,
    payment_by_token,
    timeline,
)
from payments.receipts import receipt_data, receipt_pdf, render_receipt
from payments.refunds import (
    STALLED_REFUND_SECONDS,
    refund_once,
    reserve_refund,
    send_refund_to_gateway,
    settle_refund,
)
from payments.stripe_events import handle_stripe_event
from payments.sweeps import expire_due_payments, poll_stuck_payments, retry_pending_refunds
from payments.views import payment_urls, payment_view, refund_view

__all__ = [
    "STALLED_REFUND_SECONDS",
    "accept_once",
    "accept_payment",
    "apply_event",
    "book_acceptance",
    "book_payment",
    "book_refund",
    "cancel_once",
    "cancel_payment",
    "collect_at_counter",
    "create_payment",
    "create_payment_once",
    "expire_due_payments",
    "get_payment",
    "get_readable_payment",
    "handle_stripe_event",
    "list_payments",
    "list_refunds",
    "new_payment_values",
    "payment_by_token",
    "payment_urls",
    "payment_view",
    "poll_stuck_payments",
    "receipt_data",
    "receipt_pdf",
    "refund_once",
    "refund_view",
    "release_at_gateway",
    "render_receipt",
    "reserve_refund",
    "resolve_online",
    "retry_pending_refunds",
    "sandbox_pay",
    "send_refund_to_gateway",
    "settle_refund",
    "shares",
    "start_online",
    "timeline",
]
