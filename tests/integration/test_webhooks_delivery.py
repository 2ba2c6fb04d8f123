"""Outgoing webhooks end to end against a real receiver, on SQLite and PostgreSQL:
signing (verified by the `standardwebhooks` package), the attempt log, the retry
schedule, 410 / 4xx / timeouts, and the actors that send them after commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import msgspec
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.settings import reset_settings
from onetrip.webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    attempt_delivery,
    enqueue,
    get_delivery,
    list_deliveries,
    new_secret,
    on_target_gone,
    update_target,
)
from tests import webhook_receiver
from tests.webhook_receiver import Answer, Receiver

receiver = webhook_receiver.receiver  # the fixture

CREATED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


async def deliver_later(
    url: str,
    secrets: list[str],
    *,
    target: str = "courier:SF",
    event_id: str = "evt_dispatch_1",
    data: Any = None,
) -> str:
    async with unit_of_work() as session:
        return await enqueue(
            session,
            target=target,
            url=url,
            secrets=secrets,
            event_id=event_id,
            event_type="dispatch.created",
            created_at=CREATED,
            data=data if data is not None else {"tracking_number": "SF1234567890"},
        )


async def time_passes(delivery_id: str, *, created: timedelta = timedelta(0)) -> None:
    """Make the delivery due now, as if its retry delay (and `created` more) had passed."""
    async with unit_of_work() as session:
        row = await session.get(WebhookDelivery, delivery_id)
        assert row is not None
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(next_attempt_at=utcnow(), created_at=row.created_at - created)
        )


async def delivery(delivery_id: str) -> Any:
    async with get_database().session() as session:
        view = await get_delivery(session, delivery_id)
    assert view is not None
    return view


async def test_a_failing_receiver_gets_the_same_signed_event_until_it_succeeds(
    db: Any, receiver: Receiver
) -> None:
    secret = new_secret()
    receiver.secrets = [secret]
    receiver.script = [
        Answer(503, b"maintenance"),
        Answer(429, b"slow down", headers={"Retry-After": "600"}),
        Answer(200, "收到".encode()),
    ]
    delivery_id = await deliver_later(receiver.url(), [secret], data={"recipient": "王小明"})

    first = await attempt_delivery(delivery_id)
    assert first is not None and first.response_status == 503 and first.outcome == "retry"
    # About 5 s later (±15 % jitter), not now: a second call finds nothing due.
    assert first.retry_at is not None
    delay = first.retry_at - first.started_at
    assert timedelta(seconds=4.25) <= delay <= timedelta(seconds=5.75 + 1)
    assert await attempt_delivery(delivery_id) is None
    assert len(receiver.received) == 1

    await time_passes(delivery_id)
    second = await attempt_delivery(delivery_id)
    assert second is not None and second.response_status == 429
    # Retry-After (600 s) is longer than the schedule's ~5 min: it wins.
    assert second.retry_at is not None
    delay = second.retry_at - second.started_at
    assert timedelta(seconds=600) <= delay <= timedelta(seconds=601)

    await time_passes(delivery_id)
    third = await attempt_delivery(delivery_id)
    assert third is not None and third.response_status == 200 and third.outcome == "delivered"
    assert await attempt_delivery(delivery_id) is None  # delivered: never again

    view = await delivery(delivery_id)
    assert view.status == "delivered" and view.attempts == 3 and view.next_attempt_at is None
    assert [a.number for a in view.attempt_log] == [1, 2, 3]
    assert [a.response_status for a in view.attempt_log] == [503, 429, 200]
    assert [a.outcome for a in view.attempt_log] == ["retry", "retry", "delivered"]
    assert [a.response_excerpt for a in view.attempt_log] == ["maintenance", "slow down", "收到"]
    assert all(a.url == receiver.url() and a.duration_ms >= 0 for a in view.attempt_log)

    # Every attempt: the event's id, the same bytes, a verified signature.
    assert len(receiver.received) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {"evt_dispatch_1"}
    assert len({r.body for r in receiver.received}) == 1
    assert all(r.verified_by == {secret} for r in receiver.received)
    assert msgspec.json.decode(receiver.received[0].body) == {
        "id": "evt_dispatch_1",
        "type": "dispatch.created",
        "created_at": "2026-12-01T09:30:00Z",
        "data": {"recipient": "王小明"},
    }


async def test_enqueueing_the_same_event_for_the_same_target_twice_is_a_no_op(
    db: Any, receiver: Receiver
) -> None:
    secret = new_secret()
    first = await deliver_later(receiver.url(), [secret])
    again = await deliver_later(receiver.url(), [secret])
    other_target = await deliver_later(receiver.url(), [secret], target="endpoint:whe_1")

    assert again == first and other_target != first
    async with get_database().session() as session:
        count = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        listed = await list_deliveries(session, "courier:SF")
    assert count == 2
    assert [d.id for d in listed] == [first]


async def test_a_rolled_back_unit_of_work_leaves_no_delivery(db: Any, receiver: Receiver) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work() as session:
            await enqueue(
                session,
                target="courier:SF",
                url=receiver.url(),
                secrets=[new_secret()],
                event_id="evt_rolled_back",
                event_type="dispatch.created",
                created_at=CREATED,
                data={},
            )
            raise RuntimeError("the caller's change failed")
    async with get_database().session() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


async def test_while_rotating_receivers_holding_either_secret_verify(
    db: Any, receiver: Receiver
) -> None:
    old, new = new_secret(), new_secret()
    receiver.secrets = [old, new]
    delivery_id = await deliver_later(receiver.url(), [old])
    receiver.script = [Answer(503)]
    await attempt_delivery(delivery_id)
    assert receiver.received[0].verified_by == {old}

    # The owner rotates: pending deliveries are signed with both from now on.
    async with unit_of_work() as session:
        assert await update_target(session, "courier:SF", secrets=[new, old]) == 1
    await time_passes(delivery_id)
    await attempt_delivery(delivery_id)

    assert receiver.received[1].verified_by == {old, new}
    assert len(receiver.received[1].headers["webhook-signature"].split(" ")) == 2
    assert (await delivery(delivery_id)).status == "delivered"


async def test_410_disables_the_targets_deliveries_and_tells_its_owner(
    db: Any, receiver: Receiver
) -> None:
    told: list[str] = []

    async def gone(session: AsyncSession, target: str) -> None:
        told.append(target)

    on_target_gone("test410", gone)
    secret = new_secret()
    receiver.secrets = [secret]
    receiver.script = [Answer(410, b"no such endpoint")]
    target = "test410:whe_gone"
    first = await deliver_later(receiver.url(), [secret], target=target, event_id="evt_a")
    second = await deliver_later(receiver.url(), [secret], target=target, event_id="evt_b")
    unrelated = await deliver_later(receiver.url(), [secret], event_id="evt_c")

    attempt = await attempt_delivery(first)
    assert attempt is not None and attempt.outcome == "gone"
    assert told == [target]
    assert (await delivery(first)).status == "disabled"
    assert (await delivery(second)).status == "disabled"
    assert (await delivery(unrelated)).status == "pending"
    assert await attempt_delivery(second) is None
    assert len(receiver.received) == 1


async def test_another_4xx_fails_without_retry_and_keeps_a_safe_excerpt(
    db: Any, receiver: Receiver
) -> None:
    secret = new_secret()
    receiver.secrets = [secret]
    garbage = b"\xff\xfe\x00bad" + "错误".encode() * 2000  # invalid UTF-8, a NUL, 12 KB
    receiver.script = [Answer(400, garbage)]
    delivery_id = await deliver_later(receiver.url(), [secret])

    attempt = await attempt_delivery(delivery_id)
    assert attempt is not None and attempt.outcome == "failed" and attempt.retry_at is None
    assert await attempt_delivery(delivery_id) is None
    view = await delivery(delivery_id)
    assert view.status == "failed" and view.last_response_status == 400
    excerpt = view.attempt_log[0].response_excerpt
    assert excerpt is not None and len(excerpt.encode()) <= 1024 * 3
    assert len(excerpt) <= 1024 and "\x00" not in excerpt and "错误" in excerpt
    assert len(receiver.received) == 1


async def test_a_timeout_is_retried(db: Any, env: pytest.MonkeyPatch, receiver: Receiver) -> None:
    env.setenv("ONETRIP_WEBHOOK_TIMEOUT", "0.5")
    reset_settings()
    secret = new_secret()
    receiver.secrets = [secret]
    receiver.script = [Answer(200, delay=3)]
    delivery_id = await deliver_later(receiver.url(), [secret])

    attempt = await attempt_delivery(delivery_id)
    assert attempt is not None and attempt.outcome == "retry"
    assert attempt.response_status is None and attempt.error == "timeout after 0.5 s"
    assert attempt.duration_ms < 2000
    await time_passes(delivery_id)
    assert (await attempt_delivery(delivery_id)).outcome == "delivered"  # type: ignore[union-attr]


async def test_a_refused_connection_is_retried(db: Any, receiver: Receiver) -> None:
    secret = new_secret()
    url = receiver.url().replace(str(receiver.port), "9")  # discard port: nothing listens
    delivery_id = await deliver_later(url, [secret])

    attempt = await attempt_delivery(delivery_id)
    assert attempt is not None and attempt.outcome == "retry"
    assert attempt.error is not None and attempt.error.startswith("connection error")
    assert (await delivery(delivery_id)).status == "pending"


async def test_retries_end_three_days_after_the_delivery_was_created(
    db: Any, receiver: Receiver
) -> None:
    secret = new_secret()
    receiver.secrets = [secret]
    receiver.script = [Answer(503), Answer(503)]
    delivery_id = await deliver_later(receiver.url(), [secret])
    await attempt_delivery(delivery_id)
    await time_passes(delivery_id, created=timedelta(days=3))

    attempt = await attempt_delivery(delivery_id)
    assert attempt is not None and attempt.outcome == "failed" and attempt.retry_at is None
    view = await delivery(delivery_id)
    assert view.status == "failed" and view.last_error is not None
    assert "3 days" in view.last_error


async def test_two_workers_never_send_the_same_attempt(db: Any, receiver: Receiver) -> None:
    secret = new_secret()
    receiver.secrets = [secret]
    receiver.script = [Answer(200, delay=0.3)]
    delivery_id = await deliver_later(receiver.url(), [secret])

    results = await asyncio.gather(*(attempt_delivery(delivery_id) for _ in range(4)))

    assert sum(r is not None for r in results) == 1
    assert len(receiver.received) == 1
    async with get_database().session() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookAttempt)) == 1


async def test_the_actors_send_a_committed_delivery_within_seconds(
    db: Any, receiver: Receiver
) -> None:
    from onetrip.domains import load_job_modules
    from onetrip.webhooks.jobs import QUEUE, send_due_webhooks

    load_job_modules()
    broker = dramatiq.get_broker()
    broker.flush_all()
    secret = new_secret()
    receiver.secrets = [secret]
    delivery_id = await deliver_later(receiver.url(), [secret])

    def work() -> None:
        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
        worker.start()
        try:
            send_due_webhooks.send()  # what the relay's scheduler sends every second
            broker.join(QUEUE, timeout=20_000)
            worker.join()
            send_due_webhooks.send()  # delivered: nothing is sent again
            broker.join(QUEUE, timeout=20_000)
            worker.join()
        finally:
            worker.stop()

    started = utcnow()
    await asyncio.to_thread(work)

    view = await delivery(delivery_id)
    assert view.status == "delivered" and view.attempts == 1
    assert view.attempt_log[0].started_at - started < timedelta(seconds=5)
    assert len(receiver.received) == 1 and receiver.received[0].verified_by == {secret}
