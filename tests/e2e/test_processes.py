"""The scaled-out deployment, for real: PostgreSQL, RabbitMQ (or Redis), and `onetrip
serve --workers 2`, `onetrip worker` and `onetrip relay` as separate OS processes.

One stack per broker, started once for the module.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

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


@dataclass
class Stack:
    base_url: str
    database_url: str
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)
    admin_key: str = ""


@pytest.fixture(scope="module", params=["rabbitmq", "redis"])
def stack(
    request: pytest.FixtureRequest,
    postgres_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    with isolated_broker_url(service_url(request.param)) as (broker_url, _vhost):
        asyncio.run(_empty_all_tables(postgres_database_url))
        workdir = tmp_path_factory.mktemp(f"stack-{request.param}")
        port = free_port()
        env = clean_env(
            DATABASE_URL=postgres_database_url,
            BROKER_URL=broker_url,
            ONETRIP_RELAY_INTERVAL="0.1",
            ONETRIP_SPOOL_DIR=str(workdir / "spool"),
            ONETRIP_WEBHOOK_ALLOW_PRIVATE="true",
            ONETRIP_LOG_LEVEL="WARNING",
        )
        stack = Stack(f"http://127.0.0.1:{port}", postgres_database_url, env)
        commands = {
            "serve": ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            "worker": ["worker", "--threads", "4"],
            "relay": ["relay"],
        }
        try:
            admin = start_key(env, "--role", "admin")  # while the services start
            for name, args in commands.items():
                stack.processes.append(Process(name, args, env, workdir, workdir))
            stack.admin_key = key_of(admin)
            wait_ready(stack.base_url, stack.processes)
            yield stack
        except BaseException:
            print_logs(stack.processes)
            raise
        finally:
            for process in stack.processes:
                process.stop()


@pytest.fixture(autouse=True)
def _print_logs_when_the_test_fails(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before or any(not p.alive() for p in stack.processes):
        print_logs(stack.processes)


async def receipt_rendered(database_url: str, payment_id: str) -> bool:
    conn = await _pg_connect(database_url)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM payment_receipts WHERE payment_id = $1", payment_id
        )
    finally:
        await conn.close()
    return bool(found)


def wait_for_receipt(stack: Stack, payment_id: str, timeout: float = 20) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if asyncio.run(receipt_rendered(stack.database_url, payment_id)):
            return time.monotonic() - started
        for process in stack.processes:
            assert process.alive(), f"{process.name} died"
        time.sleep(0.1)
    raise AssertionError(f"the worker did not render the receipt of {payment_id} in {timeout}s")


def test_ready_reports_the_database_and_the_broker(stack: Stack) -> None:
    response = httpx.get(f"{stack.base_url}/health/ready", timeout=5)
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_pay_and_the_worker_renders_the_receipt(stack: Stack) -> None:
    admin = stack.admin_key
    client = httpx.Client(base_url=stack.base_url, timeout=15)

    # The catalogue, through the API with the admin key from the command line.
    for code, name in (("PSB", "市公安局"), ("NRB", "自然资源和规划局")):
        response = client.post(
            "/api/v1/admin/departments", json={"code": code, "name": name}, headers=auth(admin)
        )
        assert response.status_code == 201, response.text
    response = client.post("/api/v1/admin/matters", json=PASSPORT, headers=auth(admin))
    assert response.status_code == 201, response.text
    psb_key = start_key(stack.env, "--role", "department", "--department", "PSB")
    finance_key = start_key(stack.env, "--role", "finance")
    psb, finance = key_of(psb_key), key_of(finance_key)

    # Several requests, so both API processes are likely to serve some.
    created = client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(psb, "e2e-processes-1")
    )
    assert created.status_code == 201, created.text
    payment = created.json()
    assert payment["amount"] == 12000 and payment["status"] == "created"
    replay = client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(psb, "e2e-processes-1")
    )
    assert replay.status_code == 201 and replay.json()["id"] == payment["id"]

    token = payment["payment_url"].rsplit("/", 1)[1]
    page = client.get(f"/pay/{token}")
    assert page.status_code == 200 and "4242424242424242" in page.text
    paid = client.post(
        f"/pay/{token}/sandbox", data={"card_number": "4242424242424242"}, follow_redirects=False
    )
    assert paid.status_code == 303, paid.text
    current = client.get(f"/api/v1/payments/{payment['id']}", headers=auth(psb)).json()
    assert current["status"] == "succeeded"

    # The relay publishes payment.succeeded and the worker process renders the receipt,
    # before anyone asks the API for it (which would render it on demand).
    wait_for_receipt(stack, payment["id"])

    pdf = client.get(f"/api/v1/payments/{payment['id']}/receipt.pdf", headers=auth(psb))
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"].startswith("application/pdf")
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "普通护照签发" in text
    assert "张伟" in text

    balance = client.get("/api/v1/ledger/trial-balance", headers=auth(finance)).json()
    assert balance["total_debits"] == balance["total_credits"] == 12000


def test_every_process_is_still_running(stack: Stack) -> None:
    assert [p.name for p in stack.processes if not p.alive()] == []


def test_worker_and_relay_stop_cleanly_on_sigterm(stack: Stack) -> None:
    """Runs last for each stack: SIGTERM alone ends the worker and the relay."""
    stopping = [p for p in stack.processes if p.name in ("worker", "relay")]
    for process in stopping:
        process.popen.terminate()
    for process in stopping:
        process.popen.wait(timeout=15)
        assert process.popen.returncode in (0, -15), process.output()
