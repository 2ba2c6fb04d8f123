"""A licence's way to the applicant told by SMS through a test HTTP provider: printed,
dispatched (partner and tracking number), out for delivery, delivered (with the rating
link); steps the applicant need not hear of (accepted, in transit) tell nothing, and
replays of every event send nothing new (SQLite and PostgreSQL, no worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from notifications import service
from onetrip.db import get_database
from onetrip.outbox import OutboxEvent, as_message
from onetrip.settings import reset_settings
from tests.factories import auth, make_key
from tests.integration import test_delivery_courier
from tests.integration.test_delivery_courier import at, dispatched, post_event
from tests.integration.test_delivery_dispatch import consume_printed, license_row, printed_license
from tests.integration.test_notifications_core import deliver, make_due_now, sweep
from tests.integration.test_payments_support import count_rows

OPENAPI_CONFORMANCE = True

courier = test_delivery_courier.courier  # the fixture: partners SF and EMS, SF's key


class SmsProvider:
    """A test SMS provider over HTTP: records each request, answers 200 {"id": …}, or
    `fail_with` (a status) while that is set."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"body": body, "authorization": request.headers.get("Authorization")})
        if self.fail_with:
            return web.json_response({"error": "down"}, status=self.fail_with)
        return web.json_response({"id": f"msg-{len(self.requests)}"})


@pytest.fixture
async def sms_provider(env: Any) -> AsyncIterator[SmsProvider]:
    """A provider on a free port, configured as the only one (ONETRIP_SMS_PROVIDERS)."""
    provider = SmsProvider()
    app = web.Application()
    app.router.add_post("/send", provider.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    provider.url = f"http://127.0.0.1:{port}/send"
    env.setenv("ONETRIP_SMS_PROVIDERS", f"test={provider.url}#sms-key")
    reset_settings()
    yield provider
    await runner.cleanup()


async def payment_events(payment_id: str) -> list[tuple[str, dict[str, Any]]]:
    table = OutboxEvent.__table__
    async with get_database().session() as session:
        rows = await session.execute(
            select(table).where(table.c.payment_id == payment_id).order_by(table.c.id)
        )
        return [(row.id, as_message(row)) for row in rows]


async def test_a_licence_on_its_way_is_told_by_sms_once_per_step(
    app_client: Any, courier: dict[str, str], sms_provider: SmsProvider
) -> None:
    license_id, dispatch_id = await dispatched()
    for minute, status in enumerate(("accepted", "in_transit", "out_for_delivery"), 1):
        answer = await post_event(
            app_client,
            courier,
            dispatch_id,
            event_id=f"e{minute}",
            status=status,
            occurred_at=at(minute),
            location="杭州转运中心",
        )
        assert answer.status_code == 200, answer.text
    delivered = await post_event(
        app_client,
        courier,
        dispatch_id,
        event_id="e9",
        status="delivered",
        occurred_at=at(9),
        recipient_name="张伟",
    )
    assert delivered.status_code == 200, delivered.text
    license = await license_row(license_id)
    events = await payment_events(license.payment_id)
    for event in events:
        await deliver(event)
    for event in events:  # the relay sent everything again
        await deliver(event)
    await sweep()
    await sweep()

    async with get_database().session() as session:
        rows = (
            await session.execute(
                select(service.NOTIFICATIONS).order_by(service.NOTIFICATIONS.c.id)
            )
        ).all()
    assert [row.kind for row in rows] == [
        "license_printed",
        "dispatched",
        "out_for_delivery",
        "delivered",
    ]
    assert {(row.channel, row.recipient, row.status) for row in rows} == {
        ("sms", "+8613800138000", "sent")
    }
    assert len(sms_provider.requests) == 4  # once each, however often the events came
    by_reference = {r["body"]["reference"]: r for r in sms_provider.requests}
    assert set(by_reference) == {row.id for row in rows}
    assert {r["authorization"] for r in sms_provider.requests} == {"Bearer sms-key"}
    texts = {row.kind: by_reference[row.id]["body"]["text"] for row in rows}
    dispatch = delivered.json()
    assert dispatch["tracking_number"] in texts["dispatched"]
    assert all(r["body"]["to"] == "+8613800138000" for r in sms_provider.requests)
    assert {row.provider for row in rows} == {"sms:test"}
    assert {row.provider_ref for row in rows} == {f"msg-{n}" for n in range(1, 5)}

    psb = await make_key("department", ["PSB"])
    listed = await app_client.get(
        f"/api/v1/payments/{license.payment_id}/notifications", headers=auth(psb)
    )
    assert listed.status_code == 200, listed.text
    assert {n["event"] for n in listed.json()["data"]} == {
        "license.printed",
        "license.dispatched",
        "dispatch.status_changed",
        "license.delivered",
    }


async def test_an_sms_provider_answering_500_is_retried_then_sent(
    app_client: Any, courier: dict[str, str], sms_provider: SmsProvider
) -> None:
    license_id, _ = await dispatched()
    license = await license_row(license_id)
    sms_provider.fail_with = 500
    events = await payment_events(license.payment_id)
    [printed] = [event for event in events if event[1]["type"] == "license.printed"]
    await deliver(printed)
    [first] = [r for r in await sweep() if r is not None]
    assert first.outcome == "retry" and "500" in (first.error or "")
    sms_provider.fail_with = None
    await make_due_now()
    results = [r for r in await sweep() if r is not None]
    assert [r.outcome for r in results] == ["sent"]
    assert await count_rows("notification_attempts") == 2


async def test_a_licence_for_pickup_tells_when_it_is_ready_and_invites_a_rating_once_collected(
    app_client: Any, sms_provider: SmsProvider
) -> None:
    license = await printed_license(method="pickup")
    await consume_printed(license.id)  # printed, for pickup: ready at the window
    psb = await make_key("department", ["PSB"])
    collected = await app_client.post(
        f"/api/v1/licenses/{license.id}/collect", json={"collected_by": "张伟"}, headers=auth(psb)
    )
    assert collected.status_code == 200, collected.text
    for event in await payment_events(license.payment_id):
        await deliver(event)
    await sweep()
    async with get_database().session() as session:
        rows = (
            await session.execute(
                select(service.NOTIFICATIONS).order_by(service.NOTIFICATIONS.c.id)
            )
        ).all()
    assert [row.kind for row in rows] == ["license_printed", "pickup_ready", "collected"]
    assert {row.status for row in rows} == {"sent"} and len(sms_provider.requests) == 3
    tracking_url = (
        await app_client.get(f"/api/v1/payments/{license.payment_id}", headers=auth(psb))
    ).json()["tracking_url"]
    collected_sms = next(r for r in sms_provider.requests if r["body"]["reference"] == rows[2].id)
    assert f"{tracking_url}#rating" in collected_sms["body"]["text"]
