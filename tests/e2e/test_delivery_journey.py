"""A paid matter travels to the applicant's door on real processes, and a worker killed
half-way through rendering or dispatching leaves exactly one print-run entry and one
dispatch per licence.

`onetrip serve`, `onetrip relay` and `onetrip worker` run as OS processes on PostgreSQL
and RabbitMQ. The courier partner is an HTTP server of the test's own that verifies each
push with the `standardwebhooks` package and fails the first two; the partner reports
progress through the courier API, as a real one would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import _empty_all_tables, _pg_connect, service_url
from tests.e2e.test_processes_support import (
    Process,
    clean_env,
    free_port,
    isolated_broker_url,
    key_of,
    start_key,
    wait_ready,
)
from tests.factories import ADDRESS, auth, payment_body
from tests.webhook_receiver import Answer, Receiver, serving

DRIVING_LICENCE = {
    "code": "driving-licence-renewal",
    "name": "机动车驾驶证期满换证",
    "department": "PSB",
    "amount": 1000,
    "deliverable": True,
    "auto_issue": True,
}
COURIER_STEPS = ("accepted", "picked_up", "in_transit", "out_for_delivery", "delivered")


@pytest.fixture
def broker_url() -> Iterator[str]:
    with isolated_broker_url(service_url("rabbitmq")) as (isolated, _vhost):
        yield isolated


async def _fetch(database_url: str, sql: str, *args: Any) -> Any:
    conn = await _pg_connect(database_url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _eventually(
    what: str, probe: Callable[[], Awaitable[Any]], within: float, processes: list[Process]
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        for process in processes:
            assert process.alive(), f"{process.name} died:\n{process.output()}"
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        await asyncio.sleep(0.3)


class Stack:
    """serve + relay + worker processes on one database and broker."""

    def __init__(self, env: dict[str, str], tmp_path: Path, port: int) -> None:
        self.env, self.tmp_path, self.port = env, tmp_path, port
        self.base_url = f"http://127.0.0.1:{port}"
        self.processes: list[Process] = []

    def start(self, name: str, *args: str) -> Process:
        process = Process(name, args, self.env, self.tmp_path, self.tmp_path)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


async def _open_stack(
    database_url: str, broker_url: str, tmp_path: Path, **overrides: str
) -> tuple[Stack, str]:
    await _empty_all_tables(database_url)
    port = free_port()
    env = clean_env(
        DATABASE_URL=database_url,
        BROKER_URL=broker_url,
        ONETRIP_RELAY_INTERVAL="0.1",
        ONETRIP_PRINT_INTERVAL="1",
        ONETRIP_SPOOL_DIR=str(tmp_path / "spool"),
        ONETRIP_SIGNING_KEY=str(tmp_path / "signing-key.pem"),
        ONETRIP_PUBLIC_URL=f"http://127.0.0.1:{port}",
        ONETRIP_WEBHOOK_ALLOW_PRIVATE="true",
        ONETRIP_LOG_LEVEL="WARNING",
        **overrides,
    )
    stack = Stack(env, tmp_path, port)
    admin_key = start_key(env, "--role", "admin")
    stack.start("serve", "serve", "--host", "127.0.0.1", "--port", str(port))
    stack.start("relay", "relay")
    return stack, await asyncio.to_thread(key_of, admin_key)


async def _catalogue(
    client: httpx.AsyncClient, stack: Stack, admin: str, webhook_url: str | None
) -> tuple[str, str, str]:
    """The department, its matter, a courier partner; their keys and the partner secret."""
    response = await client.post(
        "/api/v1/admin/departments",
        json={"code": "PSB", "name": "杭州市公安局"},
        headers=auth(admin),
    )
    assert response.status_code == 201, response.text
    response = await client.post("/api/v1/admin/matters", json=DRIVING_LICENCE, headers=auth(admin))
    assert response.status_code == 201, response.text
    partner: dict[str, Any] = {
        "code": "SF",
        "name": "顺丰速运",
        "service_areas": [{"province": "浙江省", "city": "杭州市"}],
        "daily_capacity": 5000,
    }
    if webhook_url:
        partner["webhook_url"] = webhook_url
    response = await client.post(
        "/api/v1/admin/courier-partners", json=partner, headers=auth(admin)
    )
    assert response.status_code == 201, response.text
    secret = str(response.json()["secret"])
    psb = await asyncio.to_thread(
        key_of, start_key(stack.env, "--role", "department", "--department", "PSB")
    )
    courier = await asyncio.to_thread(
        key_of, start_key(stack.env, "--role", "courier", "--partner", "SF")
    )
    return psb, courier, secret


async def _pay_at_the_counter(client: httpx.AsyncClient, key: str, n: int) -> str:
    created = await client.post(
        "/api/v1/payments",
        json=payment_body(DRIVING_LICENCE["code"], reference=f"JSZ-2026-{n:06d}"),
        headers=auth(key, f"journey-create-{n}"),
    )
    assert created.status_code == 201, created.text
    payment_id = str(created.json()["id"])
    paid = await client.post(
        f"/api/v1/payments/{payment_id}/counter",
        json={"method": "cash", "operator": "窗口 3"},
        headers=auth(key, f"journey-counter-{n}"),
    )
    assert paid.status_code == 200, paid.text
    return payment_id


async def _licences(client: httpx.AsyncClient, key: str, payment_ids: list[str]) -> list[dict]:
    found = []
    for payment_id in payment_ids:
        response = await client.get(f"/api/v1/licenses?payment_id={payment_id}", headers=auth(key))
        assert response.status_code == 200, response.text
        found.extend(response.json()["data"])
    return found


@pytest.mark.parametrize("printer", ["spool", "cups"])
async def test_a_paid_matter_travels_to_the_door_on_real_processes(
    printer: str, broker_url: str, postgres_database_url: str, tmp_path: Path
) -> None:
    database_url = postgres_database_url
    printers = {"ONETRIP_PRINTERS": f"default={service_url('cups')}"} if printer == "cups" else {}
    stack, admin = await _open_stack(database_url, broker_url, tmp_path, **printers)
    try:
        stack.start("worker", "worker", "--threads", "4")
        await asyncio.to_thread(wait_ready, stack.base_url, stack.processes)
        async with (
            serving(Receiver()) as partner_server,
            httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client,
        ):
            partner_server.script = [Answer(status=503), Answer(status=500)]
            psb, courier, secret = await _catalogue(
                client, stack, admin, partner_server.url("/sf/onetrip")
            )
            partner_server.secrets = [secret]
            payment_ids = [await _pay_at_the_counter(client, psb, n) for n in range(1, 4)]

            async def all_dispatched() -> list[dict] | None:
                licences = await _licences(client, psb, payment_ids)
                done = len(licences) == 3 and all(x["status"] == "dispatched" for x in licences)
                return licences if done else None

            licences = await _eventually(
                "three licences issued, rendered, printed and dispatched",
                all_dispatched,
                90,
                stack.processes,
            )
            for licence in licences:
                events = (
                    await client.get(f"/api/v1/licenses/{licence['id']}/events", headers=auth(psb))
                ).text
                for step in ("issued", "rendered", "printed", "dispatched"):
                    assert step in events, f"{step} missing from {events}"
            if printer == "spool":
                assert list((tmp_path / "spool").rglob("*.pdf")), "the run reached the spool"
            else:  # CUPS took the run: its job id is recorded
                jobs = await _fetch(
                    database_url,
                    "SELECT count(*) FROM print_runs WHERE status = 'sent'"
                    " AND printer LIKE 'ipp://%' AND printer_job_id IS NOT NULL",
                )
                assert jobs >= 1, "no print run was taken by CUPS"
            items = await _fetch(database_url, "SELECT count(*) FROM print_run_items")
            assert items == 3

            # The partner failed the first two pushes: once the schedule's later retries
            # are due (we move the clock on by making them due now), each push arrives,
            # signed.
            async def retried_twice() -> bool:
                failed = await _fetch(
                    database_url,
                    "SELECT count(*) FROM webhook_attempts WHERE response_status >= 500",
                )
                await _fetch(
                    database_url,
                    "UPDATE webhook_deliveries SET next_attempt_at = now()"
                    " WHERE status <> 'delivered' AND next_attempt_at > now() RETURNING 1",
                )
                delivered = await _fetch(
                    database_url,
                    "SELECT count(*) FROM webhook_deliveries"
                    " WHERE event_type = 'dispatch.created' AND status = 'delivered'",
                )
                return failed >= 2 and delivered == 3

            await _eventually("each dispatch pushed to the partner", retried_twice, 60, [])
            pushed = [msgspec.json.decode(r.body) for r in partner_server.received if r.verified_by]
            created = {p["data"]["license_id"] for p in pushed if p["type"] == "dispatch.created"}
            assert created == {x["id"] for x in licences}
            assert all(r.verified_by == {secret} for r in partner_server.received)

            # The partner reports progress through the courier API.
            listed = await client.get("/courier/v1/dispatches", headers=auth(courier))
            assert listed.status_code == 200, listed.text
            dispatches = listed.json()["data"]
            assert {d["license_id"] for d in dispatches} == created
            start = datetime.now(UTC)
            for dispatch in dispatches:
                for minute, status in enumerate(COURIER_STEPS, start=1):
                    body: dict[str, Any] = {
                        "event_id": f"{dispatch['tracking_number']}-{minute}",
                        "status": status,
                        "occurred_at": (start + timedelta(minutes=minute)).isoformat(),
                        "location": "杭州市西湖区",
                    }
                    if status == "delivered":
                        body["recipient_name"] = ADDRESS["recipient"]
                    response = await client.post(
                        f"/courier/v1/dispatches/{dispatch['id']}/events",
                        json=body,
                        headers=auth(courier),
                    )
                    assert response.status_code in (200, 201), response.text

            async def all_delivered() -> bool:
                licences = await _licences(client, psb, payment_ids)
                return all(x["status"] == "delivered" for x in licences)

            await _eventually("every licence delivered", all_delivered, 30, stack.processes)
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("held_table", "step"),
    [("license_documents", "rendering"), ("dispatches", "dispatching")],
)
async def test_a_worker_killed_mid_step_leaves_one_print_entry_and_one_dispatch(
    held_table: str, step: str, broker_url: str, postgres_database_url: str, tmp_path: Path
) -> None:
    """The worker's jobs stop at `held_table` (the test holds a lock on it), the worker is
    SIGKILLed with jobs under way, the lock released, a second worker started: every
    licence must still end with exactly one print-run entry and one dispatch."""
    database_url = postgres_database_url
    stack, admin = await _open_stack(database_url, broker_url, tmp_path)
    lock: Any = None
    count = 6
    try:
        first = stack.start("worker-1", "worker", "--threads", "4")
        await asyncio.to_thread(wait_ready, stack.base_url, stack.processes)
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:
            psb, _courier, _secret = await _catalogue(client, stack, admin, None)
            lock = await _pg_connect(database_url)
            await lock.execute(f"BEGIN; LOCK TABLE {held_table} IN EXCLUSIVE MODE")
            payment_ids = [await _pay_at_the_counter(client, psb, n) for n in range(1, count + 1)]

            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )

            async def stuck() -> bool:
                return bool(await _fetch(database_url, waiting) >= 1)

            await _eventually(f"the worker stuck in {step}", stuck, 60, stack.processes)
            await asyncio.sleep(0.5)
            os.killpg(first.pid, signal.SIGKILL)
            first.popen.wait(timeout=10)
            stack.processes.remove(first)
            await lock.execute("ROLLBACK")
            await lock.close()
            lock = None
            stack.start("worker-2", "worker", "--threads", "4")

            async def all_dispatched() -> bool:
                licences = await _licences(client, psb, payment_ids)
                return len(licences) == count and all(x["status"] == "dispatched" for x in licences)

            await _eventually("every licence dispatched after the kill", all_dispatched, 120, [])
            await asyncio.sleep(1.5)  # a duplicate still in flight would land now
            per_licence = (
                "SELECT max(n) FROM (SELECT count(*) AS n FROM {table} GROUP BY license_id) t"
            )
            assert await _fetch(database_url, "SELECT count(*) FROM licenses") == count
            assert await _fetch(database_url, "SELECT count(*) FROM print_run_items") == count
            assert await _fetch(database_url, per_licence.format(table="print_run_items")) == 1
            assert await _fetch(database_url, "SELECT count(*) FROM dispatches") == count
            assert await _fetch(database_url, per_licence.format(table="dispatches")) == 1
    finally:
        if lock is not None:
            await lock.close()
        stack.stop()
