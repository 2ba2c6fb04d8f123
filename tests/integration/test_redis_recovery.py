"""A dead Redis worker's taken messages go back to their queue on time, on a real Redis.

"Dead" is a broker that fetched messages (so they sit in its ack set) and then went
silent past the heartbeat timeout, as a SIGKILLed worker does; each test has a Redis
namespace of its own.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest

from onetrip.broker import make_broker
from onetrip.broker_redis import (
    REDIS_HEARTBEAT_TIMEOUT_MS,
    RecoveringRedisBroker,
    RedisRecovery,
    make_redis_broker,
)
from tests.conftest import service_url

QUEUE = "test_redis_recovery"


@pytest.fixture
def redis_url() -> str:
    return service_url("redis")


@pytest.fixture
def brokers(redis_url: str) -> Iterator[Any]:
    """`brokers(heartbeat_timeout=ms)` → a fresh broker process stand-in, same namespace."""
    namespace = f"onetrip-test-{secrets.token_hex(4)}"
    made: list[RecoveringRedisBroker] = []

    def make(heartbeat_timeout: int = 300) -> RecoveringRedisBroker:
        broker = make_redis_broker(
            redis_url, namespace=namespace, heartbeat_timeout=heartbeat_timeout
        )
        broker.declare_queue(QUEUE)
        made.append(broker)
        return broker

    yield make
    if made:
        client = made[0].client
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)
    for broker in made:
        broker.close()


def enqueue(broker: dramatiq.Broker, n: int) -> None:
    for i in range(n):
        broker.enqueue(
            dramatiq.Message(
                queue_name=QUEUE, actor_name="recovered", args=(i,), kwargs={}, options={}
            )
        )


def take(broker: RecoveringRedisBroker, n: int) -> None:
    """Fetch `n` messages into `broker`'s ack set and never acknowledge them."""
    consumer = broker.consume(QUEUE, prefetch=n, timeout=100)
    assert next(consumer) is not None
    assert len(consumer.message_cache) + len(consumer.queued_message_ids) == n


def waiting(broker: RecoveringRedisBroker) -> int:
    return int(broker.client.llen(f"{broker.namespace}:{QUEUE}"))


def test_the_redis_broker_of_the_service_recovers_dead_workers(redis_url: str) -> None:
    broker = make_broker(redis_url)
    try:
        assert isinstance(broker, RecoveringRedisBroker)
        assert broker.heartbeat_timeout == REDIS_HEARTBEAT_TIMEOUT_MS <= 30_000
        assert any(isinstance(m, RedisRecovery) for m in broker.middleware)
    finally:
        broker.close()


def test_a_dead_workers_taken_messages_go_back_to_the_queue(brokers: Any) -> None:
    dead = brokers()
    enqueue(dead, 5)
    take(dead, 3)
    assert waiting(dead) == 2
    time.sleep(0.5)  # past its heartbeat timeout

    alive = brokers()
    alive.recover_dead_workers()

    assert waiting(alive) == 5
    assert not alive.client.exists(f"{alive.namespace}:__acks__.{dead.broker_id}.{QUEUE}")


def test_a_live_workers_taken_messages_stay_with_it(brokers: Any) -> None:
    busy = brokers(heartbeat_timeout=10_000)
    enqueue(busy, 3)
    take(busy, 3)

    brokers(heartbeat_timeout=10_000).recover_dead_workers()

    assert waiting(busy) == 0


def test_a_new_worker_runs_the_jobs_a_killed_one_had_taken(brokers: Any) -> None:
    dead = brokers()
    enqueue(dead, 4)
    take(dead, 4)
    time.sleep(0.5)

    alive = brokers()
    done: list[int] = []
    lock = threading.Lock()

    def recovered(i: int) -> None:
        with lock:
            done.append(i)

    dramatiq.actor(recovered, broker=alive, queue_name=QUEUE, actor_name="recovered")
    recovery = next(m for m in alive.middleware if isinstance(m, RedisRecovery))
    recovery.interval = 0.2
    worker = dramatiq.Worker(alive, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(done) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert sorted(done) == [0, 1, 2, 3]
