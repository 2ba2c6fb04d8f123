"""The outbox: domain events committed with the change that caused them.

A service calls `record_event` inside its unit of work; the relay publishes committed,
unpublished events to Dramatiq, one message per subscribed actor. Rows are kept after
publishing: they are the timeline of each payment (`GET /payments/{id}/events`) and the
ids department webhooks carry. Consumers deduplicate with `first_consumption`, inside
the same transaction as their effect, because a relay crash after publishing and before
marking sends the event again: declare them with `onetrip.consumers.consumes`, which
does both, rather than with `subscribe` by hand.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from onetrip import metrics
from onetrip.clock import utcnow
from onetrip.db import Base, UTCDateTime, get_database, insert_ignoring_conflicts
from onetrip.ids import new_id

log = logging.getLogger(__name__)


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[str | None] = mapped_column(String(40))
    department: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_outbox_events_payment", "payment_id", "id"),
        Index("ix_outbox_events_unpublished", "published_at", "id"),
    )


class ConsumedEvent(Base):
    """Which consumer has already applied which event (idempotent consumers)."""

    __tablename__ = "consumed_events"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    consumed_at: Mapped[datetime] = mapped_column(UTCDateTime)


def event_values(
    type: str,
    data: dict[str, Any],
    *,
    payment_id: str | None = None,
    subject_id: str | None = None,
    department: str | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id("evt"),
        "type": type,
        "payment_id": payment_id,
        "subject_id": subject_id,
        "department": department,
        "data": data,
        "occurred_at": occurred_at or utcnow(),
        "published_at": None,
    }


async def record_event(session: AsyncSession, type: str, data: dict[str, Any], **kw: Any) -> str:
    """Add an event to the caller's transaction; returns its id."""
    values = event_values(type, data, **kw)
    await session.execute(OutboxEvent.__table__.insert().values(values))
    return values["id"]


async def record_events(session: AsyncSession, events: list[dict[str, Any]]) -> list[str]:
    """Add several events (`event_values`) to the caller's transaction in one statement
    (SQLAlchemy's cached insert, the rows as parameters); returns their ids."""
    if events:
        await session.execute(OutboxEvent.__table__.insert(), events)
    return [values["id"] for values in events]


async def first_consumption(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """True the first time `consumer` sees `event_id` (in this transaction's view)."""
    return bool(await first_consumptions(session, consumer, [event_id]))


async def first_consumptions(
    session: AsyncSession, consumer: str, event_ids: list[str]
) -> set[str]:
    """The ids among `event_ids` that `consumer` sees for the first time, marked now in
    one statement (in id order, so two transactions marking overlapping sets wait for
    each other rather than deadlock)."""
    if not event_ids:
        return set()
    now = utcnow()
    table = ConsumedEvent.__table__
    # Rows as parameters of one cached statement (SQLAlchemy packs them into multi-row
    # INSERTs); `.values([...])` would be compiled anew for every call.
    stmt = insert_ignoring_conflicts(session, table, ["consumer", "event_id"]).returning(
        table.c.event_id
    )
    rows = [
        {"consumer": consumer, "event_id": event_id, "consumed_at": now}
        for event_id in sorted(set(event_ids))
    ]
    return set((await session.execute(stmt, rows)).scalars())


# --- subscriptions: which actors hear which event types -----------------------------

Publisher = Callable[[str, dict[str, Any]], None]
_subscribers: dict[str, list[Any]] = defaultdict(list)
#: Actors that take several events in one message (`events=[...]`): `@consumes` ones.
_batched: set[Any] = set()
#: At most this many events in one message to one actor. A relay pass splits an actor's
#: events into at least BATCH_SPREAD messages (when it has that many), so two worker
#: processes still share them; more would leave few batches at a trickle of events.
BATCH_MAX = 20
BATCH_SPREAD = 2


def subscribe(*event_types: str, batches: bool = False) -> Callable[[Any], Any]:
    """Decorator for Dramatiq actors: send them `(event_id, event)` for these types; with
    `batches=True`, a relay pass sends them its events of those types together as
    `events=[event, ...]` (oldest first), and a single event as `(event_id, event)`."""

    def register(actor: Any) -> Any:
        for event_type in event_types:
            if actor not in _subscribers[event_type]:
                _subscribers[event_type].append(actor)
        if batches:
            _batched.add(actor)
        return actor

    return register


def batches_of(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """`messages` cut into consecutive batches of at most BATCH_MAX, at least
    BATCH_SPREAD of them when there are as many messages."""
    size = min(BATCH_MAX, max(1, -(-len(messages) // BATCH_SPREAD)))
    return [messages[i : i + size] for i in range(0, len(messages), size)]


def send_events(actor: Any, messages: list[dict[str, Any]]) -> None:
    """Send `messages` to one actor: in batches if it takes them, else one by one."""
    if actor not in _batched:
        for message in messages:
            actor.send(message["id"], message)
        return
    for batch in batches_of(messages):
        if len(batch) == 1:
            actor.send(batch[0]["id"], batch[0])
        else:
            actor.send_with_options(kwargs={"events": batch})


def subscribers(event_type: str) -> list[Any]:
    return list(_subscribers.get(event_type, ()))


def as_message(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "payment_id": row.payment_id,
        "subject_id": row.subject_id,
        "department": row.department,
        "data": row.data,
        "occurred_at": row.occurred_at.isoformat() if row.occurred_at else None,
    }


async def relay_batch(limit: int = 200) -> int:
    """Publish one batch of committed, unpublished events; returns how many.

    On PostgreSQL concurrent relays skip each other's rows (FOR UPDATE SKIP LOCKED), so
    relays scale out; on SQLite BEGIN IMMEDIATE already serialises them.
    """
    database = get_database()
    table = OutboxEvent.__table__
    async with database.session() as session, session.begin():
        stmt = (
            select(table)
            .where(table.c.published_at.is_(None))
            .order_by(table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (await session.execute(stmt)).all()
        if not rows:
            return 0
        # One message per (actor, batch of its events), not per (actor, event): a
        # message costs the relay a publish and a worker a delivery, an acknowledgement
        # and, for a consumer, a unit of work (issue 8: ~15 events' copies a paid matter).
        by_actor: dict[Any, list[dict[str, Any]]] = {}
        for row in rows:
            message = as_message(row)
            for actor in subscribers(row.type):
                by_actor.setdefault(actor, []).append(message)
            metrics.outbox_published.labels(row.type).inc()
        for actor, messages in by_actor.items():
            send_events(actor, messages)
        await session.execute(
            update(table).where(table.c.id.in_([r.id for r in rows])).values(published_at=utcnow())
        )
    return len(rows)
