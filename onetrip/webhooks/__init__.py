"""Outgoing webhooks, built once for every domain that pushes events to a partner
(courier pushes in delivery, department endpoints in notifications).

Standard Webhooks signing (`signing`), a delivery per (target, event) with an attempt
log (`models`), the retry schedule of API.md (`schedule`), the SSRF guard applied again
on the resolved address at send time (`transport`), and `enqueue` / `attempt_delivery`
(`service`). Owners keep their targets current (`update_target`), stop them
(`disable_target`), retry an ended delivery by hand (`retry_delivery`) and hear every
attempt's outcome (`on_attempt`) and a 410 (`on_target_gone`). The actors live in
`onetrip.webhooks.jobs`, which the worker and the relay must load. See
docs/adr/007-outgoing-webhooks.md.
"""

from onetrip.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from onetrip.webhooks.service import (
    AttemptView,
    DeliveryNotRetryable,
    DeliveryView,
    attempt_delivery,
    disable_target,
    enqueue,
    get_delivery,
    list_deliveries,
    on_attempt,
    on_target_gone,
    queue_due,
    retry_delivery,
    update_target,
)
from onetrip.webhooks.signing import new_secret, sign, signed_headers

__all__ = [
    "AttemptView",
    "DeliveryNotRetryable",
    "DeliveryStatus",
    "DeliveryView",
    "WebhookAttempt",
    "WebhookDelivery",
    "attempt_delivery",
    "disable_target",
    "enqueue",
    "get_delivery",
    "list_deliveries",
    "new_secret",
    "on_attempt",
    "on_target_gone",
    "queue_due",
    "retry_delivery",
    "sign",
    "signed_headers",
    "update_target",
]
