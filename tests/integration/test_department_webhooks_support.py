"""Shared helpers of the department webhook tests (no tests of its own).

Deliveries are sent by calling the kernel's `attempt_delivery` (what the send actor
does), events are handed to the real fan-out consumer as the worker would, and time is
moved by moving the rows' timestamps back (the service reads `onetrip.clock.utcnow`).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy import select, update

from notifications.endpoints.jobs import send_to_department_endpoints, watch_department_endpoints
from notifications.endpoints.models import WebhookEndpoint
from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.outbox import OutboxEvent, as_message
from onetrip.webhooks import WebhookDelivery, attempt_delivery
from tests.factories import auth

ENDPOINTS = "/api/v1/webhook-endpoints"
_refs = itertools.count(1)


def reference() -> str:
    """A fresh business reference (payments are unique per department and reference)."""
    return f"CRJ-2026-WH{next(_refs):05d}"


async def register(
    client: Any, key: str, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        ENDPOINTS, json={"url": url, "events": events or ["payment.succeeded"]}, headers=auth(key)
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def payment_events(payment_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The payment's outbox events as the relay sends them, oldest first."""
    async with get_database().session() as session:
        rows = await session.execute(
            select(OutboxEvent).where(OutboxEvent.payment_id == payment_id).order_by(OutboxEvent.id)
        )
        return [(row.id, as_message(row)) for row in rows.scalars()]


async def consume(event: tuple[str, dict[str, Any]]) -> None:
    """Hand one event to the fan-out consumer, as the worker does for each copy."""
    await send_to_department_endpoints.fn.__wrapped__(*event)  # type: ignore[attr-defined]


async def consume_all(payment_id: str, types: set[str] | None = None) -> None:
    for event in await payment_events(payment_id):
        if types is None or event[1]["type"] in types:
            await consume(event)


async def watch() -> None:
    """One tick of the periodic endpoint watcher."""
    await watch_department_endpoints.fn.__wrapped__()  # type: ignore[attr-defined]


async def deliveries_of(endpoint_id: str) -> list[WebhookDelivery]:
    async with get_database().session() as session:
        rows = await session.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.target == f"endpoint:{endpoint_id}")
            .order_by(WebhookDelivery.id)
        )
        return list(rows.scalars())


async def send_pending(endpoint_id: str) -> list[Any]:
    """One attempt of each of the endpoint's due deliveries, oldest first."""
    return [await attempt_delivery(d.id) for d in await deliveries_of(endpoint_id)]


async def time_passes(delivery_id: str) -> None:
    """Make the delivery due now, as if its retry delay had passed."""
    async with unit_of_work() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(next_attempt_at=utcnow())
        )


async def failing_for(endpoint_id: str, duration: timedelta) -> None:
    """As if the endpoint's failing period had begun `duration` ago."""
    async with unit_of_work() as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(failing_since=utcnow() - duration)
        )


async def rotated_ago(endpoint_id: str, duration: timedelta) -> None:
    """As if the endpoint's secret had been rotated `duration` ago."""
    async with unit_of_work() as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(previous_secret_until=utcnow() + timedelta(hours=24) - duration)
        )


def body_of(received: Any) -> dict[str, Any]:
    return msgspec.json.decode(received.body)  # type: ignore[no-any-return]
