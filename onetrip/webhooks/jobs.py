"""The kernel's webhook actors: thin; `service` decides what is due and who sends it.

Loaded with the domains' job modules (by the worker, the relay and the embedded
runtime): the sweep is a periodic job the relay sends, the send actor runs on workers.
"""

from __future__ import annotations

from onetrip.jobs import actor
from onetrip.scheduler import periodic
from onetrip.webhooks import service

QUEUE = "webhooks"


@actor(QUEUE, max_retries=0)  # the retry schedule is the delivery's, not Dramatiq's
async def send_webhook(delivery_id: str) -> None:
    """Make the due attempt of one delivery (a no-op if it is not due any more)."""
    await service.attempt_delivery(delivery_id)


# Every second: the first attempt follows the enqueueing commit within a second or two.
@periodic(1.0)
@actor(QUEUE, max_retries=0)
async def send_due_webhooks() -> None:
    """Hand every due delivery (first attempts, retries, lost or crashed ones) to a worker."""
    for delivery_id in await service.queue_due():
        send_webhook.send(delivery_id)
