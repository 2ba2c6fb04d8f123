"""Department webhooks' actors: thin; `service` decides what is enqueued and when an
endpoint is warned about or disabled. The kernel's webhook actors send the deliveries.

Importing this module registers the endpoints' hooks on the kernel's sender (every
attempt's outcome, a 410 Gone), so it is loaded wherever attempts are made (the worker,
the embedded runtime), as the domain's job module.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from notifications.endpoints import service
from notifications.jobs import PRIORITY, QUEUE
from onetrip import webhooks
from onetrip.consumers import Event, consumes
from onetrip.db import unit_of_work
from onetrip.jobs import actor
from onetrip.scheduler import periodic

webhooks.on_attempt(service.TARGET_PREFIX, service.record_attempt)
webhooks.on_target_gone(service.TARGET_PREFIX, service.endpoint_gone)


@consumes(
    *service.EVENT_TYPES,
    consumer="notifications.department_webhooks",
    queue=QUEUE,
    priority=PRIORITY,
)
async def send_to_department_endpoints(session: AsyncSession, event: Event) -> None:
    """Enqueue the event for each of its department's endpoints that wants it, once."""
    await service.fan_out(session, event)


# Every minute: a warning or a disabling a minute late is harmless; old secrets are
# dropped within a minute of their 24 hours.
@periodic(60.0)
@actor(QUEUE, max_retries=0, priority=PRIORITY)
async def watch_department_endpoints() -> None:
    """Drop rotated-out secrets whose time is over; warn about and disable failing
    endpoints (each idempotent: a second tick finds nothing to do)."""
    async with unit_of_work() as session:
        await service.drop_expired_secrets(session)
    async with unit_of_work() as session:
        await service.watch_failing_endpoints(session)
