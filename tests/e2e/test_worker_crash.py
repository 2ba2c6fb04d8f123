"""A worker SIGKILLed mid-batch loses no job, on RabbitMQ and on Redis, for real.

`onetrip serve`, `onetrip relay` and `onetrip worker` run as OS processes on PostgreSQL.
Thirty payments are collected at the counter, so the worker has thirty receipts to
render. The test holds a lock on the receipts table, so the worker's receipt jobs stop
half-way (drawn, their transaction open, more messages prefetched behind them); then
the worker is SIGKILLed, the lock released, and a second worker started. Every receipt
must then exist exactly once within a minute: the jobs the dead worker had taken come
back from the broker (RabbitMQ when the connection drops, Redis when the dead worker's
heartbeat expires) and the consumer's deduplication keeps the redelivered ones single.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import _empty_all_tables, _pg_connect, service_url
from tests.e2e.test_processes_support import (
    Process,
    clean_env,
    free_port,
    isolated_broker_url,
    key_of,
    print_logs,
    start_key,
    wait_ready,
)
from tests.factories import PASSPORT, auth, payment_body

PAYMENTS = 30
WORKER_THREADS = 4
#: A Redis database of this test's own: the other process tests' workers use theirs,
#: and one of them taking our messages would hide (or fake) the behaviour under test.
REDIS_DB = 13


def _redis_url_of_our_own(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{REDIS_DB}", "", ""))


@pytest.fixture(params=["rabbitmq", "redis"])
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = service_url(request.param)
    if request.param == "redis":
        import redis

        url = _redis_url_of_our_own(url)
        client = redis.Redis.from_url(url)
        for key in client.scan_iter("dramatiq:*"):  # a previous run's leftovers
            client.delete(key)
        client.close()
        yield url
        return
    with isolated_broker_url(url) as (isolated, _vhost):
        yield isolated


async def _fetch(database_url: str, sql: str, *args: Any) -> Any:
    conn = await _pg_connect(database_url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


RECEIPTS = "SELECT count(*) FROM payment_receipts WHERE payment_id = ANY($1::text[])"
RECEIPT_MARKS = (
    "SELECT count(*) FROM consumed_events c JOIN outbox_events e ON e.id = c.event_id"
    " WHERE c.consumer = 'payments.receipt' AND e.type = 'payment.succeeded'"
    " AND e.payment_id = ANY($1::text[])"
)
WAITING_ON_A_LOCK = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
"""


async def _pay_at_the_counter(client: httpx.AsyncClient, key: str, n: int) -> str:
    created = await client.post(
        "/api/v1/payments",
        json=payment_body(reference=f"CRJ-2026-{n:06d}"),
        headers=auth(key, f"crash-create-{n}"),
    )
    assert created.status_code == 201, created.text
    payment_id = str(created.json()["id"])
    paid = await client.post(
        f"/api/v1/payments/{payment_id}/counter",
        json={"method": "cash", "operator": "窗口 3"},
        headers=auth(key, f"crash-counter-{n}"),
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "succeeded"
    return payment_id


async def test_the_jobs_of_a_killed_worker_run_again_exactly_once(
    broker_url: str, postgres_database_url: str, tmp_path: Path
) -> None:
    database_url = postgres_database_url
    await _empty_all_tables(database_url)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = clean_env(
        DATABASE_URL=database_url,
        BROKER_URL=broker_url,
        ONETRIP_RELAY_INTERVAL="0.1",
        ONETRIP_SPOOL_DIR=str(tmp_path / "spool"),
        ONETRIP_LOG_LEVEL="WARNING",
    )

    def start(name: str, *args: str) -> Process:
        process = Process(name, args, env, tmp_path, tmp_path)
        processes.append(process)
        return process

    processes: list[Process] = []
    lock: Any = None
    try:
        admin_key = start_key(env, "--role", "admin")
        start("serve", "serve", "--host", "127.0.0.1", "--port", str(port))
        start("relay", "relay")
        first = start("worker-1", "worker", "--threads", str(WORKER_THREADS))
        admin = key_of(admin_key)
        await asyncio.to_thread(wait_ready, base_url, processes)

        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            response = await client.post(
                "/api/v1/admin/departments",
                json={"code": "PSB", "name": "市公安局"},
                headers=auth(admin),
            )
            assert response.status_code == 201, response.text
            response = await client.post(
                "/api/v1/admin/matters", json=PASSPORT, headers=auth(admin)
            )
            assert response.status_code == 201, response.text
            psb = await asyncio.to_thread(
                key_of, start_key(env, "--role", "department", "--department", "PSB")
            )

            # Receipts cannot be written while we hold this: the worker's jobs stop there.
            lock = await _pg_connect(database_url)
            await lock.execute("BEGIN; LOCK TABLE payment_receipts IN EXCLUSIVE MODE")
            payment_ids = list(
                await asyncio.gather(
                    *(_pay_at_the_counter(client, psb, n) for n in range(1, PAYMENTS + 1))
                )
            )

        # Mid-batch: several receipt jobs under way (drawn, waiting to write), the rest
        # prefetched or still queued.
        deadline = time.monotonic() + 30
        while await _fetch(database_url, WAITING_ON_A_LOCK) < 2:
            assert time.monotonic() < deadline, "the worker never started the receipt jobs"
            assert first.alive(), "worker-1 died"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # let it prefetch what it will

        os.killpg(first.pid, signal.SIGKILL)
        first.popen.wait(timeout=10)
        killed_at = time.monotonic()
        await lock.execute("ROLLBACK")  # the dead worker's transactions roll back now
        await lock.close()
        lock = None
        assert await _fetch(database_url, RECEIPTS, payment_ids) == 0
        start("worker-2", "worker", "--threads", str(WORKER_THREADS))

        # Wait for the receipt jobs' marks too, not only the receipts: the applicant's
        # notification draws a missing receipt itself when it attaches one, so every
        # receipt can exist before the killed worker's receipt jobs were redelivered.
        receipts = 0
        while time.monotonic() - killed_at < 60:
            receipts = await _fetch(database_url, RECEIPTS, payment_ids)
            if (
                receipts == PAYMENTS
                and await _fetch(database_url, RECEIPT_MARKS, payment_ids) == PAYMENTS
            ):
                break
            await asyncio.sleep(0.5)
        assert receipts == PAYMENTS, f"{PAYMENTS - receipts} receipts missing a minute after"
        await asyncio.sleep(1)  # any duplicate delivery still in flight lands now

        assert await _fetch(database_url, RECEIPTS, payment_ids) == PAYMENTS
        assert (
            await _fetch(
                database_url,
                "SELECT count(DISTINCT payment_id) FROM payment_receipts"
                " WHERE payment_id = ANY($1::text[])",
                payment_ids,
            )
            == PAYMENTS
        )
        marks = await _fetch(database_url, RECEIPT_MARKS, payment_ids)
        assert marks == PAYMENTS
        assert [p.name for p in processes if not p.alive()] == ["worker-1"]
    except BaseException:
        print_logs(processes)
        raise
    finally:
        if lock is not None:
            await lock.close()
        for process in processes:
            process.stop()
