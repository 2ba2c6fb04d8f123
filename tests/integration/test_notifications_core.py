"""Notifications to applicants: created once per (event, channel, recipient) from the
triggers' events, sent after commit through a real SMTP server (aiosmtpd), retried,
failed and skipped with every attempt recorded, listed per payment and shown on its
timeline (SQLite and PostgreSQL; no worker: the test runs the consumer and the sweep)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy import select

from notifications import jobs, service
from onetrip.clock import utcnow
from onetrip.consumers import Event
from onetrip.db import get_database, unit_of_work
from onetrip.outbox import OutboxEvent, as_message
from onetrip.settings import reset_settings
from tests.factories import auth
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    execute,
    idem,
    paid_payment,
    pay_with_sandbox,
)
from tests.smtp_server import SmtpServer, smtp_server_fixture  # noqa: F401 (smtp_server)

pytest_plugins = ["tests.integration.test_payments_support"]
#: every response must be as the OpenAPI document says (tests/conftest.py)
OPENAPI_CONFORMANCE = True

EMAIL_ONLY = {"name": "张伟", "email": "zhang.wei@example.cn"}


def use_smtp(env: Any, url: str) -> None:
    """Send email through the SMTP server at `url` from now on."""
    env.setenv("SMTP_URL", url)
    reset_settings()


async def outbox_event(payment_id: str, type: str) -> tuple[str, dict[str, Any]]:
    """The payment's outbox event of `type`, as the relay sends it to consumers."""
    table = OutboxEvent.__table__
    async with get_database().session() as session:
        row = (
            await session.execute(
                select(table).where(table.c.payment_id == payment_id, table.c.type == type)
            )
        ).one()
    return row.id, as_message(row)


async def deliver(event: tuple[str, dict[str, Any]]) -> None:
    """Hand the event to the applicant consumer, as the worker does for each copy."""
    await jobs.notify_applicant.fn.__wrapped__(*event)  # type: ignore[attr-defined]


async def sweep() -> list[Any]:
    """One pass of the periodic sweep and of the send actor for what it found."""
    return [await service.attempt_notification(i) for i in await service.queue_due()]


async def notifications_of(client: Any, key: str, payment_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/payments/{payment_id}/notifications", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def timeline_of(client: Any, key: str, payment_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/payments/{payment_id}/events", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def make_due_now(notification_id: str | None = None) -> None:
    """Move the clock past the retry: the pending notifications are due now."""
    past = utcnow() - timedelta(seconds=1)
    async with unit_of_work() as session:
        await session.execute(
            service.NOTIFICATIONS.update()
            .where(service.NOTIFICATIONS.c.status == "pending")
            .values(next_attempt_at=past)
        )


async def test_a_paid_payment_emails_the_receipt_once_however_often_the_event_arrives(
    app_client, keys, smtp_server, env
):
    use_smtp(env, smtp_server.url)
    payment = await paid_payment(app_client, keys["psb"], applicant=EMAIL_ONLY)
    event = await outbox_event(payment["id"], "payment.succeeded")
    await deliver(event)
    await deliver(event)  # the relay sent it again
    # even without the consumer's mark (a lost mark, another consumer): nothing new
    async with unit_of_work() as session:
        again = msgspec.convert(event[1], Event)
        assert await service.notify_applicant(session, again) == []
    assert await count_rows("notifications") == 1

    await sweep()
    await sweep()  # the sweep again: nothing is due any more
    [received] = await smtp_server.wait_for(1)
    await asyncio.sleep(0.1)
    assert len(smtp_server.messages) == 1
    assert received.rcpt_tos == ["zhang.wei@example.cn"]
    assert "普通护照签发" in received.body("plain")  # Chinese intact, in both parts
    assert "普通护照签发" in received.body("html")
    assert received.message["Subject"]
    [notification] = await notifications_of(app_client, keys["psb"], payment["id"])
    assert notification["id"] in received.message["Message-ID"]
    [pdf] = received.attachments
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF")

    assert notification["channel"] == "email" and notification["status"] == "sent"
    assert notification["event"] == "payment.succeeded" and notification["event_id"] == event[0]
    assert notification["kind"] == "payment_succeeded" and notification["sent_at"]
    [attempt] = notification["attempts"]
    assert attempt["number"] == 1 and attempt["outcome"] == "sent"
    assert attempt["provider"].startswith("smtp:") and attempt["error"] is None

    [sent] = [
        e
        for e in await timeline_of(app_client, keys["psb"], payment["id"])
        if e["type"].startswith("notification.")
    ]
    assert sent["type"] == "notification.sent"
    assert sent["data"]["notification_id"] == notification["id"]
    assert sent["data"]["recipient"] == "z***@example.cn"  # masked, no body
    assert not {"text", "html", "subject"} & sent["data"].keys()


async def test_one_notification_per_channel_the_applicant_has(app_client, keys, env):
    payment = await paid_payment(app_client, keys["psb"])  # email and phone
    await deliver(await outbox_event(payment["id"], "payment.succeeded"))
    listed = await notifications_of(app_client, keys["psb"], payment["id"])
    assert sorted((n["channel"], n["recipient"]) for n in listed) == [
        ("email", "zhang.wei@example.cn"),
        ("sms", "+8613800138000"),
    ]
    assert {n["status"] for n in listed} == {"pending"}
    async with get_database().session() as session:
        sms = (
            await session.execute(
                select(service.NOTIFICATIONS).where(service.NOTIFICATIONS.c.channel == "sms")
            )
        ).one()
    assert sms.subject == "" and sms.html is None and sms.attachment is None
    assert sms.text and len(sms.text) <= 140


async def test_an_applicant_without_email_or_phone_is_recorded_as_skipped(app_client, keys, env):
    payment = await paid_payment(app_client, keys["psb"], applicant={"name": "李娜"})
    await deliver(await outbox_event(payment["id"], "payment.succeeded"))
    assert await sweep() == []  # nothing to send
    [notification] = await notifications_of(app_client, keys["psb"], payment["id"])
    assert (notification["channel"], notification["status"]) == ("none", "skipped")
    assert notification["attempts"] == [] and notification["last_error"]
    skipped = [
        e
        for e in await timeline_of(app_client, keys["psb"], payment["id"])
        if e["type"] == "notification.skipped"
    ]
    assert [e["data"]["notification_id"] for e in skipped] == [notification["id"]]


async def test_a_refused_address_fails_at_once_with_its_attempt_recorded(app_client, keys, env):
    with SmtpServer(refuse_recipients={"nobody@example.cn": "550 5.1.1 No such user"}) as server:
        use_smtp(env, server.url)
        payment = await paid_payment(
            app_client, keys["psb"], applicant={"name": "张伟", "email": "nobody@example.cn"}
        )
        await deliver(await outbox_event(payment["id"], "payment.succeeded"))
        [result] = await sweep()
        assert result.outcome == "failed"
        await make_due_now()
        assert await sweep() == []  # never retried
        assert server.messages == []
    [notification] = await notifications_of(app_client, keys["psb"], payment["id"])
    assert notification["status"] == "failed" and notification["sent_at"] is None
    [attempt] = notification["attempts"]
    assert attempt["outcome"] == "failed" and "550" in attempt["error"]
    failed = [
        e
        for e in await timeline_of(app_client, keys["psb"], payment["id"])
        if e["type"] == "notification.failed"
    ]
    assert len(failed) == 1 and "550" in failed[0]["data"]["error"]


async def test_smtp_down_is_retried_later_and_sent_when_it_comes_back(app_client, keys, env):
    with SmtpServer(refuse="421 4.3.2 Service not available", refuse_at="connect") as server:
        use_smtp(env, server.url)
        payment = await paid_payment(app_client, keys["psb"], applicant=EMAIL_ONLY)
        await deliver(await outbox_event(payment["id"], "payment.succeeded"))
        before = utcnow()
        [first] = await sweep()
        assert first.outcome == "retry"
        # about 30 s later (±15 %), not now
        assert timedelta(seconds=25) <= first.retry_at - before <= timedelta(seconds=40)
        assert await sweep() == []

        await make_due_now()
        [second] = await sweep()
        assert second.outcome == "retry" and second.number == 2
        assert second.retry_at - utcnow() >= timedelta(seconds=100)  # about 2 min

        server.refuse = None  # the relay is back
        await make_due_now()
        [third] = await sweep()
        assert third.outcome == "sent" and third.number == 3
        [received] = await server.wait_for(1)
    [notification] = await notifications_of(app_client, keys["psb"], payment["id"])
    assert notification["status"] == "sent"
    assert [a["outcome"] for a in notification["attempts"]] == ["retry", "retry", "sent"]
    assert "421" in notification["attempts"][0]["error"]
    assert notification["id"] in received.message["Message-ID"]


async def test_a_notification_still_failing_after_a_day_fails(app_client, keys, env):
    with SmtpServer(refuse="421 4.3.2 Service not available", refuse_at="connect") as server:
        use_smtp(env, server.url)
        payment = await paid_payment(app_client, keys["psb"], applicant=EMAIL_ONLY)
        await deliver(await outbox_event(payment["id"], "payment.succeeded"))
        async with unit_of_work() as session:  # a day ago, less 10 s: the retry (~30 s) is too late
            await session.execute(
                service.NOTIFICATIONS.update().values(
                    created_at=utcnow() - timedelta(hours=23, minutes=59, seconds=50)
                )
            )
        [result] = await sweep()
    assert result.outcome == "failed" and "gave up" in result.error
    [notification] = await notifications_of(app_client, keys["psb"], payment["id"])
    assert notification["status"] == "failed"


async def test_two_workers_attempting_at_once_send_one_email(app_client, keys, smtp_server, env):
    use_smtp(env, smtp_server.url)
    payment = await paid_payment(app_client, keys["psb"], applicant=EMAIL_ONLY)
    await deliver(await outbox_event(payment["id"], "payment.succeeded"))
    [notification_id] = await service.queue_due()
    results = await asyncio.gather(
        *(service.attempt_notification(notification_id) for _ in range(3))
    )
    assert sorted(r is None for r in results) == [False, True, True]
    await smtp_server.wait_for(1)
    await asyncio.sleep(0.1)
    assert len(smtp_server.messages) == 1
    assert await count_rows("notification_attempts") == 1


async def test_department_emails_are_queued_once_per_key(app_client, keys, smtp_server, env):
    use_smtp(env, smtp_server.url)
    await execute("UPDATE departments SET contact_email = 'it@psb.example.cn' WHERE code = 'PSB'")
    context = {"endpoint_id": "whe_x", "endpoint_url": "https://psb.example.cn/hook"}
    async with unit_of_work() as session:
        first = await service.queue_department_email(
            session,
            key="whe_x:failing:1",
            department="PSB",
            kind="endpoint_failing",
            context=context,
        )
        again = await service.queue_department_email(
            session,
            key="whe_x:failing:1",
            department="PSB",
            kind="endpoint_failing",
            context=context,
        )
        nobody = await service.queue_department_email(
            session,
            key="whe_y:failing:1",
            department="NRB",
            kind="endpoint_failing",
            context=context,
        )
    assert first and first.startswith("ntf_") and again is None and nobody
    await sweep()
    [received] = await smtp_server.wait_for(1)
    assert received.rcpt_tos == ["it@psb.example.cn"]
    assert "https://psb.example.cn/hook" in received.body("plain")
    async with get_database().session() as session:
        rows = {row.id: row for row in await session.execute(select(service.NOTIFICATIONS))}
    assert rows[first].status == "sent" and rows[first].department == "PSB"
    assert (rows[nobody].status, rows[nobody].channel) == ("skipped", "none")
    assert rows[first].payment_id is None


async def test_the_list_is_for_keys_that_may_read_the_payment(app_client, keys, env):
    payment = await paid_payment(app_client, keys["psb"])
    await deliver(await outbox_event(payment["id"], "payment.succeeded"))
    other = await app_client.get(
        f"/api/v1/payments/{payment['id']}/notifications", headers=auth(keys["nrb"])
    )
    assert_problem(other, 404, "payment_not_found")
    missing = await app_client.get(
        "/api/v1/payments/pay_nothing/notifications", headers=auth(keys["psb"])
    )
    assert_problem(missing, 404, "payment_not_found")
    first = await app_client.get(
        f"/api/v1/payments/{payment['id']}/notifications",
        params={"limit": 1},
        headers=auth(keys["finance"]),
    )
    assert first.status_code == 200, first.text
    assert len(first.json()["data"]) == 1 and first.json()["next_cursor"]
    rest = await app_client.get(
        f"/api/v1/payments/{payment['id']}/notifications",
        params={"limit": 1, "cursor": first.json()["next_cursor"]},
        headers=auth(keys["finance"]),
    )
    assert len(rest.json()["data"]) == 1 and rest.json()["next_cursor"] is None
    assert rest.json()["data"][0]["id"] < first.json()["data"][0]["id"]  # newest first
    bad = await app_client.get(
        f"/api/v1/payments/{payment['id']}/notifications",
        params={"cursor": "nonsense"},
        headers=auth(keys["psb"]),
    )
    assert_problem(bad, 400, "invalid_cursor")


async def rendered_of(payment_id: str) -> list[Any]:
    async with get_database().session() as session:
        stmt = (
            select(service.NOTIFICATIONS)
            .where(service.NOTIFICATIONS.c.payment_id == payment_id)
            .order_by(service.NOTIFICATIONS.c.id)
        )
        return list((await session.execute(stmt)).all())


async def test_a_declined_payment_tells_the_applicant_why(app_client, keys, env):
    payment = await create_payment(app_client, keys["psb"], applicant=EMAIL_ONLY)
    await pay_with_sandbox(app_client, payment, card="4000000000000002")  # declined
    await deliver(await outbox_event(payment["id"], "payment.failed"))
    [row] = await rendered_of(payment["id"])
    assert (row.kind, row.event_type, row.attachment) == (
        "payment_failed",
        "payment.failed",
        None,  # no receipt for a failed payment
    )
    assert "银行卡被发卡银行拒绝" in row.text and "银行卡被发卡银行拒绝" in row.html
    assert payment["tracking_url"] in row.text


async def test_a_refund_tells_the_amount_paid_back(app_client, keys, env):
    payment = await paid_payment(
        app_client, keys["psb"], applicant={**EMAIL_ONLY, "language": "en"}
    )
    answer = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 4500, "reason": "申请人撤回申请"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert answer.status_code == 201, answer.text
    await deliver(await outbox_event(payment["id"], "refund.succeeded"))
    [row] = await rendered_of(payment["id"])
    assert (row.kind, row.language) == ("refunded", "en")
    assert "CNY 45.00" in row.text  # the refund, formatted for English


async def test_a_worker_lost_mid_attempt_is_resent_after_its_lease_with_the_same_id(
    app_client, keys, smtp_server, env
):
    use_smtp(env, smtp_server.url)
    payment = await paid_payment(app_client, keys["psb"], applicant=EMAIL_ONLY)
    await deliver(await outbox_event(payment["id"], "payment.succeeded"))
    [notification_id] = await service.queue_due()
    # a worker claims it and dies before recording anything: nobody else may send it...
    assert await service._claim(notification_id) is not None
    assert await sweep() == []
    # ...until its lease has run out
    await make_due_now()
    [result] = await sweep()
    assert (result.number, result.outcome) == (2, "sent")
    [received] = await smtp_server.wait_for(1)
    assert notification_id in received.message["Message-ID"]  # a resend is recognisable
