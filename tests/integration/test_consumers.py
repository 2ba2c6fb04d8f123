"""`@consumes`: an event's effect happens once per consumer, on SQLite and PostgreSQL.

The actors below are real Dramatiq actors on the StubBroker, fed by the real relay and run
by a real worker; nothing of ours is mocked. The effect they apply is an outbox row, so
"once" and "rolled back" are read from the database.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import dramatiq
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip.consumers import Event, consumes
from onetrip.db import get_database, unit_of_work
from onetrip.outbox import ConsumedEvent, OutboxEvent, record_event, relay_batch
from tests.factories import auth, make_key, seed_catalogue
from tests.integration.test_payments_support import create_payment, pay_with_sandbox

QUEUE = "test_consumers"
EVENT = "test.consumers.happened"
EFFECT = "test.consumers.effect"

calls: Counter[str] = Counter()  # handler and prepare runs, by consumer
failures: dict[str, int] = {}  # consumer → how many more runs raise before one succeeds
poisoned: set[int] = set()  # events (by data["n"]) the plain consumer always fails on
_lock = threading.Lock()


class Boom(Exception):
    pass


def _count(name: str) -> int:
    with _lock:
        calls[name] += 1
        left = failures.get(name, 0)
        if left:
            failures[name] = left - 1
        return left


async def _apply(session: AsyncSession, consumer: str, event: Event, extra: Any = None) -> None:
    """The effect: an outbox row naming the consumer and the cause; then maybe fail."""
    await record_event(
        session,
        EFFECT,
        {"consumer": consumer, "cause": event.id, "n": event.data["n"], "extra": extra},
    )
    if _count(consumer):
        raise Boom(f"{consumer} fails after writing its effect")
    if consumer == "test.consumers.plain" and event.data["n"] in poisoned:
        raise Boom(f"{consumer} always fails on event {event.data['n']}")


@consumes(EVENT, consumer="test.consumers.plain", queue=QUEUE, min_backoff=10, max_backoff=20)
async def consumers_test_plain(session: AsyncSession, event: Event) -> None:
    await _apply(session, "test.consumers.plain", event)


async def _prepare(event: Event) -> str:
    _count("prepare")
    return f"drawn for {event.id}"


@consumes(
    EVENT,
    consumer="test.consumers.prepared",
    queue=QUEUE,
    prepare=_prepare,
    min_backoff=10,
    max_backoff=20,
)
async def consumers_test_prepared(session: AsyncSession, event: Event, drawn: str) -> None:
    await _apply(session, "test.consumers.prepared", event, drawn)


MANY_EVENT = "test.consumers.many"


async def _apply_many(session: AsyncSession, batch: list[tuple[Event, Any]]) -> None:
    for event, _ in batch:
        await record_event(
            session,
            EFFECT,
            {"consumer": "test.consumers.many", "cause": event.id, "n": 0, "extra": "together"},
        )
    if _count("test.consumers.many:batch"):
        raise Boom("the set-based path fails after writing its effects")


@consumes(
    MANY_EVENT,
    consumer="test.consumers.many",
    queue=QUEUE,
    handle_many=_apply_many,
    min_backoff=10,
    max_backoff=20,
)
async def consumers_test_many(session: AsyncSession, event: Event) -> None:
    await _apply(session, "test.consumers.many", event)


@pytest.fixture
def broker(db):  # type: ignore[no-untyped-def]
    """The StubBroker the `db` fixture configured, empty, with fresh counters."""
    broker = dramatiq.get_broker()
    assert isinstance(broker, dramatiq.brokers.stub.StubBroker)
    broker.flush_all()
    calls.clear()
    failures.clear()
    poisoned.clear()
    yield broker
    broker.flush_all()
    failures.clear()
    poisoned.clear()


async def run_worker(broker: Any, queues: tuple[str, ...] = (QUEUE,)) -> None:
    """Process every message on `queues` (retries included) with a real Dramatiq worker."""

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


async def effects() -> list[tuple[str, str, Any]]:
    async with get_database().session() as session:
        rows = (
            await session.execute(select(OutboxEvent.data).where(OutboxEvent.type == EFFECT))
        ).all()
    return sorted((r.data["consumer"], r.data["cause"], r.data["extra"]) for r in rows)


async def marks(consumer: str) -> list[str]:
    async with get_database().session() as session:
        stmt = select(ConsumedEvent.event_id).where(ConsumedEvent.consumer == consumer)
        return sorted((await session.execute(stmt)).scalars())


async def publish(n: int = 1) -> str:
    """Commit an event and relay it: one message per consumer."""
    async with unit_of_work() as session:
        event_id = await record_event(session, EVENT, {"n": n}, subject_id=f"sub_{n}")
    assert await relay_batch() == 1
    return event_id


def send_again(broker: Any) -> None:
    """Put a second copy of every waiting message on the queue (a redelivery)."""
    for raw in list(broker.queues[QUEUE].queue):
        broker.enqueue(dramatiq.Message.decode(raw))


async def test_an_event_delivered_twice_has_its_effect_once(broker) -> None:  # type: ignore[no-untyped-def]
    event_id = await publish()
    send_again(broker)
    assert len(broker.queues[QUEUE].queue) == 4  # two consumers, each twice

    await run_worker(broker)

    assert await effects() == [
        ("test.consumers.plain", event_id, None),
        ("test.consumers.prepared", event_id, f"drawn for {event_id}"),
    ]
    assert await marks("test.consumers.plain") == [event_id]
    assert await marks("test.consumers.prepared") == [event_id]
    assert calls["test.consumers.plain"] == 1 == calls["test.consumers.prepared"]


async def test_a_redelivery_after_the_effect_committed_changes_nothing(broker) -> None:  # type: ignore[no-untyped-def]
    event_id = await publish()
    copies = [dramatiq.Message.decode(raw) for raw in broker.queues[QUEUE].queue]
    await run_worker(broker)
    assert calls == {"test.consumers.plain": 1, "test.consumers.prepared": 1, "prepare": 1}

    for message in copies:  # the relay crashed before marking: the same messages again
        broker.enqueue(message)
    await run_worker(broker)

    assert len(await effects()) == 2
    # Neither handler ran again, and the consumed event skipped its prepare step too.
    assert calls == {"test.consumers.plain": 1, "test.consumers.prepared": 1, "prepare": 1}
    assert await marks("test.consumers.plain") == [event_id]


async def test_a_handler_that_raises_leaves_no_mark_and_its_retry_applies_it(broker) -> None:  # type: ignore[no-untyped-def]
    failures["test.consumers.plain"] = 1
    failures["test.consumers.prepared"] = 2
    event_id = await publish()

    await run_worker(broker)

    # Each failed run wrote its effect, then raised: the effect and the mark rolled back
    # together, so the retry found the event unconsumed and applied it (once).
    assert calls["test.consumers.plain"] == 2
    assert calls["test.consumers.prepared"] == 3
    assert calls["prepare"] == 3  # prepare runs again before each retry
    assert await effects() == [
        ("test.consumers.plain", event_id, None),
        ("test.consumers.prepared", event_id, f"drawn for {event_id}"),
    ]
    assert await marks("test.consumers.plain") == [event_id]
    assert await marks("test.consumers.prepared") == [event_id]


async def test_a_handler_that_raises_on_its_last_try_commits_nothing(broker) -> None:  # type: ignore[no-untyped-def]
    failures["test.consumers.plain"] = 99  # more than its retries
    event_id = await publish()
    message = next(
        dramatiq.Message.decode(raw)
        for raw in broker.queues[QUEUE].queue
        if dramatiq.Message.decode(raw).actor_name == "consumers_test_plain"
    )
    broker.flush(QUEUE)
    broker.enqueue(message.copy(options={**message.options, "max_retries": 0}))

    with pytest.raises(Boom):  # dead-lettered: the stub broker's join re-raises it
        await run_worker(broker)

    assert calls["test.consumers.plain"] == 1
    assert await effects() == []
    assert await marks("test.consumers.plain") == []
    assert event_id  # the event itself stays committed in the outbox


# --- a relay pass's events together: one message, one unit of work per consumer -------


async def publish_many(n: int) -> list[str]:
    """Commit n events, then relay them in one pass."""
    async with unit_of_work() as session:
        ids = [
            await record_event(session, EVENT, {"n": i}, subject_id=f"sub_{i}")
            for i in range(1, n + 1)
        ]
    assert await relay_batch() == n
    return ids


def waiting(broker: Any) -> list[dramatiq.Message[Any]]:
    return [dramatiq.Message.decode(raw) for raw in broker.queues[QUEUE].queue]


async def test_a_relay_pass_sends_each_consumer_its_events_in_few_messages(broker) -> None:  # type: ignore[no-untyped-def]
    ids = await publish_many(12)
    messages = waiting(broker)
    by_actor = Counter(m.actor_name for m in messages)
    # 12 events, at least two messages an actor (the workers share them), oldest first
    assert by_actor == {"consumers_test_plain": 2, "consumers_test_prepared": 2}
    plain = [m for m in messages if m.actor_name == "consumers_test_plain"]
    assert [e["id"] for m in plain for e in m.kwargs["events"]] == ids

    await run_worker(broker)

    assert await effects() == sorted(
        [("test.consumers.plain", i, None) for i in ids]
        + [("test.consumers.prepared", i, f"drawn for {i}") for i in ids]
    )
    assert await marks("test.consumers.plain") == sorted(ids)
    assert calls == {"test.consumers.plain": 12, "test.consumers.prepared": 12, "prepare": 12}


async def test_a_batch_delivered_twice_has_each_effect_once(broker) -> None:  # type: ignore[no-untyped-def]
    ids = await publish_many(8)
    send_again(broker)
    await run_worker(broker)

    assert len(await effects()) == 16
    assert await marks("test.consumers.prepared") == sorted(ids)
    # No handler ran twice. (A copy taken while the first was still running prepares
    # again: prepare may run more than once; only the handler's writes count.)
    assert calls["test.consumers.plain"] == 8 == calls["test.consumers.prepared"]
    assert 8 <= calls["prepare"] <= 16


async def test_one_failing_event_does_not_hold_back_its_batch(broker) -> None:  # type: ignore[no-untyped-def]
    ids = await publish_many(8)  # two batches of four an actor
    assert all(len(m.kwargs["events"]) == 4 for m in waiting(broker))
    poisoned.add(3)  # the plain consumer fails on the third event, every time
    failures["test.consumers.plain"] = 1  # and its first run of all fails too

    with pytest.raises(Boom):  # the third event, dead-lettered after its retries
        await run_worker(broker)

    # Each failed batch rolled back (effects and marks) and its events were applied one
    # by one: the third's partner and every other event have their effect, once.
    applied = sorted(ids[:2] + ids[3:])
    assert await marks("test.consumers.plain") == applied
    plain = [cause for consumer, cause, _ in await effects() if consumer == "test.consumers.plain"]
    assert plain == applied
    assert await marks("test.consumers.prepared") == sorted(ids)


async def test_a_batch_goes_through_handle_many_and_falls_back_to_the_handler(broker) -> None:  # type: ignore[no-untyped-def]
    async def publish_many_of(n: int) -> list[str]:
        async with unit_of_work() as session:
            ids = [await record_event(session, MANY_EVENT, {"n": i}) for i in range(n)]
        assert await relay_batch() >= n  # (and the effects written before: no subscriber)
        return ids

    together = await publish_many_of(4)  # two batches of two: handle_many each
    await run_worker(broker)
    assert await effects() == sorted(("test.consumers.many", i, "together") for i in together)
    assert calls["test.consumers.many"] == 0  # the per-event handler never ran

    failures["test.consumers.many:batch"] = 99  # the set-based path always fails now
    alone = await publish_many_of(4)
    await run_worker(broker)
    # rolled back with its marks, then each event through the handler: once each
    assert await marks("test.consumers.many") == sorted(together + alone)
    mine = [(consumer, extra) for consumer, cause, extra in await effects() if cause in alone]
    assert mine == [("test.consumers.many", None)] * 4
    assert calls["test.consumers.many"] == 4, calls


def test_a_consumer_name_must_fit_the_consumed_events_table() -> None:
    with pytest.raises(ValueError, match="consumer must be"):
        consumes(EVENT, consumer="x" * 65, queue=QUEUE)
    with pytest.raises(ValueError, match="at least one event type"):
        consumes(consumer="test.consumers.none", queue=QUEUE)


# --- the receipt consumer of payments ---------------------------------------------------


@pytest.fixture
async def client(db, env):  # type: ignore[no-untyped-def]
    """The app without its embedded worker: this test runs the relay and worker itself."""
    from onetrip.app import create_app
    from onetrip.settings import get_settings

    async with AsyncTestClient(app=create_app(get_settings(), embedded_worker=False)) as client:
        yield client


async def count(table: Any, *where: Any) -> int:
    async with get_database().session() as session:
        stmt = select(func.count()).select_from(table).where(*where)
        return int((await session.execute(stmt)).scalar_one())


async def test_the_receipt_of_a_payment_delivered_twice_is_rendered_and_kept_once(client) -> None:  # type: ignore[no-untyped-def]
    from payments.models import Receipt

    admin = await make_key("admin")
    await seed_catalogue(client, admin)
    psb = await make_key("department", ["PSB"])
    payment = await create_payment(client, psb)
    await pay_with_sandbox(client, payment)

    broker = dramatiq.get_broker()
    while await relay_batch():
        pass
    receipt_jobs = [
        dramatiq.Message.decode(raw)
        for raw in broker.queues["payments"].queue
        if dramatiq.Message.decode(raw).actor_name == "render_payment_receipt"
    ]
    assert len(receipt_jobs) == 1
    broker.enqueue(receipt_jobs[0])  # delivered twice

    await run_worker(broker, ("payments",))

    assert await count(Receipt.__table__, Receipt.payment_id == payment["id"]) == 1
    consumer = ConsumedEvent.__table__.c.consumer
    assert await count(ConsumedEvent.__table__, consumer == "payments.receipt") == 1
    response = await client.get(f"/api/v1/payments/{payment['id']}/receipt.pdf", headers=auth(psb))
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"%PDF")
