"""Printing in the scaled-out deployment: `onetrip serve`, `onetrip worker` and `onetrip
relay` as separate processes on PostgreSQL and RabbitMQ. A paid payment's licence,
issued through the API, is rendered by the worker and printed by the relay's periodic
print job (every second here) on the spool folder and on a real CUPS queue."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from tests.conftest import _empty_all_tables, service_url
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
from tests.integration.test_delivery_print_cups import _output_folders


@pytest.fixture(scope="module", params=["spool", "cups"])
def stack(
    request: pytest.FixtureRequest,
    postgres_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    printer = "spool:" if request.param == "spool" else service_url("cups")
    with isolated_broker_url(service_url("rabbitmq")) as (broker_url, _vhost):
        asyncio.run(_empty_all_tables(postgres_database_url))
        workdir = tmp_path_factory.mktemp(f"print-{request.param}")
        port = free_port()
        env = clean_env(
            DATABASE_URL=postgres_database_url,
            BROKER_URL=broker_url,
            ONETRIP_RELAY_INTERVAL="0.1",
            ONETRIP_PRINT_INTERVAL="1",
            ONETRIP_PRINTERS=f"default={printer}",
            ONETRIP_SPOOL_DIR=str(workdir / "spool"),
            ONETRIP_WEBHOOK_ALLOW_PRIVATE="true",
            ONETRIP_LOG_LEVEL="WARNING",
        )
        processes: list[Process] = []
        try:
            admin = start_key(env, "--role", "admin")
            commands = {
                "serve": ["serve", "--host", "127.0.0.1", "--port", str(port)],
                "worker": ["worker", "--threads", "2"],
                "relay": ["relay"],
            }
            for name, args in commands.items():
                processes.append(Process(name, args, env, workdir, workdir))
            base_url = f"http://127.0.0.1:{port}"
            wait_ready(base_url, processes)
            failed_before = request.session.testsfailed
            yield {
                "base_url": base_url,
                "env": env,
                "admin": key_of(admin),
                "printer": request.param,
                "spool": workdir / "spool",
                "processes": processes,
            }
            if request.session.testsfailed > failed_before:
                print_logs(processes)
        except BaseException:
            print_logs(processes)
            raise
        finally:
            for process in processes:
                process.stop()


def _wait(what: str, check: Any, stack: dict[str, Any], within: float = 120) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        for process in stack["processes"]:
            assert process.alive(), f"{process.name} died"
        time.sleep(0.2)
    print_logs(stack["processes"])
    raise AssertionError(f"{what} did not happen within {within}s")


@pytest.mark.timeout(400)  # Ghostscript in cups-pdf is slow on a busy machine
def test_a_paid_licence_is_rendered_and_printed_by_the_worker_and_relay(stack) -> None:
    client = httpx.Client(base_url=stack["base_url"], timeout=15)
    admin = auth(stack["admin"])
    response = client.post(
        "/api/v1/admin/departments", json={"code": "PSB", "name": "市公安局"}, headers=admin
    )
    assert response.status_code == 201, response.text
    assert client.post("/api/v1/admin/matters", json=PASSPORT, headers=admin).status_code == 201
    psb = key_of(start_key(stack["env"], "--role", "department", "--department", "PSB"))

    created = client.post("/api/v1/payments", json=payment_body(), headers=auth(psb, "p-1"))
    assert created.status_code == 201, created.text
    payment = created.json()
    token = payment["payment_url"].rsplit("/", 1)[1]
    assert client.get(f"/pay/{token}").status_code == 200  # the applicant opens the page
    paid = client.post(
        f"/pay/{token}/sandbox", data={"card_number": "4242424242424242"}, follow_redirects=False
    )
    assert paid.status_code == 303, paid.text
    issued = client.post(
        "/api/v1/licenses",
        json={
            "payment_id": payment["id"],
            "license_no": "浙公出-2026-000001",
            "title": "普通护照",
            "holder_name": "张伟",
            "fields": {"签发机关": "杭州市公安局出入境管理局"},
            "valid_until": "2036-12-01",
        },
        headers=auth(psb, "lic-1"),
    )
    assert issued.status_code == 201, issued.text
    license_id = issued.json()["id"]

    def printed_run() -> dict[str, Any] | None:
        runs = client.get("/api/v1/print-runs", headers=auth(psb)).json()["data"]
        sent = [r for r in runs if r["status"] == "sent"]
        return sent[0] if sent else None

    run = _wait("the print run", printed_run, stack)
    detail = client.get(f"/api/v1/print-runs/{run['id']}", headers=auth(psb)).json()
    assert [item["license_id"] for item in detail["items"]] == [license_id]
    licence = client.get(f"/api/v1/licenses/{license_id}", headers=auth(psb)).json()
    assert licence["status"] not in ("issued", "rendered")  # printed, and on its way

    pdf = client.get(f"/api/v1/print-runs/{run['id']}/document.pdf", headers=admin).content
    text = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
    assert len(text) == run["pages"] == 2
    assert "张伟" in text[0] and "浙公出-2026-000001" in text[0]

    if stack["printer"] == "spool":
        spooled = Path(stack["spool"]) / "default" / run["printer_job_id"]
        assert spooled.read_bytes() == pdf
    else:
        job = run["printer_job_id"]

        def printed_file() -> Path | None:
            for folder in _output_folders():
                for path in folder.glob(f"*job_{job}.pdf"):
                    try:
                        return path if len(PdfReader(path).pages) == 2 else None
                    except Exception:
                        return None
            return None

        path = _wait("cups-pdf's file", printed_file, stack)
        try:
            printed = [page.extract_text() for page in PdfReader(path).pages]
            # Ghostscript re-encodes the subset CJK font without its text map: the
            # Latin part of the number and the licence id read back, the Chinese not
            assert "-2026-000001" in printed[0] and license_id in printed[0]
        finally:
            path.unlink(missing_ok=True)
