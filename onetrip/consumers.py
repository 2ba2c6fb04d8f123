"""Event consumers that cannot forget to deduplicate: `@consumes`.

    @consumes("payment.succeeded", consumer="payments.receipt", queue="payments")
    async def on_payment_succeeded(session: AsyncSession, event: Event) -> None: ...

declares a Dramatiq actor (like `onetrip.jobs.actor`), subscribes it to the event types
(like `onetrip.outbox.subscribe`), and runs the handler inside one unit of work together
with the consumption mark (`first_consumption(consumer, event.id)`): the effect and the
mark commit together or neither does. So an event delivered twice (a relay that crashed
after publishing) has its effect once, and a handler that raises leaves no mark: the
retry runs it again.

Work that must not run inside a transaction (drawing a PDF, calling another server)
goes in `prepare=`: an async function of the event that runs first, outside any
transaction, and whose result the handler receives as a third argument. `prepare` must
change nothing itself (read, compute, draw), because it may run more than once: after a
handler failed, or when two workers take copies of the same event at once. Only the
handler's writes, committed with the mark, count. An event already consumed skips
`prepare` (one cheap read first), so a plain redelivery costs no second drawing.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import dramatiq
import msgspec
from sqlalchemy import select

from onetrip.db import get_database, unit_of_work
from onetrip.jobs import actor
from onetrip.outbox import ConsumedEvent, first_consumption, subscribe

CONSUMER_NAME_MAX = 64  # consumed_events.consumer


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An outbox event as its consumers receive it (the relay's `outbox.as_message`).

    `data` is the emitting domain's payload; a consumer converts it to that domain's
    event type (`msgspec.convert(event.data, PaymentEvent)`) when it needs more than ids.
    """

    id: str
    type: str
    data: dict[str, Any]
    occurred_at: datetime | None = None
    payment_id: str | None = None
    subject_id: str | None = None
    department: str | None = None


Prepare = Callable[[Event], Awaitable[Any]]


async def already_consumed(consumer: str, event_id: str) -> bool:
    """True if `consumer` has committed its effect of `event_id` (a read, no lock)."""
    table = ConsumedEvent.__table__
    async with get_database().session() as session:
        stmt = select(table.c.event_id).where(
            table.c.consumer == consumer, table.c.event_id == event_id
        )
        return (await session.execute(stmt)).first() is not None


def consumes(
    *event_types: str,
    consumer: str,
    queue: str,
    prepare: Prepare | None = None,
    **actor_options: Any,
) -> Callable[[Callable[..., Awaitable[None]]], dramatiq.Actor]:
    """Declare an actor that applies each event of `event_types` once for `consumer`.

    The handler is `async (session, event)`, or `async (session, event, prepared)` with
    `prepare`; it must not commit (the unit of work does, with the mark). `consumer`
    names the effect, not the function: keep it stable, since renaming it makes every
    past event look unconsumed. `actor_options` go to `onetrip.jobs.actor` (retries…).
    """
    if not event_types:
        raise ValueError("consumes() needs at least one event type")
    if not consumer or len(consumer) > CONSUMER_NAME_MAX:
        raise ValueError(f"consumer must be 1 to {CONSUMER_NAME_MAX} characters: {consumer!r}")

    def declare(handler: Callable[..., Awaitable[None]]) -> dramatiq.Actor:
        @functools.wraps(handler)
        async def consume(event_id: str, message: dict[str, Any]) -> None:
            event = msgspec.convert(message, Event)
            arguments: tuple[Any, ...] = ()
            if prepare is not None:
                if await already_consumed(consumer, event_id):
                    return
                arguments = (await prepare(event),)
            async with unit_of_work() as session:
                if await first_consumption(session, consumer, event_id):
                    await handler(session, event, *arguments)

        declared = actor(queue, **actor_options)(consume)
        subscribe(*event_types)(declared)
        return declared

    return declare
