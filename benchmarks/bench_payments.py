#!/usr/bin/env python3
"""Payments created per second over HTTP, against PostgreSQL, with wrk.

    .venv/bin/python benchmarks/bench_payments.py --connections 32 --duration 20 --workers 2

What it does, in order:
  1. creates a fresh database onetrip_bench_<pid> on the PostgreSQL server of
     --pg (default postgresql://postgres@127.0.0.1:5432/postgres);
  2. `onetrip db upgrade`, then seeds the demo catalogue and keys (onetrip.demo.seed_demo)
     and takes the PSB department key;
  3. starts `onetrip serve --workers N` with BROKER_URL set (RabbitMQ: no in-process
     worker or relay, so the API does only its own work) and ONETRIP_LOG_LEVEL=WARNING;
  4. warms up with wrk, then measures with
     `wrk -t2 -cN -dS --latency -s benchmarks/create_payment.lua`
     (a passport payment with a courier address in Chinese, unique Idempotency-Key);
  5. checks the database: every payment wrk saw created (201, id in the body) exists, the
     run's committed rows equal its 201s (plus at most the requests still in flight when
     wrk stopped, which wrk never reports), and payments = idempotency records = outbox
     events (one transaction each);
  6. stops the server, drops the database and prints one markdown table row (and, with
     --json, the numbers).

CPU time of the API workers, PostgreSQL and wrk during the measured run is read from
/proc, because on a small machine they share the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LUA = HERE / "create_payment.lua"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- helpers ----------------------------------------------------------------------------


def onetrip_cmd() -> list[str]:
    # `python -m` rather than the console script, so PYTHONPATH (set below to this
    # script's tree) decides which copy of the code runs
    return [sys.executable, "-m", "onetrip.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def db_url(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    for child in children(pid):
        out.append(child)
        out.extend(descendants(child))
    return out


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def postgres_pids(database: str) -> list[int]:
    """The server's own processes (WAL writer, checkpointer...) and `database`'s backends.

    Backends of other databases (other people's tests on a shared machine) are left out."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != "postgres":
                    continue
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if database in cmdline or "(" not in cmdline:
                pids.append(int(entry.name))
    return pids


def total_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


class CpuMeter:
    """CPU seconds used by groups of processes between start() and stop()."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before: dict[int, float] = {}

    def start(self) -> None:
        self.before = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        self.machine_before = total_cpu()
        self.t0 = time.monotonic()

    def stop(self, extra: dict[str, list[int]] | None = None) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        groups = dict(self.groups)
        for name, pids in (extra or {}).items():
            groups[name] = pids
        out = {}
        for name, pids in groups.items():
            used = sum(cpu_seconds(pid) - self.before.get(pid, 0.0) for pid in pids)
            out[name] = used / elapsed  # cores
        busy0, tot0 = self.machine_before
        busy1, tot1 = total_cpu()
        out["machine_busy"] = (busy1 - busy0) / max(tot1 - tot0, 1e-9) * (os.cpu_count() or 1)
        return out


def parse_wrk(text: str) -> dict[str, float | int | None]:
    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    out: dict[str, float | int | None] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", text)
    out["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        out[f"p{pct}"] = ms(m.group(1), m.group(2)) if m else None
    unit = r"([\d.]+)(us|ms|s|m)"
    m = re.search(rf"Latency\s+{unit}\s+{unit}\s+{unit}", text)
    out["max"] = ms(m.group(5), m.group(6)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    m = re.search(r"BENCH created_201=(\d+) other_status=(\d+)", text)
    out["created_201"] = int(m.group(1)) if m else None
    out["other_status"] = int(m.group(2)) if m else None
    return out


def run_wrk(
    port: int,
    connections: int,
    duration: int,
    threads: int,
    env: dict[str, str],
    timeout: str = "10s",
) -> tuple[str, dict, float]:
    """Run wrk; returns its output, the parsed numbers and the CPU seconds wrk used."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        f"--timeout={timeout}",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
    ]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr}")
    return stdout + stderr, parse_wrk(stdout), usage.ru_utime + usage.ru_stime


def wait_ready(port: int, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise RuntimeError("the server did not become ready")


# --- database ---------------------------------------------------------------------------


async def create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        # Byte order for text, as docker/compose.yaml initialises the server: what the
        # service stores and sorts are ids and codes, and the machine's C.UTF-8 compares
        # them through strcoll (a third of the cost of inserting a million matches).
        await conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_COLLATE 'C'")
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def run_counts(url: str, run_id: str, acked_ids: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        run_keys = await conn.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE key LIKE $1", run_id + "-%"
        )
        present = await conn.fetchval(
            "SELECT count(*) FROM payments WHERE id = ANY($1::text[])", acked_ids
        )
        payments = await conn.fetchval("SELECT count(*) FROM payments")
        keys = await conn.fetchval("SELECT count(*) FROM idempotency_keys")
        events = await conn.fetchval(
            "SELECT count(*) FROM outbox_events WHERE type = 'payment.created'"
        )
        orphans = await conn.fetchval(
            "SELECT count(*) FROM idempotency_keys k"
            " LEFT JOIN payments p ON p.id = k.response->>'id' WHERE p.id IS NULL"
        )
    finally:
        await conn.close()
    return {
        "run_rows": run_keys,
        "acked_present": present,
        "payments_total": payments,
        "keys_total": keys,
        "events_total": events,
        "keys_without_payment": orphans,
    }


def seed(env: dict[str, str]) -> str:
    subprocess.run(
        [*onetrip_cmd(), "db", "upgrade"], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    code = (
        "import asyncio, json\n"
        "from onetrip.demo import seed_demo\n"
        "print(json.dumps(asyncio.run(seed_demo(echo=lambda s: None))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, cwd=ROOT, capture_output=True, text=True
    )
    keys = json.loads(out.stdout.strip().splitlines()[-1])
    return keys["department:PSB"]


# --- main -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--duration", "-d", type=int, default=20, help="seconds measured")
    parser.add_argument("--workers", "-w", type=int, default=2, help="API processes")
    parser.add_argument("--threads", "-t", type=int, default=2, help="wrk threads")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up load")
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="admin URL of the PostgreSQL server (a database to connect to)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="record one API worker with py-spy during the run (speedscope json"
        " or .svg flamegraph); needs py-spy on PATH or --py-spy-bin",
    )
    parser.add_argument("--py-spy-bin", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument(
        "--serve-cmd",
        default=None,
        help="alternative server command (tokens; {port} and {workers} are "
        "substituted), e.g. to measure a scratch copy of the app",
    )
    parser.add_argument("--label", default="", help="text for the table row's first column")
    parser.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    parser.add_argument("--show-wrk", action="store_true", help="print wrk's full output")
    args = parser.parse_args()

    name = f"onetrip_bench_{os.getpid()}"
    url = db_url(args.pg, name)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BROKER_URL": BROKER_URL,
        "ONETRIP_LOG_LEVEL": "WARNING",
        "ONETRIP_PUBLIC_URL": "https://pay.example.gov.cn",
        "ONETRIP_RATE_LIMIT": "0",  # one key at thousands a second: measure, do not limit
        # measure the tree this script lives in (the repo, or a scratch copy of it)
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    asyncio.run(create_database(args.pg, name))
    server: subprocess.Popen | None = None
    tmp = Path(tempfile.mkdtemp(prefix="onetrip-bench-"))
    server_log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed in finally
    try:
        key = seed(env)
        if args.serve_cmd:
            cmd = args.serve_cmd.format(port=port, workers=args.workers).split()
        else:
            cmd = [
                *onetrip_cmd(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ]
        server = subprocess.Popen(
            cmd,
            env=env,
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=server_log,
        )
        wait_ready(port, server)
        workers = descendants(server.pid)

        wrk_env = {**os.environ, "ONETRIP_BENCH_KEY": key}
        if args.warmup:
            _ = run_wrk(
                port,
                args.connections,
                args.warmup,
                args.threads,
                {**wrk_env, "ONETRIP_BENCH_RUN": "warmup"},
            )

        run_id = f"run{os.getpid()}"
        ids_prefix = str(tmp / "ids")
        meter = CpuMeter({"api": [server.pid, *workers], "postgres": postgres_pids(name)})
        spy = None
        if args.py_spy and workers:
            spy_out = Path(args.py_spy).resolve()
            fmt = "flamegraph" if spy_out.suffix == ".svg" else "speedscope"
            spy = subprocess.Popen(
                [
                    args.py_spy_bin,
                    "record",
                    "--pid",
                    str(workers[-1]),
                    "--rate",
                    "200",
                    "--duration",
                    str(args.duration),
                    "--format",
                    fmt,
                    "--output",
                    str(spy_out),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        meter.start()
        started = time.monotonic()
        text, result, wrk_cpu = run_wrk(
            port,
            args.connections,
            args.duration,
            args.threads,
            {**wrk_env, "ONETRIP_BENCH_RUN": run_id, "ONETRIP_BENCH_IDS": ids_prefix},
        )
        cpu = meter.stop({"postgres": postgres_pids(name)})
        cpu["wrk"] = wrk_cpu / (time.monotonic() - started)
        # anything else on the machine (other people's tests, RabbitMQ, ...)
        cpu["other"] = max(cpu["machine_busy"] - cpu["api"] - cpu["postgres"] - cpu["wrk"], 0.0)
        done = max(result["requests"] or 1, 1)
        elapsed = time.monotonic() - started
        cpu["api_ms_per_req"] = cpu["api"] * elapsed / done * 1000
        cpu["pg_ms_per_req"] = cpu["postgres"] * elapsed / done * 1000
        cpu["wrk_ms_per_req"] = wrk_cpu / done * 1000
        if spy is not None:
            spy.wait(timeout=args.duration + 30)
        if args.show_wrk:
            print(text, file=sys.stderr)
        time.sleep(1.0)  # let requests still in flight when wrk stopped commit

        acked = [
            line.strip()
            for f in tmp.glob("ids.*")
            for line in f.read_text().splitlines()
            if line.strip()
        ]
        counts = asyncio.run(run_counts(url, run_id, acked))
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        if not args.keep_db:
            asyncio.run(drop_database(args.pg, name))
        server_log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    created = result["created_201"] or 0
    in_flight = counts["run_rows"] - created
    checks = {
        "every_201_in_db": counts["acked_present"] == created == len(acked),
        "db_rows_eq_201s": counts["run_rows"] == created,
        # rows beyond the 201s: requests wrk had sent but not seen answered when it stopped
        "extra_rows_le_connections": 0 <= in_flight <= args.connections,
        "payments_eq_keys_eq_events": (
            counts["payments_total"] == counts["keys_total"] == counts["events_total"]
        ),
        "no_key_without_payment": counts["keys_without_payment"] == 0,
    }
    ok = (
        checks["every_201_in_db"]
        and checks["extra_rows_le_connections"]
        and checks["payments_eq_keys_eq_events"]
        and checks["no_key_without_payment"]
    )
    row = (
        f"| {args.label or 'uvicorn'} | {args.workers} | {args.connections} | {args.duration} s "
        f"| {result['rps']:.0f} | {result['p50']:.1f} | {result['p90']:.1f} | {result['p99']:.1f} "
        f"| {created} | {result['non2xx']} | {result['socket_errors']} "
        f"| {counts['run_rows']} ({in_flight:+d} in flight) | {'yes' if ok else '**NO**'} "
        f"| {cpu['api']:.2f} / {cpu['postgres']:.2f} / {cpu['wrk']:.2f} / {cpu['other']:.2f} "
        f"| {cpu['api_ms_per_req']:.2f} / {cpu['pg_ms_per_req']:.2f} "
        f"| {' '.join(f'{x:.2f}' for x in os.getloadavg())} |"
    )
    print(
        "| server | workers | conns | duration | req/s | p50 ms | p90 ms | p99 ms | 201s "
        "| non-2xx | socket err | DB rows | writes ok | CPU cores api / pg / wrk / other "
        "| CPU ms per request api / pg | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(row)
    if args.json:
        print(
            json.dumps(
                {
                    "args": vars(args),
                    "wrk": result,
                    "db": counts,
                    "checks": checks,
                    "cpu_cores": cpu,
                },
                indent=2,
            )
        )
    if not ok:
        print(f"CHECK FAILED: {checks} {counts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
