#!/usr/bin/env python3
"""How long 1,000 paid matters take to reach `dispatched`, on PostgreSQL + RabbitMQ with
the API, the relay and the worker as separate processes.

    .venv/bin/python benchmarks/bench_delivery.py --matters 1000 --worker-threads 8

What it does, in order:
  1. creates a fresh database onetrip_bench_delivery_<pid> (on --pg) and a RabbitMQ
     vhost of its own (rabbitmqctl), `onetrip db upgrade`, an admin key;
  2. starts `onetrip serve`, `onetrip relay` and `onetrip worker --threads N` with
     ONETRIP_PRINT_INTERVAL=1 (the print cut-off every second) and a spool printer;
  3. registers a department, an auto-issue deliverable matter and a courier partner
     serving the address, then pays --matters payments at the counter over HTTP
     (32 at a time);
  4. measures from the first payment until every licence is `dispatched` (issued by the
     auto-issue consumer, rendered, gathered into print runs, printed to the spool,
     allocated and dispatched), printing the counts per status every second;
  5. checks one print-run entry and one dispatch per licence, prints a markdown row,
     stops the processes, drops the database and the vhost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
BROKER = "amqp://guest:guest@127.0.0.1:5672/{vhost}"


def onetrip(*args: str) -> list[str]:
    return [sys.executable, "-m", "onetrip.cli", *args]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--matters", type=int, default=1000)
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--port", type=int, default=8091)
    options = parser.parse_args()

    name = f"onetrip_bench_delivery_{os.getpid()}"
    admin_conn = await asyncpg.connect(options.pg)
    await admin_conn.execute(f'CREATE DATABASE "{name}"')
    database_url = options.pg.rsplit("/", 1)[0] + f"/{name}"
    vhost = name
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    work = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ONETRIP_")},
        "DATABASE_URL": database_url,
        "BROKER_URL": BROKER.format(vhost=vhost),
        "ONETRIP_PRINT_INTERVAL": "1",
        "ONETRIP_RELAY_INTERVAL": "0.1",
        "ONETRIP_SPOOL_DIR": str(work / "spool"),
        "ONETRIP_SIGNING_KEY": str(work / "signing-key.pem"),
        "ONETRIP_LOG_LEVEL": "WARNING",
        "ONETRIP_RATE_LIMIT": "0",
        "ONETRIP_PUBLIC_URL": f"http://127.0.0.1:{options.port}",
        "PYTHONPATH": str(ROOT),
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        await asyncio.to_thread(
            subprocess.run, onetrip("db", "upgrade"), env=env, check=True, cwd=work
        )

        def key(*args: str) -> str:
            out = subprocess.run(
                onetrip("keys", "create", *args),
                env=env,
                check=True,
                cwd=work,
                capture_output=True,
                text=True,
            )
            return out.stdout.strip().splitlines()[-1]

        admin = await asyncio.to_thread(key, "--role", "admin")

        def start(label: str, *args: str) -> None:
            log = (work / f"{label}.log").open("wb")
            processes.append(
                subprocess.Popen(onetrip(*args), env=env, cwd=work, stdout=log, stderr=log)
            )

        start("serve", "serve", "--host", "127.0.0.1", "--port", str(options.port))
        start("relay", "relay")
        for n in range(options.workers):
            start(f"worker-{n}", "worker", "--threads", str(options.worker_threads))
        base = f"http://127.0.0.1:{options.port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for _ in range(100):
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
            h = {"Authorization": f"Bearer {admin}"}
            await client.post(
                "/api/v1/admin/departments", headers=h, json={"code": "PSB", "name": "杭州市公安局"}
            )
            await client.post(
                "/api/v1/admin/matters",
                headers=h,
                json={
                    "code": "dl",
                    "name": "机动车驾驶证期满换证",
                    "department": "PSB",
                    "amount": 1000,
                    "deliverable": True,
                    "auto_issue": True,
                },
            )
            await client.post(
                "/api/v1/admin/courier-partners",
                headers=h,
                json={"code": "SF", "name": "顺丰速运", "service_areas": [{"province": "浙江省"}]},
            )
            psb = await asyncio.to_thread(key, "--role", "department", "--department", "PSB")
            dh = {"Authorization": f"Bearer {psb}"}
            address = {
                "recipient": "张伟",
                "phone": "13800138000",
                "province": "浙江省",
                "city": "杭州市",
                "district": "西湖区",
                "line1": "文三路 100 号 3 幢 201 室",
                "postal_code": "310012",
            }
            gate = asyncio.Semaphore(32)

            async def pay(n: int) -> None:
                async with gate:
                    r = await client.post(
                        "/api/v1/payments",
                        headers={**dh, "Idempotency-Key": f"bench-{n}"},
                        json={
                            "matter_code": "dl",
                            "reference": f"JSZ-{n:07d}",
                            "applicant": {"name": "张伟", "phone": "13800138000"},
                            "return_url": "https://crj.example.gov.cn/done",
                            "delivery": {"method": "courier", "address": address},
                        },
                    )
                    r.raise_for_status()
                    r = await client.post(
                        f"/api/v1/payments/{r.json()['id']}/counter",
                        headers={**dh, "Idempotency-Key": f"bench-counter-{n}"},
                        json={"method": "cash", "operator": "窗口 1"},
                    )
                    r.raise_for_status()

            db = await asyncpg.connect(database_url)
            started = time.monotonic()
            await asyncio.gather(*(pay(n) for n in range(options.matters)))
            paid_after = time.monotonic() - started
            while True:
                rows = await db.fetch("SELECT status, count(*) FROM licenses GROUP BY status")
                counts = {r["status"]: r["count"] for r in rows}
                elapsed = time.monotonic() - started
                print(f"{elapsed:6.1f} s  {counts}", flush=True)
                if counts.get("dispatched", 0) >= options.matters:
                    break
                if elapsed > 600:
                    raise SystemExit("not all dispatched within 10 minutes")
                await asyncio.sleep(1)
            total = time.monotonic() - started
            items = await db.fetchval("SELECT count(*) FROM print_run_items")
            dispatches = await db.fetchval("SELECT count(DISTINCT license_id) FROM dispatches")
            all_dispatches = await db.fetchval("SELECT count(*) FROM dispatches")
            runs = await db.fetchval("SELECT count(*) FROM print_runs")
            await db.close()
        assert items == options.matters, f"{items} print-run entries"
        assert dispatches == all_dispatches == options.matters, f"{all_dispatches} dispatches"
        print()
        print("| matters | worker threads | paid (HTTP) | all dispatched | print runs |")
        print("|---|---|---|---|---|")
        print(
            f"| {options.matters} | {options.workers}×{options.worker_threads} "
            f"| {paid_after:.1f} s | {total:.1f} s | {runs} |"
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_conn.close()
        rabbitmqctl("delete_vhost", vhost)


if __name__ == "__main__":
    asyncio.run(main())
