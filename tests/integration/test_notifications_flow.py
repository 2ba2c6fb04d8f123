"""End to end in-process, with the embedded relay and worker: a paid payment's email
arrives at a real SMTP server (aiosmtpd) with the receipt attached and its SMS at a test
HTTP provider; replaying the payment's events afterwards sends nothing new."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from onetrip.db import get_database
from onetrip.outbox import OutboxEvent, as_message
from tests.factories import auth
from tests.integration import test_notifications_delivery
from tests.integration.test_notifications_core import deliver, notifications_of, use_smtp
from tests.integration.test_payments_support import count_rows, paid_payment
from tests.smtp_server import smtp_server_fixture  # noqa: F401 (smtp_server)

pytest_plugins = ["tests.integration.test_payments_support"]
#: every response must be as the OpenAPI document says (tests/conftest.py)
OPENAPI_CONFORMANCE = True

sms_provider = test_notifications_delivery.sms_provider  # the fixture


async def wait_for(predicate: Any, within: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


@pytest.mark.with_worker  # the relay, the consumer and the sweep must run
async def test_a_paid_payment_reaches_the_applicants_mailbox_and_phone(
    app_client, keys, smtp_server, sms_provider, env
):
    use_smtp(env, smtp_server.url)
    applicant = {
        "name": "张伟",
        "email": "zhang.wei@example.cn",
        "phone": "13800138000",
        "language": "en",
    }
    payment = await paid_payment(app_client, keys["psb"], applicant=applicant)
    [received] = await smtp_server.wait_for(1, within=20)
    assert received.rcpt_tos == ["zhang.wei@example.cn"]
    assert payment["reference"] in received.body("plain")
    assert "/track/" in received.body("html")
    [pdf] = received.attachments
    assert pdf.get_content().startswith(b"%PDF")

    async def sent() -> dict[str, dict[str, Any]]:
        listed = await notifications_of(app_client, keys["psb"], payment["id"])
        done = {n["channel"]: n for n in listed if n["status"] == "sent"}
        return done if len(done) == 2 else {}

    notifications = await wait_for(sent)
    assert notifications["email"]["id"] in received.message["Message-ID"]
    [sms] = sms_provider.requests
    assert sms["body"]["reference"] == notifications["sms"]["id"]
    assert sms["body"]["to"] == "+8613800138000" and sms["body"]["text"]

    async def on_timeline() -> list[str]:
        response = await app_client.get(
            f"/api/v1/payments/{payment['id']}/events", headers=auth(keys["psb"])
        )
        sent = [e for e in response.json()["data"] if e["type"] == "notification.sent"]
        return sorted(e["data"]["channel"] for e in sent) if len(sent) == 2 else []

    assert await wait_for(on_timeline) == ["email", "sms"]

    # every event of the payment again, as a relay that crashed would send it: nothing new
    table = OutboxEvent.__table__
    async with get_database().session() as session:
        rows = await session.execute(select(table).where(table.c.payment_id == payment["id"]))
        events = [(row.id, as_message(row)) for row in rows]
    for event in events:
        await deliver(event)
    await asyncio.sleep(1.5)  # more than a sweep's interval
    assert len(smtp_server.messages) == 1 and len(sms_provider.requests) == 1
    assert await count_rows("notifications") == 2
