"""Failing department endpoints: warned after 24 hours, disabled after 3 days (or at
once by a 410), the department's contact told by a real email each time (received by
aiosmtpd), and PATCH turning the endpoint on again; plus the whole path with the
embedded relay and worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from notifications.service import attempt_notification
from onetrip.settings import reset_settings
from tests import webhook_receiver
from tests.factories import auth
from tests.integration.test_department_webhooks_support import (
    ENDPOINTS,
    body_of,
    consume_all,
    deliveries_of,
    failing_for,
    payment_events,
    reference,
    register,
    send_pending,
    watch,
)
from tests.integration.test_payments_support import count_rows, execute, paid_payment
from tests.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401 (smtp_server)
from tests.webhook_receiver import Answer, Receiver

pytest_plugins = ["tests.integration.test_payments_support"]
OPENAPI_CONFORMANCE = True

receiver = webhook_receiver.receiver  # the fixture
CONTACT = "webhooks@psb.example.gov.cn"


async def department_emails(kind: str) -> list[str]:
    """Ids of the notifications of `kind` queued for PSB."""
    from sqlalchemy import select

    from notifications.models import Notification
    from onetrip.db import get_database

    async with get_database().session() as session:
        rows = await session.execute(
            select(Notification.id)
            .where(Notification.kind == kind, Notification.department == "PSB")
            .order_by(Notification.id)
        )
        return list(rows.scalars())


@pytest.fixture
async def psb_contact(app_client: Any, keys: dict[str, str]) -> str:
    await execute("UPDATE departments SET contact_email = :e WHERE code = 'PSB'", e=CONTACT)
    return CONTACT


async def test_a_failing_endpoint_is_warned_after_a_day_disabled_after_three_and_re_enabled(
    app_client: Any,
    keys: dict[str, str],
    psb_contact: str,
    receiver: Receiver,
    smtp_server: SmtpServer,
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("SMTP_URL", smtp_server.url)
    reset_settings()
    endpoint = await register(app_client, keys["psb"], receiver.url())
    path = f"{ENDPOINTS}/{endpoint['id']}"
    receiver.secrets = [endpoint["secret"]]
    receiver.script = [Answer(503, b"down")]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())
    await consume_all(payment["id"])
    await send_pending(endpoint["id"])  # fails: failing from now on

    await watch()  # not yet a day: nobody is told
    assert await department_emails("endpoint_failing") == []

    await failing_for(endpoint["id"], timedelta(hours=24, minutes=1))
    await watch()
    await watch()  # a second tick: still one warning
    [warning] = await department_emails("endpoint_failing")
    assert (await attempt_notification(warning)).outcome == "sent"  # type: ignore[union-attr]
    [email] = await smtp_server.wait_for(1)
    assert email.rcpt_tos == [psb_contact]
    assert endpoint["id"] in email.body("plain") or receiver.url() in email.body("plain")
    shown = (await app_client.get(path, headers=auth(keys["psb"]))).json()
    assert shown["enabled"] is True and shown["last_error"] == "HTTP 503"

    await failing_for(endpoint["id"], timedelta(days=3, minutes=1))
    await watch()
    await watch()
    [disabled_email] = await department_emails("endpoint_disabled")
    assert await department_emails("endpoint_failing") == [warning]
    assert (await attempt_notification(disabled_email)).outcome == "sent"  # type: ignore[union-attr]
    assert (await smtp_server.wait_for(2))[1].rcpt_tos == [psb_contact]
    shown = (await app_client.get(path, headers=auth(keys["psb"]))).json()
    assert (shown["enabled"], shown["disabled_reason"]) == (False, "failing")
    [delivery] = await deliveries_of(endpoint["id"])
    assert delivery.status == "disabled"  # its pending delivery stopped
    assert await send_pending(endpoint["id"]) == [None]

    # While disabled: new events are not enqueued, a retry by hand is refused.
    refund = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 1000, "reason": "多收退还"},
        headers=auth(keys["psb"], "rf-health-1"),
    )
    assert refund.status_code == 201, refund.text
    await app_client.patch(
        path, json={"events": ["payment.succeeded", "refund.succeeded"]}, headers=auth(keys["psb"])
    )
    await consume_all(payment["id"])
    assert len(await deliveries_of(endpoint["id"])) == 1
    retry = f"{path}/deliveries/{delivery.id}/retry"
    refused = await app_client.post(retry, headers=auth(keys["psb"]))
    assert refused.status_code == 409 and refused.json()["code"] == "endpoint_disabled"

    # Fixed and re-enabled: a clean slate, and the stopped delivery can be sent again.
    enabled = await app_client.patch(path, json={"enabled": True}, headers=auth(keys["psb"]))
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["enabled"] is True and enabled.json()["failing_since"] is None
    assert enabled.json()["disabled_reason"] is None
    assert (await app_client.post(retry, headers=auth(keys["psb"]))).status_code == 202
    await send_pending(endpoint["id"])
    assert (await deliveries_of(endpoint["id"]))[0].status == "delivered"
    assert body_of(receiver.received[-1])["type"] == "payment.succeeded"
    await watch()
    assert len(await department_emails("endpoint_disabled")) == 1


async def test_a_410_disables_the_endpoint_at_once_and_tells_the_department(
    app_client: Any, keys: dict[str, str], psb_contact: str, receiver: Receiver
) -> None:
    endpoint = await register(
        app_client, keys["psb"], receiver.url(), ["payment.succeeded", "refund.succeeded"]
    )
    receiver.secrets = [endpoint["secret"]]
    receiver.script = [Answer(410, b"gone")]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())
    refund = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 1000, "reason": "多收退还"},
        headers=auth(keys["psb"], "rf-gone-1"),
    )
    assert refund.status_code == 201, refund.text
    await consume_all(payment["id"])
    assert [d.event_type for d in await deliveries_of(endpoint["id"])] == [
        "payment.succeeded",
        "refund.succeeded",
    ]

    attempts = await send_pending(endpoint["id"])
    assert attempts[0].outcome == "gone" and attempts[1] is None  # the sibling stopped too
    assert [d.status for d in await deliveries_of(endpoint["id"])] == ["disabled", "disabled"]
    shown = await app_client.get(f"{ENDPOINTS}/{endpoint['id']}", headers=auth(keys["psb"]))
    assert (shown.json()["enabled"], shown.json()["disabled_reason"]) == (False, "gone")
    assert len(await department_emails("endpoint_disabled")) == 1
    assert len(receiver.received) == 1
    assert await count_rows("notifications", "recipient = :r", r=psb_contact) == 1


async def test_an_endpoint_disabled_by_its_department_stops_its_pending_deliveries(
    app_client: Any, keys: dict[str, str], receiver: Receiver
) -> None:
    endpoint = await register(app_client, keys["psb"], receiver.url())
    receiver.secrets = [endpoint["secret"]]
    receiver.script = [Answer(503)]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())
    await consume_all(payment["id"])
    await send_pending(endpoint["id"])
    off = await app_client.patch(
        f"{ENDPOINTS}/{endpoint['id']}", json={"enabled": False}, headers=auth(keys["psb"])
    )
    assert (off.json()["enabled"], off.json()["disabled_reason"]) == (False, "by_request")
    [delivery] = await deliveries_of(endpoint["id"])
    assert delivery.status == "disabled" and len(receiver.received) == 1
    await failing_for(endpoint["id"], timedelta(days=4))
    await watch()  # a disabled endpoint is not warned about or disabled again
    assert await count_rows("notifications", "department = 'PSB'") == 0


@pytest.mark.with_worker  # the relay, the fan-out consumer and the send actors must run
async def test_a_paid_payment_reaches_the_departments_endpoint_with_the_worker_running(
    app_client: Any, keys: dict[str, str], receiver: Receiver
) -> None:
    endpoint = await register(app_client, keys["psb"], receiver.url())
    receiver.secrets = [endpoint["secret"]]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())

    for _ in range(200):
        if receiver.received:
            break
        await asyncio.sleep(0.1)
    [received] = receiver.received
    assert received.verified_by == {endpoint["secret"]}
    body = body_of(received)
    assert body["type"] == "payment.succeeded" and body["data"]["payment_id"] == payment["id"]
    ids = [event_id for event_id, _ in await payment_events(payment["id"])]
    assert body["data"]["sequence"] == ids.index(body["id"]) + 1 > 1  # created came before
    listed = await app_client.get(
        f"{ENDPOINTS}/{endpoint['id']}/deliveries", headers=auth(keys["psb"])
    )
    [delivery] = listed.json()["data"]
    assert delivery["status"] in ("pending", "delivered") and delivery["event_id"] == body["id"]
