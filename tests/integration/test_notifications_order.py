"""What the applicant is told, and in which order: events from before notifications were
switched on tell nobody (the kernel resends up to a day of unconsumed events to a new
consumer), and a licence's steps never reach the applicant out of order, whichever
worker takes which (SQLite and PostgreSQL, no worker: the test runs consumer and sweep)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from notifications import service
from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.outbox import ConsumedEvent, OutboxEvent
from tests.integration import test_delivery_courier
from tests.integration.test_delivery_courier import at, dispatched, post_event
from tests.integration.test_delivery_dispatch import license_row
from tests.integration.test_notifications_core import EMAIL_ONLY, deliver, outbox_event
from tests.integration.test_notifications_delivery import SmsProvider, payment_events
from tests.integration.test_notifications_delivery import sms_provider as sms_provider
from tests.integration.test_payments_support import count_rows, paid_payment

pytest_plugins = ["tests.integration.test_payments_support"]
OPENAPI_CONFORMANCE = True

courier = test_delivery_courier.courier  # the fixture: partners SF and EMS, SF's key


async def published_ago(payment_id: str, ago: timedelta) -> None:
    """The payment's events were published by the relay `ago` (before this test)."""
    table = OutboxEvent.__table__
    async with unit_of_work() as session:
        await session.execute(
            update(table)
            .where(table.c.payment_id == payment_id)
            .values(published_at=utcnow() - ago)
        )


async def notifications_of(payment_id: str) -> list[Any]:
    async with get_database().session() as session:
        stmt = select(service.NOTIFICATIONS).where(service.NOTIFICATIONS.c.payment_id == payment_id)
        return list((await session.execute(stmt.order_by(service.NOTIFICATIONS.c.id))).all())


async def paid(client: Any, keys: dict[str, str], n: int) -> dict[str, Any]:
    return await paid_payment(
        client, keys["psb"], applicant=EMAIL_ONLY, reference=f"CRJ-2026-00010{n}"
    )


async def test_events_from_before_notifications_were_switched_on_tell_nobody(
    app_client: Any, keys: dict[str, str]
) -> None:
    # the first deploy: a payment of an hour ago, resent by the kernel to the new consumer
    before = await paid(app_client, keys, 1)
    await published_ago(before["id"], timedelta(hours=1))
    await deliver(await outbox_event(before["id"], "payment.succeeded"))
    assert await count_rows("notifications") == 0
    marks = ConsumedEvent.__table__
    async with get_database().session() as session:
        consumed = await session.execute(
            select(marks.c.event_id).where(marks.c.consumer == "notifications.applicant")
        )
        assert len(consumed.all()) == 1  # applied (nothing to do): not resent again

    # news from now on is told, and so is a late copy of an event published after the
    # switch-on, however late it arrives
    now = await paid(app_client, keys, 2)
    await deliver(await outbox_event(now["id"], "payment.succeeded"))
    assert [row.kind for row in await notifications_of(now["id"])] == ["payment_succeeded"]
    async with unit_of_work() as session:
        await session.execute(
            update(marks)
            .where(marks.c.consumer == service.SWITCHED_ON_MARK[0])
            .values(consumed_at=utcnow() - timedelta(hours=3))
        )
    late = await paid(app_client, keys, 3)
    await published_ago(late["id"], timedelta(hours=2))
    await deliver(await outbox_event(late["id"], "payment.succeeded"))
    assert [row.kind for row in await notifications_of(late["id"])] == ["payment_succeeded"]


async def parcel_delivered(client: Any, courier: dict[str, str]) -> str:
    """A licence dispatched, out for delivery, delivered; its applicant's notifications
    created (none sent yet). Returns the payment id."""
    license_id, dispatch_id = await dispatched()
    for n, status in enumerate(("out_for_delivery", "delivered"), 1):
        answer = await post_event(
            client,
            courier,
            dispatch_id,
            event_id=f"e{n}",
            status=status,
            occurred_at=at(n),
            recipient_name="张伟",
        )
        assert answer.status_code == 200, answer.text
    payment_id = (await license_row(license_id)).payment_id
    for event in await payment_events(payment_id):
        await deliver(event)
    return payment_id


async def test_a_licence_step_is_never_sent_after_a_later_one(
    app_client: Any, courier: dict[str, str], sms_provider: SmsProvider
) -> None:
    payment_id = await parcel_delivered(app_client, courier)
    rows = {row.kind: row for row in await notifications_of(payment_id)}
    assert list(rows) == ["license_printed", "dispatched", "out_for_delivery", "delivered"]
    # one worker takes "delivered" first; the others come after it
    sent = await service.attempt_notification(rows["delivered"].id)
    assert sent is not None and sent.outcome == "sent"
    for kind in ("out_for_delivery", "license_printed", "dispatched"):
        assert await service.attempt_notification(rows[kind].id) is None

    assert [r["body"]["reference"] for r in sms_provider.requests] == [rows["delivered"].id]
    after = {row.kind: row for row in await notifications_of(payment_id)}
    assert after["delivered"].status == "sent"
    for kind in ("out_for_delivery", "license_printed", "dispatched"):
        assert after[kind].status == "skipped"
        assert after[kind].last_error.startswith("out of date: the later delivered")
    table = OutboxEvent.__table__
    async with get_database().session() as session:
        skipped = await session.execute(
            select(table.c.data).where(
                table.c.payment_id == payment_id, table.c.type == "notification.skipped"
            )
        )
        assert {data["kind"] for (data,) in skipped} == {
            "out_for_delivery",
            "license_printed",
            "dispatched",
        }
    # a payment's own messages are not steps: the receipt is never out of date
    assert service.LICENCE_STEP_KINDS.isdisjoint({"payment_succeeded", "refunded"})


async def test_a_later_step_waits_while_an_earlier_one_is_being_sent(
    app_client: Any, courier: dict[str, str], sms_provider: SmsProvider
) -> None:
    payment_id = await parcel_delivered(app_client, courier)
    rows = {row.kind: row for row in await notifications_of(payment_id)}
    for kind in ("license_printed", "dispatched"):
        assert (await service.attempt_notification(rows[kind].id)).outcome == "sent"  # type: ignore[union-attr]
    # a worker is sending "out for delivery" (claimed, not yet recorded)...
    assert await service._claim(rows["out_for_delivery"].id) is not None
    # ...so "delivered" waits for it rather than overtaking it
    assert await service.attempt_notification(rows["delivered"].id) is None
    [waiting] = [r for r in await notifications_of(payment_id) if r.kind == "delivered"]
    assert waiting.status == "pending" and waiting.attempts == 0
    assert waiting.next_attempt_at > utcnow()
    assert len(sms_provider.requests) == 2

    # the first worker died: once its lease runs out, the earlier step goes first
    async with unit_of_work() as session:
        await session.execute(
            update(service.NOTIFICATIONS)
            .where(service.NOTIFICATIONS.c.id == rows["out_for_delivery"].id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    assert (await service.attempt_notification(rows["out_for_delivery"].id)).outcome == "sent"  # type: ignore[union-attr]
    async with unit_of_work() as session:
        await session.execute(
            update(service.NOTIFICATIONS)
            .where(service.NOTIFICATIONS.c.id == rows["delivered"].id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    assert (await service.attempt_notification(rows["delivered"].id)).outcome == "sent"  # type: ignore[union-attr]
    references = [r["body"]["reference"] for r in sms_provider.requests]
    assert references == [
        rows[kind].id for kind in ("license_printed", "dispatched", "out_for_delivery", "delivered")
    ]
