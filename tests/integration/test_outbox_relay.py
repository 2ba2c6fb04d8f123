"""The outbox and its relay, on SQLite and PostgreSQL, with Dramatiq's StubBroker.

Principle 3: no job for a change that rolled back, no committed change without its job.
Principle 4: a relay crash between publishing and marking sends an event again; the
consumer, deduplicating with `first_consumption`, applies its effect once.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import dramatiq
import pytest
from sqlalchemy import func, select

from onetrip import outbox
from onetrip.db import get_database, unit_of_work
from onetrip.jobs import actor
from onetrip.outbox import OutboxEvent, first_consumption, record_event, relay_batch, subscribe

QUEUE_A = "test_outbox_a"
QUEUE_B = "test_outbox_b"
EVENT = "test.outbox.happened"
EFFECT = "test.outbox.effect"

# What the actors were asked to do (event ids), and under which consumer.
calls: list[tuple[str, str]] = []
_calls_lock = threading.Lock()


async def _consume(consumer: str, event_id: str, event: dict[str, Any]) -> None:
    with _calls_lock:
        calls.append((consumer, event_id))
    async with unit_of_work() as session:
        if await first_consumption(session, consumer, event_id):
            # The effect commits with the deduplication mark, or neither does.
            await record_event(
                session, EFFECT, {"consumer": consumer, "cause": event_id}, subject_id=event_id
            )


@subscribe(EVENT)
@actor(QUEUE_A, max_retries=0)
async def outbox_test_consumer_a(event_id: str, event: dict[str, Any]) -> None:
    await _consume("test_outbox_a", event_id, event)


@subscribe(EVENT)
@actor(QUEUE_B, max_retries=0)
async def outbox_test_consumer_b(event_id: str, event: dict[str, Any]) -> None:
    await _consume("test_outbox_b", event_id, event)


class Boom(Exception):
    pass


@pytest.fixture
def broker(db):  # type: ignore[no-untyped-def]
    """The StubBroker the `db` fixture configured, with the test queues empty."""
    broker = dramatiq.get_broker()
    assert isinstance(broker, dramatiq.brokers.stub.StubBroker)
    broker.flush_all()
    calls.clear()
    yield broker
    broker.flush_all()
    calls.clear()


def queued_event_ids(broker: Any, queue: str) -> list[str]:
    """The event ids of the messages waiting on a stub queue (first argument)."""
    return [dramatiq.Message.decode(raw).args[0] for raw in list(broker.queues[queue].queue)]


async def run_worker(broker: Any) -> None:
    """Process every message on the test queues with a real Dramatiq worker."""

    def work() -> None:
        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
        worker.start()
        try:
            for queue in (QUEUE_A, QUEUE_B):
                broker.join(queue, timeout=20_000)
            worker.join()
        finally:
            worker.stop()

    await asyncio.to_thread(work)


async def effects() -> list[tuple[str, str]]:
    async with get_database().session() as session:
        rows = (
            await session.execute(select(OutboxEvent.data).where(OutboxEvent.type == EFFECT))
        ).all()
    return sorted((row.data["consumer"], row.data["cause"]) for row in rows)


async def unpublished() -> int:
    async with get_database().session() as session:
        return (
            await session.execute(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
            )
        ).scalar_one()


async def test_an_event_of_a_rolled_back_unit_of_work_is_never_published(broker) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Boom):
        async with unit_of_work() as session:
            await record_event(session, EVENT, {"n": 1})
            raise Boom

    assert await relay_batch() == 0
    assert await unpublished() == 0
    assert queued_event_ids(broker, QUEUE_A) == [] == queued_event_ids(broker, QUEUE_B)


async def test_a_committed_event_is_published_once_to_every_subscriber(broker) -> None:  # type: ignore[no-untyped-def]
    async with unit_of_work() as session:
        event_id = await record_event(session, EVENT, {"n": 1}, payment_id="pay_x")

    assert await relay_batch() == 1
    assert queued_event_ids(broker, QUEUE_A) == [event_id]
    assert queued_event_ids(broker, QUEUE_B) == [event_id]
    message = dramatiq.Message.decode(broker.queues[QUEUE_A].queue[0])
    assert message.args[1]["type"] == EVENT and message.args[1]["payment_id"] == "pay_x"
    assert message.args[1]["data"] == {"n": 1}

    # Published means marked: another pass sends nothing more.
    assert await relay_batch() == 0
    assert await unpublished() == 0
    assert len(queued_event_ids(broker, QUEUE_A)) == 1

    await run_worker(broker)
    assert sorted(calls) == [("test_outbox_a", event_id), ("test_outbox_b", event_id)]
    assert await effects() == [("test_outbox_a", event_id), ("test_outbox_b", event_id)]


async def test_a_relay_crash_after_publishing_republishes_and_the_consumer_applies_it_once(
    broker, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    async with unit_of_work() as session:
        event_id = await record_event(session, EVENT, {"n": 1})

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise Boom("relay died after publishing, before marking")

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "update", crash)
        with pytest.raises(Boom):
            await relay_batch()
    assert queued_event_ids(broker, QUEUE_A) == [event_id]
    assert await unpublished() == 1  # the mark rolled back with the crash

    assert await relay_batch() == 1  # the next pass sends it again
    assert queued_event_ids(broker, QUEUE_A) == [event_id, event_id]
    assert queued_event_ids(broker, QUEUE_B) == [event_id, event_id]
    assert await unpublished() == 0

    await run_worker(broker)
    assert Counter(calls) == {("test_outbox_a", event_id): 2, ("test_outbox_b", event_id): 2}
    assert await effects() == [("test_outbox_a", event_id), ("test_outbox_b", event_id)]


async def test_concurrent_relays_never_publish_the_same_event_twice(broker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Four relays, each on its own thread, event loop and connection, drain the outbox:
    FOR UPDATE SKIP LOCKED (PostgreSQL) or BEGIN IMMEDIATE (SQLite) keeps them apart."""
    total = 400
    async with unit_of_work() as session:
        for n in range(total):
            await record_event(session, EVENT, {"n": n})

    sent: list[str] = []
    sent_lock = threading.Lock()
    per_relay: Counter[int] = Counter()

    class RecordingActor:
        def send(self, event_id: str, message: dict[str, Any]) -> None:
            with sent_lock:
                sent.append(event_id)
            threading.Event().wait(0.0005)  # widen the window between claim and mark

    recording = RecordingActor()
    monkeypatch.setattr(
        outbox, "subscribers", lambda event_type: [recording] if event_type == EVENT else []
    )

    def relay(index: int) -> None:
        async def drain() -> None:
            try:
                while published := await relay_batch(limit=25):
                    per_relay[index] += published
            finally:
                await get_database().dispose()

        asyncio.run(drain())

    threads = [threading.Thread(target=relay, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join, 60)

    assert await unpublished() == 0
    duplicates = [event_id for event_id, n in Counter(sent).items() if n > 1]
    assert duplicates == []
    assert len(sent) == total == sum(per_relay.values())
