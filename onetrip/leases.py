"""Work attempted outside any transaction, by lease: the mechanism the kernel's signed
webhooks (`onetrip.webhooks`) and the notifications share.

A work table has `id`, `status`, `attempts`, `next_attempt_at` and `queued_at`:

- the sweep (`queue_due`, every second) marks up to `limit` pending rows that are due as
  queued and returns their ids, oldest due first, for the caller to hand to workers once
  that has committed. Concurrent sweeps (several relays) take different rows
  (`SKIP LOCKED` on PostgreSQL). A row queued but never taken, because its message was
  lost, is queued again after `requeue_after`;
- a worker claims one attempt (`claim`): one conditional UPDATE that counts the attempt
  and moves `next_attempt_at` ahead by the lease, so no second worker can claim the row
  meanwhile. No lock is held while it waits on the network;
- the outcome is recorded (`still_ours`) in a second short transaction, and only while
  the claim is still the worker's: the row still pending, with the attempt count it
  claimed. A worker that died after sending leaves the row claimed. Once the lease runs
  out, the sweep hands it out again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, Update, select, update

from onetrip.clock import utcnow
from onetrip.db import unit_of_work


async def queue_due(
    table: Table, *, pending: str, requeue_after: timedelta, limit: int
) -> list[str]:
    """Mark up to `limit` due rows of `table` as queued and return their ids (see above)."""
    now = utcnow()
    c = table.c
    async with unit_of_work() as session:
        due = (
            select(c.id)
            .where(
                c.status == pending,
                c.next_attempt_at <= now,
                c.queued_at.is_(None) | (c.queued_at < now - requeue_after),
            )
            .order_by(c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await session.execute(due)).scalars())
        if ids:
            await session.execute(update(table).where(c.id.in_(ids)).values(queued_at=now))
    return ids


def claim(
    table: Table, row_id: str, *, pending: str, now: datetime, lease: timedelta, **values: Any
) -> Update:
    """The UPDATE that claims the due attempt of row `row_id` for `lease` (and sets
    `values` too); add `.returning(...)` for what the attempt needs. No row: not due, or
    another worker's."""
    c = table.c
    return (
        update(table)
        .where(c.id == row_id, c.status == pending, c.next_attempt_at <= now)
        .values(attempts=c.attempts + 1, next_attempt_at=now + lease, queued_at=None, **values)
    )


def still_ours(table: Table, row_id: str, *, pending: str, attempts: int) -> Update:
    """An UPDATE of row `row_id` that changes it only while the claim of attempt number
    `attempts` is still the caller's; add `.values(...)`. Its rowcount says whether it
    was (0: finished, or the lease ran out and another worker took it over)."""
    c = table.c
    return update(table).where(c.id == row_id, c.status == pending, c.attempts == attempts)
