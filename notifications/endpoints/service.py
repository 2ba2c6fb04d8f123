"""Department webhook endpoints: registration, fan-out of events, failing endpoints.

An endpoint is a department's URL and the event types it wants. Each event of the
department is enqueued once per endpoint that wants it as a kernel webhook delivery
(target `endpoint:{id}`, `onetrip.webhooks`), which signs, sends, retries and logs it.
What is kept here is the endpoint's side: its secrets (the previous one keeps signing
for 24 hours after a rotation), and its health: `failing_since` is the first failed
attempt since the last delivered one. Failing for 24 hours, the department's contact
is warned once; for 3 days, or answering 410 Gone once, the endpoint is disabled (its
pending deliveries stop, new events are not enqueued) and the contact is told. PATCH
`enabled: true` turns it on again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.endpoints.models import WebhookEndpoint
from notifications.endpoints.schemas import (
    WebhookAttemptOut,
    WebhookDeliveryOut,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointPatch,
)
from notifications.service import queue_department_email
from onetrip import webhooks
from onetrip.clock import utcnow
from onetrip.consumers import Event
from onetrip.errors import Conflict, NotFound, ValidationFailed
from onetrip.ids import new_id
from onetrip.outbox import OutboxEvent
from onetrip.pagination import check_cursor, page
from onetrip.urls import check_webhook_url
from onetrip.webhooks import AttemptView, DeliveryView
from onetrip.webhooks.schedule import Outcome

log = logging.getLogger(__name__)

#: The event types an endpoint may ask for (API.md, Notifications). Their data is the
#: emitting domain's (payments/events.py, delivery/events.py) plus `sequence`.
EVENT_TYPES: tuple[str, ...] = (
    "payment.succeeded",
    "payment.failed",
    "payment.cancelled",
    "payment.expired",
    "refund.succeeded",
    "refund.failed",
    "license.issued",
    "license.printed",
    "dispatch.created",
    "license.dispatched",
    "license.delivered",
    "license.collected",
    "license.returned",
    "license.revoked",
)
TARGET_PREFIX = "endpoint"
#: A rotated-out secret keeps signing beside the new one this long.
PREVIOUS_SECRET_FOR = timedelta(hours=24)
#: Failing this long: the department's contact is warned (once per failing period).
WARN_AFTER = timedelta(hours=24)
#: Failing this long: the endpoint is disabled.
DISABLE_AFTER = timedelta(days=3)
#: Endpoints per department: enough for a few systems, not a fan-out amplifier.
MAX_ENDPOINTS = 20

# disabled_reason values
GONE = "gone"
FAILING = "failing"
BY_REQUEST = "by_request"

ENDPOINTS = WebhookEndpoint.__table__
DELIVERIES = webhooks.WebhookDelivery.__table__


class EndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    title = "No such webhook endpoint"


class DeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    title = "No such delivery for this webhook endpoint"


def target_of(endpoint_id: str) -> str:
    """The kernel webhook target naming an endpoint's deliveries."""
    return f"{TARGET_PREFIX}:{endpoint_id}"


def _endpoint_id(target: str) -> str:
    return target.split(":", 1)[1]


# --- validation -------------------------------------------------------------------------


def check_events(events: list[str], *, field: str = "events") -> list[str]:
    """The event types, sorted and without repeats; a 422 naming each unknown one."""
    errors = [
        {"field": f"{field}[{index}]", "message": f"unknown event type {name!r}"}
        for index, name in enumerate(events)
        if name not in EVENT_TYPES
    ]
    if errors:
        unknown = ", ".join(e["message"].removeprefix("unknown event type ") for e in errors)
        raise ValidationFailed(
            f"unknown event type: {unknown}; known: {', '.join(EVENT_TYPES)}",
            code="unknown_event_type",
            errors=errors,
        )
    if not events:
        raise ValidationFailed(
            "events must name at least one event type",
            errors=[{"field": field, "message": "must name at least one event type"}],
        )
    return sorted(set(events))


async def check_url(url: str) -> str:
    """`url` if webhooks may go there (https, a public address once resolved, unless
    ONETRIP_WEBHOOK_ALLOW_PRIVATE), else a 422 `invalid_webhook_url` on field `url`.
    The name is resolved in a thread; call it before opening the unit of work."""
    return await asyncio.to_thread(check_webhook_url, url, field="url", resolve=True)


async def checked_new_endpoint(data: WebhookEndpointIn) -> WebhookEndpointIn:
    """The registration with its events normalised and its URL checked (no database)."""
    events = check_events(data.events)
    return WebhookEndpointIn(url=await check_url(data.url), events=events)


async def checked_patch(data: WebhookEndpointPatch) -> WebhookEndpointPatch:
    """The change with its events normalised and its URL (if any) checked."""
    events = data.events if data.events is msgspec.UNSET else check_events(data.events)
    url = data.url if data.url is msgspec.UNSET else await check_url(data.url)
    return WebhookEndpointPatch(url=url, events=events, enabled=data.enabled)


# --- the endpoints ----------------------------------------------------------------------


def active_secrets(endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous
    one while it is still within 24 hours of the rotation."""
    now = now or utcnow()
    secrets = [endpoint.secret]
    until = endpoint.previous_secret_until
    if endpoint.previous_secret and until is not None and until > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def view(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> WebhookEndpointOut:
    """The endpoint as the API shows it; its secret only when `with_secret`."""
    return WebhookEndpointOut(
        id=endpoint.id,
        department=endpoint.department,
        url=endpoint.url,
        events=list(endpoint.events),
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        failing_since=endpoint.failing_since,
        last_error=endpoint.last_error,
        previous_secret_until=endpoint.previous_secret_until if endpoint.previous_secret else None,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        secret=endpoint.secret if with_secret else msgspec.UNSET,
    )


async def create_endpoint(
    session: AsyncSession, department: str, data: WebhookEndpointIn
) -> WebhookEndpoint:
    """Register an endpoint for `department` (`data` from `checked_new_endpoint`), with a
    new secret the caller shows once. 409 `endpoint_limit_reached` past MAX_ENDPOINTS."""
    count = await session.scalar(
        select(func.count()).select_from(ENDPOINTS).where(ENDPOINTS.c.department == department)
    )
    if (count or 0) >= MAX_ENDPOINTS:
        raise Conflict(
            f"a department has at most {MAX_ENDPOINTS} webhook endpoints: "
            "change or disable one of them instead",
            code="endpoint_limit_reached",
        )
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=new_id("whe"),
        department=department,
        url=data.url,
        events=list(data.events),
        enabled=True,
        secret=webhooks.new_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def get_endpoint(session: AsyncSession, department: str, endpoint_id: str) -> WebhookEndpoint:
    """The department's endpoint; 404 for another department's (never say it exists)."""
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.department == department
    )
    endpoint = (await session.execute(stmt)).scalar_one_or_none()
    if endpoint is None:
        raise EndpointNotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


async def list_endpoints(
    session: AsyncSession, department: str, *, cursor: str | None, limit: int | None
) -> list[WebhookEndpoint]:
    """The department's endpoints newest first, one more than `limit` if there are more."""
    stmt = page(
        select(WebhookEndpoint).where(WebhookEndpoint.department == department),
        WebhookEndpoint.id,
        cursor,
        limit,
        prefix="whe",
    )
    return list((await session.execute(stmt)).scalars())


async def update_endpoint(
    session: AsyncSession, department: str, endpoint_id: str, data: WebhookEndpointPatch
) -> WebhookEndpoint:
    """Apply a PATCH (`data` from `checked_patch`). A new URL applies to pending
    deliveries too. Re-enabling forgets the failing period (a fixed receiver starts
    with a clean slate); disabling stops the pending deliveries."""
    await get_endpoint(session, department, endpoint_id)  # 404 before any lock
    endpoint = await _locked(session, endpoint_id)
    now = utcnow()
    target = target_of(endpoint.id)
    if data.url is not msgspec.UNSET and data.url != endpoint.url:
        endpoint.url = data.url
        await webhooks.update_target(session, target, url=data.url)
    if data.events is not msgspec.UNSET:
        endpoint.events = list(data.events)
    if data.enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_reason = None
        endpoint.disabled_at = None
        endpoint.failing_since = None
        endpoint.warned_at = None
        endpoint.last_error = None
    elif data.enabled is False and endpoint.enabled:
        _disable(endpoint, BY_REQUEST, now)
        await webhooks.disable_target(session, target, reason="the department disabled it")
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def rotate_secret(
    session: AsyncSession, department: str, endpoint_id: str
) -> WebhookEndpoint:
    """Give the endpoint a new secret (the caller shows it once). The current one keeps
    signing beside it for 24 hours, pending deliveries included, so the receiver can
    switch without losing one; a second rotation within that time replaces the older."""
    await get_endpoint(session, department, endpoint_id)  # 404 before any lock
    endpoint = await _locked(session, endpoint_id)
    now = utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = now + PREVIOUS_SECRET_FOR
    endpoint.secret = webhooks.new_secret()
    endpoint.updated_at = now
    await webhooks.update_target(session, target_of(endpoint.id), secrets=active_secrets(endpoint))
    await session.flush()
    return endpoint


async def drop_expired_secrets(session: AsyncSession) -> list[str]:
    """Forget rotated-out secrets whose 24 hours are over (pending deliveries are signed
    with the current secret alone from then on); returns the endpoints changed."""
    now = utcnow()
    expired = (
        select(ENDPOINTS.c.id)
        .where(ENDPOINTS.c.previous_secret_until.is_not(None))
        .where(ENDPOINTS.c.previous_secret_until <= now)
        .limit(500)
    )
    changed = []
    for endpoint_id in list((await session.execute(expired)).scalars()):
        endpoint = await _locked(session, endpoint_id)
        until = endpoint.previous_secret_until
        if until is None or until > now:
            continue  # rotated again meanwhile
        endpoint.previous_secret = None
        endpoint.previous_secret_until = None
        endpoint.updated_at = now
        await webhooks.update_target(session, target_of(endpoint.id), secrets=[endpoint.secret])
        changed.append(endpoint.id)
    await session.flush()
    return changed


async def _locked(session: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
    """The endpoint under a row lock, its pending deliveries locked first.

    The kernel records an attempt by locking its delivery and then, through the hooks
    (`record_attempt`, `endpoint_gone`), the endpoint. Whatever here changes both takes
    them in the same order, so the two never wait on each other in a cycle (a deadlock
    PostgreSQL would break by failing one of them).
    """
    await session.execute(
        select(DELIVERIES.c.id)
        .where(
            DELIVERIES.c.target == target_of(endpoint_id),
            DELIVERIES.c.status == webhooks.DeliveryStatus.PENDING,
        )
        .order_by(DELIVERIES.c.id)
        .with_for_update()
    )
    endpoint = await session.get(
        WebhookEndpoint, endpoint_id, with_for_update=True, populate_existing=True
    )
    if endpoint is None:
        raise EndpointNotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


# --- deliveries -------------------------------------------------------------------------


def _attempt_out(attempt: AttemptView) -> WebhookAttemptOut:
    return WebhookAttemptOut(**msgspec.structs.asdict(attempt))


def delivery_view(delivery: DeliveryView, *, with_attempts: bool = False) -> WebhookDeliveryOut:
    """A kernel delivery as the endpoint API shows it (never its secrets)."""
    return WebhookDeliveryOut(
        id=delivery.id,
        endpoint_id=_endpoint_id(delivery.target),
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        url=delivery.url,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_attempt_at=delivery.last_attempt_at,
        last_response_status=delivery.last_response_status,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
        attempt_log=[_attempt_out(a) for a in delivery.attempt_log]
        if with_attempts
        else msgspec.UNSET,
    )


async def list_endpoint_deliveries(
    session: AsyncSession,
    department: str,
    endpoint_id: str,
    *,
    status: str | None,
    cursor: str | None,
    limit: int | None,
) -> list[DeliveryView]:
    """The endpoint's deliveries newest first (one more than `limit` if there are more)."""
    endpoint = await get_endpoint(session, department, endpoint_id)
    return await webhooks.list_deliveries(
        session,
        target_of(endpoint.id),
        cursor=check_cursor(cursor, "whd"),
        limit=limit,
        status=status,
    )


async def get_endpoint_delivery(
    session: AsyncSession, department: str, endpoint_id: str, delivery_id: str
) -> DeliveryView:
    """One delivery of the endpoint with every attempt; 404 for any other delivery."""
    endpoint = await get_endpoint(session, department, endpoint_id)
    delivery = await webhooks.get_delivery(session, delivery_id)
    if delivery is None or delivery.target != target_of(endpoint.id):
        raise DeliveryNotFound(f"no delivery {delivery_id} for webhook endpoint {endpoint_id}")
    return delivery


async def retry_endpoint_delivery(
    session: AsyncSession, department: str, endpoint_id: str, delivery_id: str
) -> DeliveryView:
    """Send a failed or disabled delivery again, now, to the endpoint's current URL and
    with its current secrets, keeping its attempt log. 409 `delivery_pending` (or
    `delivery_delivered`) otherwise, and `endpoint_disabled` while the endpoint is off."""
    endpoint = await get_endpoint(session, department, endpoint_id)
    await get_endpoint_delivery(session, department, endpoint_id, delivery_id)
    if not endpoint.enabled:
        raise Conflict(
            "the endpoint is disabled: enable it first (PATCH with enabled: true)",
            code="endpoint_disabled",
        )
    retried = await webhooks.retry_delivery(
        session, delivery_id, url=endpoint.url, secrets=active_secrets(endpoint)
    )
    assert retried is not None  # read just above, in this transaction
    return retried


# --- fan-out: an event to every endpoint that wants it -------------------------------------


async def payment_sequence(session: AsyncSession, payment_id: str, event_id: str) -> int:
    """The event's position among its payment's events (1 for the first): the number of
    the payment's outbox events up to it, in the order of their time-ordered ids.

    It only grows in the order things happened to the payment, and counts events the
    endpoint does not receive too, so a receiver sees gaps; it can drop a delivery whose
    sequence is lower than one it has already applied (an older status arriving late).
    """
    events = OutboxEvent.__table__
    count = await session.scalar(
        select(func.count())
        .select_from(events)
        .where(events.c.payment_id == payment_id, events.c.id <= event_id)
    )
    return int(count or 0)


async def fan_out(session: AsyncSession, event: Event) -> list[str]:
    """Enqueue `event` for each enabled endpoint of its department that wants its type,
    in the caller's unit of work; returns the delivery ids. The body is stored once: the
    same data and sequence number on every attempt, however often the event arrives."""
    if event.type not in EVENT_TYPES or not event.department:
        return []
    endpoints = [
        endpoint
        for endpoint in (
            await session.execute(
                select(WebhookEndpoint)
                .where(WebhookEndpoint.department == event.department, WebhookEndpoint.enabled)
                .order_by(WebhookEndpoint.id)
                # FOR SHARE: a PATCH disabling one (or changing its URL or secret) waits
                # for this commit, then changes the deliveries enqueued here too.
                .with_for_update(read=True)
            )
        ).scalars()
        if event.type in endpoint.events
    ]
    if not endpoints:
        return []
    data: dict[str, Any] = dict(event.data)
    if event.payment_id:
        data["sequence"] = await payment_sequence(session, event.payment_id, event.id)
    created_at = event.occurred_at or utcnow()
    now = utcnow()
    return [
        await webhooks.enqueue(
            session,
            target=target_of(endpoint.id),
            url=endpoint.url,
            secrets=active_secrets(endpoint, now),
            event_id=event.id,
            event_type=event.type,
            created_at=created_at,
            data=data,
        )
        for endpoint in endpoints
    ]


# --- health: failing, warned, disabled --------------------------------------------------


def _disable(endpoint: WebhookEndpoint, reason: str, now: datetime) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.updated_at = now


def _attempt_error(attempt: AttemptView) -> str:
    if attempt.error:
        return attempt.error[:500]
    return f"HTTP {attempt.response_status}"


async def record_attempt(session: AsyncSession, target: str, attempt: AttemptView) -> None:
    """The kernel's `on_attempt` hook: a delivered attempt ends the failing period, any
    other starts it (if none is running) and keeps its error for the department."""
    endpoint_id = _endpoint_id(target)
    if attempt.outcome == Outcome.DELIVERED:
        await session.execute(
            update(ENDPOINTS)
            .where(ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.failing_since.is_not(None))
            .values(failing_since=None, warned_at=None, last_error=None)
        )
        return
    await session.execute(
        update(ENDPOINTS)
        .where(ENDPOINTS.c.id == endpoint_id)
        .values(
            failing_since=func.coalesce(ENDPOINTS.c.failing_since, attempt.started_at),
            last_error=_attempt_error(attempt),
        )
    )


async def endpoint_gone(session: AsyncSession, target: str) -> None:
    """The kernel's `on_target_gone` hook: a 410 disables the endpoint at once (the
    kernel has stopped its pending deliveries) and tells the department."""
    endpoint = await session.get(WebhookEndpoint, _endpoint_id(target), with_for_update=True)
    if endpoint is None or not endpoint.enabled:
        return
    now = utcnow()
    _disable(endpoint, GONE, now)
    endpoint.last_error = "the endpoint answered 410 Gone"
    await session.flush()
    await _tell_department(
        session, endpoint, "endpoint_disabled", f"{endpoint.id}:gone:{now.isoformat()}"
    )


async def watch_failing_endpoints(session: AsyncSession) -> dict[str, list[str]]:
    """The time-based part, run periodically: warn about endpoints failing for 24 hours
    (once per failing period) and disable those failing for 3 days, telling the
    department's contact each time. Returns the endpoint ids warned and disabled.

    Exactly once however often it runs, and with several relays: each endpoint is read
    again under its row lock and changed with what it was told, and the email is keyed
    by the endpoint and its failing period, so it is queued once.
    """
    now = utcnow()
    candidates = (
        select(ENDPOINTS.c.id)
        .where(
            ENDPOINTS.c.enabled,
            ENDPOINTS.c.failing_since.is_not(None),
            ENDPOINTS.c.failing_since <= now - WARN_AFTER,
        )
        .order_by(ENDPOINTS.c.failing_since)
        .limit(500)
    )
    done: dict[str, list[str]] = {"warned": [], "disabled": []}
    for endpoint_id in list((await session.execute(candidates)).scalars()):
        endpoint = await _locked(session, endpoint_id)
        since = endpoint.failing_since
        if not endpoint.enabled or since is None or since > now - WARN_AFTER:
            continue  # delivered, re-enabled or disabled meanwhile
        if since <= now - DISABLE_AFTER:
            _disable(endpoint, FAILING, now)
            await webhooks.disable_target(
                session,
                target_of(endpoint.id),
                reason="the endpoint was disabled: failing for 3 days",
            )
            await _tell_department(
                session,
                endpoint,
                "endpoint_disabled",
                f"{endpoint.id}:disabled:{since.isoformat()}",
            )
            done["disabled"].append(endpoint.id)
        elif endpoint.warned_at is None:
            endpoint.warned_at = now
            await _tell_department(
                session, endpoint, "endpoint_failing", f"{endpoint.id}:failing:{since.isoformat()}"
            )
            done["warned"].append(endpoint.id)
    await session.flush()
    for kind, ids in done.items():
        if ids:
            log.warning("webhook endpoints %s: %s", kind, ", ".join(ids))
    return done


def email_context(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the endpoint_failing / endpoint_disabled messages are rendered with."""
    since = endpoint.failing_since
    return {
        "endpoint_id": endpoint.id,
        "endpoint_url": endpoint.url,
        "failing_since": since,
        "disable_at": since + DISABLE_AFTER if since is not None else None,
        "last_error": endpoint.last_error,
        "disabled_reason": endpoint.disabled_reason,
    }


async def _tell_department(
    session: AsyncSession, endpoint: WebhookEndpoint, kind: str, key: str
) -> None:
    # The one place that emails a department about its endpoints (notifications core).
    await queue_department_email(
        session,
        key=key,
        department=endpoint.department,
        kind=kind,
        context=email_context(endpoint),
    )
