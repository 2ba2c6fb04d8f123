"""Notifications' actors: thin; the service decides what to create, what is due, and
how an attempt's outcome is recorded.

The queue "notifications" runs at a lower priority (Dramatiq: a higher number) than
payments' and delivery's steps, and than the drawing of receipts and licences, so a
backlog of emails never slows printing and dispatch on a worker that consumes every
queue.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from notifications import service, triggers
from onetrip.consumers import Event, consumes
from onetrip.jobs import actor
from onetrip.scheduler import periodic

QUEUE = "notifications"
PRIORITY = 20


@consumes(
    *triggers.EVENT_TYPES,
    consumer="notifications.applicant",
    queue=QUEUE,
    priority=PRIORITY,
)
async def notify_applicant(session: AsyncSession, event: Event) -> None:
    """Create the applicant's notifications of a trigger's event, once."""
    await service.notify_applicant(session, event)


@actor(QUEUE, max_retries=0, priority=PRIORITY)  # the retry schedule is the service's
async def send_notification(notification_id: str) -> None:
    """Make the due attempt of one notification (a no-op if it is not due any more)."""
    await service.attempt_notification(notification_id)


# Every second: the first attempt follows the creating commit within a second or two.
@periodic(1.0)
@actor(QUEUE, max_retries=0, priority=PRIORITY)
async def send_due_notifications() -> None:
    """Hand every due notification (first attempts, retries, lost or crashed ones) to a
    worker."""
    for notification_id in await service.queue_due():
        send_notification.send(notification_id)
