"""The service's own Prometheus metrics (HTTP metrics come from Litestar's middleware).

With several API processes set PROMETHEUS_MULTIPROC_DIR to a shared empty folder, as
prometheus-client's multiprocess mode requires; /metrics then sums every process.
"""

from __future__ import annotations

from prometheus_client import Counter

payments_created = Counter("onetrip_payments_created_total", "Payments created", ["department"])
payment_transitions = Counter(
    "onetrip_payment_transitions_total", "Payment status changes", ["status", "gateway"]
)
refunds_settled = Counter("onetrip_refunds_total", "Refunds settled", ["status"])
outbox_published = Counter(
    "onetrip_outbox_events_published_total", "Outbox events handed to the broker", ["type"]
)
webhooks_received = Counter(
    "onetrip_stripe_webhooks_total", "Stripe webhook events received", ["outcome"]
)
events_abandoned = Counter(
    "onetrip_events_abandoned_total",
    "Events a consumer never applied, no longer sent again (onetrip.consumers.report_abandoned)",
    ["consumer"],
)
