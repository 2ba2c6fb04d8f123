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

The relay hands a consumer the events of one pass together (up to
`outbox.BATCH_MAX` in one message): they are applied in one unit of work, one mark
statement for all, in event order; the handler still sees one event at a time. If that
unit of work fails, each event is applied again in a unit of work of its own, and one
that fails alone is sent again on its own, with the actor's retries: one bad event
never holds back the others, nor has its effect without its mark.

Every event a consumer subscribes to must end with its mark. One that has none a while
after it was published was lost on the way (a broker that dropped the message, a worker
killed holding it, retries exhausted): `resend_unconsumed`, run by the relay every
minute, sends it again to that consumer only — for RESEND_WITHIN (a day). An event
still without its mark then is given up: `report_abandoned`, run by the relay after each
pass, logs each one as an error and counts it (`onetrip_events_abandoned_total`), so
an operator learns what no sweep will send again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import dramatiq
import msgspec
from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.jobs import actor
from onetrip.metrics import events_abandoned
from onetrip.outbox import (
    ConsumedEvent,
    OutboxEvent,
    as_message,
    first_consumption,
    first_consumptions,
    subscribe,
)

log = logging.getLogger(__name__)

CONSUMER_NAME_MAX = 64  # consumed_events.consumer

#: An event published this long ago without its consumer's mark is taken as lost. Longer
#: than a message normally waits in a queue; a copy sent too early costs one cheap read.
RESEND_AFTER = timedelta(seconds=60)
#: Older events are not looked at: the query stays a short range of the published_at
#: index, and a consumer added later is not handed the whole history.
RESEND_WITHIN = timedelta(hours=24)


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


@asynccontextmanager
async def reading() -> AsyncIterator[AsyncConnection]:
    """A connection for reads outside any unit of work (a consumer's `prepare`, a
    periodic job's look-up): Core statements, no ORM. On PostgreSQL it runs in
    autocommit, so a read costs its one round trip, without the BEGIN and ROLLBACK a
    session adds (each statement sees what is committed when it runs, as under READ
    COMMITTED). On SQLite it is an ordinary connection. Never write through it."""
    database = get_database()
    async with database.engine.connect() as connection:
        if not database.is_sqlite:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


async def already_consumed(consumer: str, event_id: str) -> bool:
    """True if `consumer` has committed its effect of `event_id` (a read, no lock)."""
    return bool(await consumed_among(consumer, [event_id]))


async def consumed_among(consumer: str, event_ids: list[str]) -> set[str]:
    """The ids among `event_ids` whose effect `consumer` has committed (one read)."""
    table = ConsumedEvent.__table__
    async with reading() as connection:
        stmt = select(table.c.event_id).where(
            table.c.consumer == consumer, table.c.event_id.in_(event_ids)
        )
        return set((await connection.execute(stmt)).scalars())


#: `handle_many(session, [(event, prepared), ...])`: a batch's events applied together
HandleMany = Callable[[Any, list[tuple[Event, Any]]], Awaitable[None]]


def consumes(
    *event_types: str,
    consumer: str,
    queue: str,
    prepare: Prepare | None = None,
    handle_many: HandleMany | None = None,
    **actor_options: Any,
) -> Callable[[Callable[..., Awaitable[None]]], dramatiq.Actor]:
    """Declare an actor that applies each event of `event_types` once for `consumer`.

    The handler is `async (session, event)`, or `async (session, event, prepared)` with
    `prepare`; it must not commit (the unit of work does, with the mark). `consumer`
    names the effect, not the function: keep it stable, since renaming it makes every
    past event look unconsumed. `actor_options` go to `onetrip.jobs.actor` (retries…).

    `handle_many(session, [(event, prepared), ...])`, if given, applies a batch's
    unconsumed events in one call (set-based: a few statements for all of them) where
    the handler would be called once per event; it must have the same effect as the
    handler called for each, in order (`prepared` is None without `prepare`). A single
    event, and each event of a batch that failed, still goes through the handler.
    """
    if not event_types:
        raise ValueError("consumes() needs at least one event type")
    if not consumer or len(consumer) > CONSUMER_NAME_MAX:
        raise ValueError(f"consumer must be 1 to {CONSUMER_NAME_MAX} characters: {consumer!r}")

    def declare(handler: Callable[..., Awaitable[None]]) -> dramatiq.Actor:
        async def apply(event: Event, arguments: tuple[Any, ...]) -> None:
            async with unit_of_work() as session:
                if await first_consumption(session, consumer, event.id):
                    await handler(session, event, *arguments)

        async def apply_batch(messages: list[dict[str, Any]]) -> None:
            events = [msgspec.convert(message, Event) for message in messages]
            failed: list[Event] = []
            ready: list[tuple[Event, tuple[Any, ...]]] = []
            if prepare is None:
                ready = [(event, ()) for event in events]
            else:
                done = await consumed_among(consumer, [event.id for event in events])
                for event in events:
                    if event.id in done:
                        continue
                    try:
                        ready.append((event, (await prepare(event),)))
                    except Exception:
                        log.exception("%s: preparing %s failed", consumer, event.id)
                        failed.append(event)
            try:
                async with unit_of_work() as session:
                    first = await first_consumptions(session, consumer, [e.id for e, _ in ready])
                    todo = [(event, arguments) for event, arguments in ready if event.id in first]
                    if handle_many is not None and len(todo) > 1:
                        await handle_many(
                            session,
                            [(event, (arguments or (None,))[0]) for event, arguments in todo],
                        )
                    else:
                        for event, arguments in todo:
                            await handler(session, event, *arguments)
                ready = []
            except Exception:
                log.warning(
                    "%s: a batch of %d events failed; applying them one by one",
                    consumer,
                    len(ready),
                    exc_info=True,
                )
            for event, arguments in ready:
                try:
                    await apply(event, arguments)
                except Exception:
                    log.exception("%s: %s failed; sent again on its own", consumer, event.id)
                    failed.append(event)
            by_id = {message["id"]: message for message in messages}
            for event in failed:  # lost if this send fails: resend_unconsumed finds it
                declared.send(event.id, by_id[event.id])

        @functools.wraps(handler)
        async def consume(
            event_id: str | None = None,
            message: dict[str, Any] | None = None,
            events: list[dict[str, Any]] | None = None,
        ) -> None:
            if events is not None:  # a relay pass's events of this consumer together
                await apply_batch(events)
                return
            assert event_id is not None and message is not None
            event = msgspec.convert(message, Event)
            arguments: tuple[Any, ...] = ()
            if prepare is not None:
                if await already_consumed(consumer, event_id):
                    return
                arguments = (await prepare(event),)
            await apply(event, arguments)

        declared = actor(queue, **actor_options)(consume)
        subscribe(*event_types, batches=True)(declared)
        _consumers[consumer] = Consumer(consumer, tuple(event_types), declared)
        return declared

    return declare


# --- events no consumer applied: sent again -------------------------------------------


@dataclass(frozen=True)
class Consumer:
    """A declared `@consumes`: its name, the event types it must apply, its actor."""

    name: str
    event_types: tuple[str, ...]
    actor: dramatiq.Actor


_consumers: dict[str, Consumer] = {}


def declared_consumers() -> list[Consumer]:
    """Every consumer declared so far (by the job modules imported in this process)."""
    return list(_consumers.values())


async def resend_unconsumed(
    *,
    after: timedelta = RESEND_AFTER,
    within: timedelta = RESEND_WITHIN,
    limit: int = 500,
) -> int:
    """Send again, to each consumer, the events of its types published between `within`
    and `after` ago that it has not applied; returns how many messages were sent.

    The copy carries `max_retries=0`: a consumer that keeps failing gets one more try
    per pass, not a new chain of retries each minute. The newest events go first, so a
    few that always fail cannot crowd out the rest.
    """
    now = utcnow()
    events = OutboxEvent.__table__
    sent = 0
    for consumer in declared_consumers():
        stmt = (
            _unapplied(consumer, select(events), now - within, now - after)
            .order_by(events.c.published_at.desc())
            .limit(limit)
        )
        async with get_database().session() as session:
            rows = (await session.execute(stmt)).all()
        for row in rows:
            consumer.actor.send_with_options(args=(row.id, as_message(row)), max_retries=0)
        if rows:
            log.warning(
                "sent %d events again to %s: not applied %ds after they were published",
                len(rows),
                consumer.name,
                after.total_seconds(),
            )
        sent += len(rows)
    return sent


def _unapplied(
    consumer: Consumer, stmt: Select[Any], start: datetime, end: datetime
) -> Select[Any]:
    """`stmt` narrowed to the consumer's events published in [start, end) that it has
    not applied (no mark)."""
    events = OutboxEvent.__table__
    marks = ConsumedEvent.__table__
    applied = exists().where(marks.c.consumer == consumer.name, marks.c.event_id == events.c.id)
    return stmt.where(
        events.c.type.in_(consumer.event_types),
        events.c.published_at >= start,
        events.c.published_at < end,
        ~applied,
    )


#: how many abandoned events' ids one error lists per consumer (the count is exact)
ABANDONED_LISTED = 20


async def report_abandoned(
    *, since: datetime, now: datetime | None = None, within: timedelta = RESEND_WITHIN
) -> int:
    """The events that left `resend_unconsumed`'s window between `since` and `now`
    (published in [since − within, now − within)) without their consumer's mark: nothing
    sends them again. Each consumer's are logged as one error, naming the first
    ABANDONED_LISTED, and counted in `onetrip_events_abandoned_total{consumer}`; returns
    how many in all. The relay passes its previous pass's time as `since`, so each event
    is reported once by a relay (two relays would each report it)."""
    now = utcnow() if now is None else now
    events = OutboxEvent.__table__
    abandoned = 0
    for consumer in declared_consumers():
        stmt = _unapplied(
            consumer, select(events.c.id, events.c.type), since - within, now - within
        ).order_by(events.c.published_at)
        async with get_database().session() as session:
            rows = (await session.execute(stmt)).all()
        if not rows:
            continue
        abandoned += len(rows)
        events_abandoned.labels(consumer=consumer.name).inc(len(rows))
        listed = ", ".join(f"{row.id} ({row.type})" for row in rows[:ABANDONED_LISTED])
        log.error(
            "%s gave up %d event(s) not applied within %d h of being published; nothing"
            " sends them again: %s%s",
            consumer.name,
            len(rows),
            within.total_seconds() // 3600,
            listed,
            "" if len(rows) <= ABANDONED_LISTED else ", …",
        )
    return abandoned
