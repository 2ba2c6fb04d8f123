"""Events no consumer applied are sent again (`resend_unconsumed`), on SQLite and PostgreSQL.

A message can be lost after the relay published it: a broker that dropped it, a worker
killed while holding it, retries exhausted. The outbox still has the event and the
consumer has no mark for it; the sweep finds exactly those and sends them again, to that
consumer only. Real actors on the StubBroker, a real worker; "lost" is a flushed queue.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip.clock import utcnow
from onetrip.consumers import (
    RESEND_WITHIN,
    Event,
    consumes,
    report_abandoned,
    resend_unconsumed,
)
from onetrip.db import get_database, unit_of_work
from onetrip.outbox import OutboxEvent, first_consumption, record_event, relay_batch
from onetrip.runtime import Relay
from tests.factories import auth, make_key, seed_catalogue
from tests.integration.test_payments_support import create_payment, pay_with_sandbox

QUEUE = "test_resend"
EVENT = "test.resend.happened"
CONSUMER = "test.resend.applied"
EFFECT = "test.resend.effect"


@consumes(EVENT, consumer=CONSUMER, queue=QUEUE, min_backoff=10, max_backoff=20)
async def resend_test_consumer(session: AsyncSession, event: Event) -> None:
    await record_event(session, EFFECT, {"cause": event.id}, subject_id=event.id)


async def run_worker(broker: Any, queues: tuple[str, ...]) -> None:
    """Process every message on `queues` with a real Dramatiq worker."""

    def work() -> None:
        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
        worker.start()
        try:
            for queue in queues:
                broker.join(queue, timeout=20_000)
            worker.join()
        finally:
            worker.stop()

    await asyncio.to_thread(work)


async def count(table: Any, *where: Any) -> int:
    async with get_database().session() as session:
        stmt = select(func.count()).select_from(table).where(*where)
        return int((await session.execute(stmt)).scalar_one())


async def effects() -> list[str]:
    """The causes of every effect the consumer wrote (one per application)."""
    async with get_database().session() as session:
        stmt = select(OutboxEvent.subject_id).where(OutboxEvent.type == EFFECT)
        return sorted((await session.execute(stmt)).scalars())


@pytest.fixture
def broker(db):  # type: ignore[no-untyped-def]
    broker = dramatiq.get_broker()
    assert isinstance(broker, dramatiq.brokers.stub.StubBroker)
    broker.flush_all()
    yield broker
    broker.flush_all()


async def publish(published_ago: timedelta | None = None, n: int = 1) -> str:
    """Commit an event and relay it; then lose its message, published `published_ago`."""
    async with unit_of_work() as session:
        event_id = await record_event(session, EVENT, {"n": n})
    while await relay_batch():
        pass
    dramatiq.get_broker().flush(QUEUE)  # the message is lost on the way
    if published_ago is not None:
        async with unit_of_work() as session:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == event_id)
                .values(published_at=utcnow() - published_ago)
            )
    return event_id


def waiting(broker: Any, queue: str = QUEUE) -> list[dramatiq.Message[Any]]:
    return [dramatiq.Message.decode(raw) for raw in broker.queues[queue].queue]


async def test_a_lost_event_is_sent_again_once_and_applied_once(broker) -> None:  # type: ignore[no-untyped-def]
    event_id = await publish(timedelta(minutes=2))
    assert waiting(broker) == []

    assert await resend_unconsumed() == 1
    [message] = waiting(broker)
    assert message.actor_name == "resend_test_consumer" and message.args[0] == event_id
    # One more try per pass, not a new chain of retries every minute.
    assert message.options["max_retries"] == 0
    await run_worker(broker, (QUEUE,))

    assert await effects() == [event_id]
    assert await resend_unconsumed() == 0  # applied: never sent again
    assert waiting(broker) == []


async def test_only_events_published_a_while_ago_within_the_horizon_are_sent(broker) -> None:  # type: ignore[no-untyped-def]
    recent = await publish(timedelta(seconds=5), n=1)  # may still be in a queue
    too_old = await publish(timedelta(days=2), n=2)  # beyond the horizon
    lost = await publish(timedelta(minutes=5), n=3)
    async with unit_of_work() as session:  # committed, not yet published: the relay's job
        await record_event(session, EVENT, {"n": 4}, occurred_at=utcnow() - timedelta(hours=1))

    assert await resend_unconsumed() == 1
    assert [m.args[0] for m in waiting(broker)] == [lost]
    assert recent != too_old


async def test_the_relay_sends_lost_events_again_when_it_starts(broker) -> None:  # type: ignore[no-untyped-def]
    event_id = await publish(timedelta(minutes=2))
    relay = Relay(interval=0.05)
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(100):
            if waiting(broker):
                break
            await asyncio.sleep(0.05)
    finally:
        relay.stop()
        await asyncio.wait_for(task, timeout=5)
    assert [m.args[0] for m in waiting(broker)] == [event_id]


# --- given up: what leaves the window is said once ---------------------------------------


def abandoned_count() -> float:
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value("onetrip_events_abandoned_total", {"consumer": CONSUMER})
    return value or 0.0


async def test_an_event_leaving_the_window_unapplied_is_reported_once(broker, caplog) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    within = RESEND_WITHIN
    before = abandoned_count()
    gone = await publish(within + timedelta(seconds=30), n=1)  # left the window 30 s ago
    applied = await publish(within + timedelta(seconds=20), n=2)
    async with unit_of_work() as session:
        await first_consumption(session, CONSUMER, applied)  # its consumer applied it
    await publish(within + timedelta(hours=2), n=3)  # left it long ago: reported then
    await publish(within - timedelta(minutes=5), n=4)  # still in it: sent again instead

    with caplog.at_level(logging.ERROR, logger="onetrip.consumers"):
        assert await report_abandoned(since=now - timedelta(minutes=1), now=now) == 1
    [record] = [r for r in caplog.records if CONSUMER in r.getMessage()]
    assert gone in record.getMessage() and EVENT in record.getMessage()
    assert "nothing sends them again" in record.getMessage()
    assert abandoned_count() == before + 1
    # the next pass looks at the next minute only: not reported twice
    assert await report_abandoned(since=now, now=now + timedelta(minutes=1)) == 0
    assert abandoned_count() == before + 1


async def test_the_relay_reports_what_it_gives_up(broker, caplog) -> None:  # type: ignore[no-untyped-def]
    gone = await publish(RESEND_WITHIN + timedelta(seconds=10))
    relay = Relay(interval=0.05)
    with caplog.at_level(logging.ERROR, logger="onetrip.consumers"):
        task = asyncio.create_task(relay.run())
        try:
            for _ in range(100):
                if any(gone in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
        finally:
            relay.stop()
            await asyncio.wait_for(task, timeout=5)
    assert [r.levelno for r in caplog.records if gone in r.getMessage()] == [logging.ERROR]
    assert waiting(broker) == []  # beyond the window: not sent again


# --- payments: a succeeded payment whose receipt job was lost -------------------------


@pytest.fixture
async def client(db, env):  # type: ignore[no-untyped-def]
    """The app without its embedded worker: the test runs the sweep and worker itself."""
    from onetrip.app import create_app
    from onetrip.settings import get_settings

    async with AsyncTestClient(app=create_app(get_settings(), embedded_worker=False)) as client:
        yield client


async def test_a_succeeded_payment_whose_receipt_job_was_lost_gets_its_receipt(client) -> None:  # type: ignore[no-untyped-def]
    from onetrip.outbox import ConsumedEvent
    from payments.models import Receipt

    admin = await make_key("admin")
    await seed_catalogue(client, admin)
    psb = await make_key("department", ["PSB"])
    payment = await create_payment(client, psb)
    await pay_with_sandbox(client, payment)
    broker = dramatiq.get_broker()
    while await relay_batch():
        pass
    broker.flush_all()  # every job of the payment lost
    async with unit_of_work() as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.payment_id == payment["id"])
            .values(published_at=utcnow() - timedelta(minutes=2))
        )

    assert await resend_unconsumed() >= 1
    assert [m.actor_name for m in waiting(broker, "payments")] == ["render_payment_receipt"]
    await run_worker(broker, ("payments",))

    assert await count(Receipt.__table__, Receipt.payment_id == payment["id"]) == 1
    consumer = ConsumedEvent.__table__.c.consumer
    assert await count(ConsumedEvent.__table__, consumer == "payments.receipt") == 1
    assert await resend_unconsumed() == 0
    response = await client.get(f"/api/v1/payments/{payment['id']}/receipt.pdf", headers=auth(psb))
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
