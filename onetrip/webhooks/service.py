"""Outgoing webhooks: enqueue in the caller's unit of work, attempt after commit.

A domain calls `enqueue` with its target (an opaque "prefix:id" string naming the owner,
e.g. "courier:SF" or "endpoint:whe_…"), the URL and the active secrets. The periodic
sweep (`queue_due`, every second) hands due deliveries to the send actor, which calls
`attempt_delivery`: the first attempt comes within seconds of the commit, and retries,
lost messages and crashed workers are all picked up by the same sweep.

No database lock is held while waiting on the network: an attempt is claimed by a
conditional UPDATE that moves `next_attempt_at` ahead by a lease (so no second worker
can claim it), the request is sent, and the outcome is recorded in a second short
transaction, only if the claim is still ours.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip import leases
from onetrip.clock import utcnow
from onetrip.db import insert_ignoring_conflicts, unit_of_work
from onetrip.errors import Conflict
from onetrip.ids import new_id
from onetrip.pagination import page
from onetrip.settings import get_settings
from onetrip.webhooks import transport
from onetrip.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from onetrip.webhooks.schedule import Outcome, classify, next_attempt, parse_retry_after
from onetrip.webhooks.signing import encode_body, secret_key, signed_headers

log = logging.getLogger(__name__)

DELIVERIES = WebhookDelivery.__table__
ATTEMPTS = WebhookAttempt.__table__
# A claimed attempt is the claimant's for this long beyond its timeout; after that a
# crashed worker's delivery is due again.
LEASE_MARGIN = timedelta(seconds=60)
# A delivery handed to the queue is not handed out again for this long (lost messages
# are recovered after it; a backlog does not fill the queue with duplicates).
REQUEUE_AFTER = timedelta(seconds=60)


# --- owners: who is told when a target is gone (410) ---------------------------------

TargetGone = Callable[[AsyncSession, str], Awaitable[None]]
_on_gone: dict[str, list[TargetGone]] = defaultdict(list)


def on_target_gone(prefix: str, callback: TargetGone) -> None:
    """Have `callback(session, target)` run when a target "prefix:…" answers 410 Gone.

    It runs inside the unit of work that records the attempt (the target's pending
    deliveries are disabled in it too), so the owner's reaction, e.g. disabling the
    endpoint, commits with it. Register at import time of the owner's job module.
    """
    if callback not in _on_gone[prefix]:
        _on_gone[prefix].append(callback)


def _prefix(target: str) -> str:
    return target.split(":", 1)[0]


AttemptRecorded = Callable[[AsyncSession, str, "AttemptView"], Awaitable[None]]
_on_attempt: dict[str, list[AttemptRecorded]] = defaultdict(list)


def on_attempt(prefix: str, callback: AttemptRecorded) -> None:
    """Have `callback(session, target, attempt)` run after every recorded attempt of a
    target "prefix:…" (whatever its outcome: `attempt.outcome` is a schedule.Outcome).

    It runs inside the unit of work that records the attempt, after the delivery was
    updated (and after `on_target_gone` callbacks, for a 410), so what the owner keeps
    about its target's health commits with the attempt. Not called for an attempt whose
    claim was taken over meanwhile (its result is not recorded on the delivery).
    Register at import time of the owner's job module.
    """
    if callback not in _on_attempt[prefix]:
        _on_attempt[prefix].append(callback)


# --- enqueueing -----------------------------------------------------------------------


async def enqueue(
    session: AsyncSession,
    *,
    target: str,
    url: str,
    secrets: Sequence[str],
    event_id: str,
    event_type: str,
    created_at: datetime,
    data: Any,
) -> str:
    """Add a delivery of event `event_id` to `target` in the caller's transaction; returns
    its id. Enqueueing the same (target, event_id) again changes nothing and returns the
    first delivery's id. `data` is anything msgspec encodes (a Struct, a dict).

    The URL is checked when it is sent to, not here: the caller's change must not fail
    because a receiver's address went bad.
    """
    if not secrets:
        raise ValueError("a webhook needs at least one secret")
    for secret in secrets:
        secret_key(secret)  # refuse a malformed secret now, not at every attempt
    now = utcnow()
    delivery_id = new_id("whd")
    body = encode_body(event_id, event_type, created_at, data).decode()
    stmt = (
        insert_ignoring_conflicts(session, DELIVERIES, ["target", "event_id"])
        .values(
            id=delivery_id,
            target=target,
            event_id=event_id,
            event_type=event_type,
            url=url,
            secrets=list(secrets),
            body=body,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .returning(DELIVERIES.c.id)
    )
    if (await session.execute(stmt)).first() is not None:
        return delivery_id
    existing = select(DELIVERIES.c.id).where(
        DELIVERIES.c.target == target, DELIVERIES.c.event_id == event_id
    )
    return (await session.execute(existing)).scalar_one()


async def update_target(
    session: AsyncSession,
    target: str,
    *,
    url: str | None = None,
    secrets: Sequence[str] | None = None,
) -> int:
    """Point the target's pending deliveries at a new URL and/or sign them with new
    secrets (after a rotation: pass the new and the old); returns how many changed."""
    values: dict[str, Any] = {}
    if url is not None:
        values["url"] = url
    if secrets is not None:
        if not secrets:
            raise ValueError("a webhook needs at least one secret")
        for secret in secrets:
            secret_key(secret)
        values["secrets"] = list(secrets)
    if not values:
        return 0
    result = await session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.target == target, DELIVERIES.c.status == DeliveryStatus.PENDING)
        .values(**values)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- the sweep: hand due deliveries to workers ----------------------------------------


async def queue_due(limit: int = 500) -> list[str]:
    """Mark up to `limit` due deliveries as queued and return their ids (oldest due
    first), for the caller to send to the send actor once this has committed."""
    return await leases.queue_due(
        DELIVERIES, pending=DeliveryStatus.PENDING, requeue_after=REQUEUE_AFTER, limit=limit
    )


# --- one attempt ------------------------------------------------------------------------


class AttemptView(msgspec.Struct):
    """One recorded attempt, as owners show it."""

    number: int
    url: str
    started_at: datetime
    duration_ms: int
    response_status: int | None
    response_excerpt: str | None
    error: str | None
    outcome: str
    retry_at: datetime | None


class DeliveryView(msgspec.Struct):
    """A delivery and its attempts, as owners show it."""

    id: str
    target: str
    event_id: str
    event_type: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_response_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[AttemptView] = []


async def _claim(delivery_id: str, lease: timedelta) -> Any:
    now = utcnow()
    async with unit_of_work() as session:
        claim = leases.claim(
            DELIVERIES,
            delivery_id,
            pending=DeliveryStatus.PENDING,
            now=now,
            lease=lease,
            last_attempt_at=now,
        ).returning(
            DELIVERIES.c.attempts,
            DELIVERIES.c.target,
            DELIVERIES.c.url,
            DELIVERIES.c.secrets,
            DELIVERIES.c.event_id,
            DELIVERIES.c.body,
            DELIVERIES.c.created_at,
        )
        return (await session.execute(claim)).first()


async def attempt_delivery(delivery_id: str) -> AttemptView | None:
    """Make the next attempt of a due delivery and record it; None if it was not due
    (already delivered or given up, not yet time, or another worker is attempting it).

    Each attempt carries the same `webhook-id` (the event id) and body, a fresh
    `webhook-timestamp` and the signatures of every active secret.
    """
    timeout = get_settings().webhook_timeout
    claimed = await _claim(delivery_id, timedelta(seconds=timeout) + LEASE_MARGIN)
    if claimed is None:
        return None
    started_at = utcnow()
    body = claimed.body.encode()
    headers = signed_headers(claimed.secrets, claimed.event_id, int(started_at.timestamp()), body)
    response = await transport.send(claimed.url, headers, body, timeout)
    return await _record(delivery_id, claimed, started_at, response)


async def _record(
    delivery_id: str, claimed: Any, started_at: datetime, response: transport.Response
) -> AttemptView:
    now = utcnow()
    outcome = Outcome.FAILED if response.refused else classify(response.status)
    error = response.error[:500] if response.error else None  # the column's width
    values: dict[str, Any] = {
        "queued_at": None,
        "last_response_status": response.status,
        "last_error": error,
    }
    retry_at = None
    if outcome is Outcome.RETRY:
        retry_after = parse_retry_after(response.retry_after, now)
        upcoming = next_attempt(
            claimed.attempts, now=now, created_at=claimed.created_at, retry_after=retry_after
        )
        if upcoming.at is None:
            outcome = Outcome.FAILED
            values["last_error"] = "gave up: still failing 3 days after it was created"
        retry_at = upcoming.at
    if outcome is Outcome.RETRY:
        values.update(next_attempt_at=retry_at)
    else:
        status = {
            Outcome.DELIVERED: DeliveryStatus.DELIVERED,
            Outcome.GONE: DeliveryStatus.DISABLED,
            Outcome.FAILED: DeliveryStatus.FAILED,
        }[outcome]
        values.update(status=status, next_attempt_at=None, finished_at=now)
    attempt = AttemptView(
        number=claimed.attempts,
        url=claimed.url,
        started_at=started_at,
        duration_ms=response.duration_ms,
        response_status=response.status,
        response_excerpt=response.excerpt,
        error=error,
        outcome=outcome,
        retry_at=retry_at,
    )
    async with unit_of_work() as session:
        await session.execute(
            ATTEMPTS.insert().values(delivery_id=delivery_id, **msgspec.structs.asdict(attempt))
        )
        # Only while the claim is still ours: a lease that ran out was taken over.
        result = await session.execute(
            leases.still_ours(
                DELIVERIES, delivery_id, pending=DeliveryStatus.PENDING, attempts=claimed.attempts
            ).values(**values)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            log.warning(
                "webhook %s attempt %s: finished or reclaimed meanwhile",
                delivery_id,
                attempt.number,
            )
        else:
            if outcome is Outcome.GONE:
                await _target_gone(session, claimed.target, delivery_id)
            for callback in _on_attempt.get(_prefix(claimed.target), ()):
                await callback(session, claimed.target, attempt)
    log.info(
        "webhook %s attempt %s: %s (%s)",
        delivery_id,
        attempt.number,
        outcome,
        response.status or error,
    )
    return attempt


async def _target_gone(session: AsyncSession, target: str, delivery_id: str) -> None:
    # 410 means the endpoint, not this one event, is gone: its other deliveries stop too.
    await disable_target(session, target, reason=f"the target answered 410 Gone to {delivery_id}")
    for callback in _on_gone.get(_prefix(target), ()):
        await callback(session, target)


async def disable_target(session: AsyncSession, target: str, *, reason: str) -> int:
    """Stop every pending delivery of `target` (status `disabled`, `reason` as its last
    error) in the caller's transaction; returns how many. An attempt already under way
    is not recorded on a delivery stopped meanwhile. `retry_delivery` starts one again.
    """
    result = await session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.target == target, DELIVERIES.c.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.DISABLED,
            next_attempt_at=None,
            queued_at=None,
            finished_at=utcnow(),
            last_error=reason[:500],
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class DeliveryNotRetryable(Conflict):
    """Only a delivery that ended without being delivered (failed, disabled) is retried
    by hand: a pending one is already being tried, a delivered one arrived."""

    code = "delivery_pending"
    title = "This delivery cannot be retried now"


async def retry_delivery(
    session: AsyncSession,
    delivery_id: str,
    *,
    url: str | None = None,
    secrets: Sequence[str] | None = None,
) -> DeliveryView | None:
    """Make a failed or disabled delivery pending and due now, in the caller's
    transaction, keeping its attempt log (the next attempt is numbered after it);
    None if there is no such delivery. Raises `DeliveryNotRetryable` (409
    `delivery_pending`, or `delivery_delivered`) for any other status.

    `url` and `secrets` replace what the delivery was stored with (the owner's current
    ones: its secret may have been rotated since). If the retry fails again with a
    retryable error, the schedule goes on from the attempts made so far, and gives up
    for good once the delivery is 3 days old: a manual retry is "try now", not a new
    3-day chain.
    """
    values: dict[str, Any] = {
        "status": DeliveryStatus.PENDING,
        "next_attempt_at": utcnow(),
        "queued_at": None,
        "finished_at": None,
    }
    if url is not None:
        values["url"] = url
    if secrets is not None:
        if not secrets:
            raise ValueError("a webhook needs at least one secret")
        for secret in secrets:
            secret_key(secret)
        values["secrets"] = list(secrets)
    result = await session.execute(
        update(DELIVERIES)
        .where(
            DELIVERIES.c.id == delivery_id,
            DELIVERIES.c.status.in_([DeliveryStatus.FAILED, DeliveryStatus.DISABLED]),
        )
        .values(**values)
    )
    view = await get_delivery(session, delivery_id)
    if view is None or result.rowcount:  # type: ignore[attr-defined]
        return view
    if view.status == DeliveryStatus.DELIVERED:
        raise DeliveryNotRetryable(
            "this delivery was delivered: it is not sent again", code="delivery_delivered"
        )
    raise DeliveryNotRetryable("this delivery is pending: it will be attempted when it is due")


# --- reading ------------------------------------------------------------------------


def _attempt_view(row: Any) -> AttemptView:
    return AttemptView(
        number=row.number,
        url=row.url,
        started_at=row.started_at,
        duration_ms=row.duration_ms,
        response_status=row.response_status,
        response_excerpt=row.response_excerpt,
        error=row.error,
        outcome=row.outcome,
        retry_at=row.retry_at,
    )


def _delivery_view(row: Any, attempts: list[AttemptView] | None = None) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        target=row.target,
        event_id=row.event_id,
        event_type=row.event_type,
        url=row.url,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_response_status=row.last_response_status,
        last_error=row.last_error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        attempt_log=attempts or [],
    )


async def get_delivery(session: AsyncSession, delivery_id: str) -> DeliveryView | None:
    """A delivery with every attempt, oldest first; None if there is no such delivery."""
    row = (await session.execute(select(DELIVERIES).where(DELIVERIES.c.id == delivery_id))).first()
    if row is None:
        return None
    attempts = await session.execute(
        select(ATTEMPTS).where(ATTEMPTS.c.delivery_id == delivery_id).order_by(ATTEMPTS.c.number)
    )
    return _delivery_view(row, [_attempt_view(a) for a in attempts])


async def list_deliveries(
    session: AsyncSession,
    target: str,
    *,
    cursor: str | None = None,
    limit: int | None = None,
    status: str | None = None,
) -> list[DeliveryView]:
    """A target's deliveries (only those in `status`, when given), newest first, without
    their attempts (see `pagination`: one row more than `limit` tells the caller there
    is a next page)."""
    query = select(DELIVERIES).where(DELIVERIES.c.target == target)
    if status is not None:
        query = query.where(DELIVERIES.c.status == status)
    stmt = page(query, DELIVERIES.c.id, cursor, limit)
    return [_delivery_view(row) for row in await session.execute(stmt)]
