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
     with `--backlog`, the relay is paused (SIGSTOP) while every matter is paid (their
     `payment.succeeded` events wait in the outbox), and the clock starts when it is
     let go (SIGCONT): the time for 1,000 *paid* matters to be dispatched, without the
     payments' intake sharing the two cores;
  5. checks one print-run entry and one dispatch per licence, prints a markdown row,
     stops the processes, drops the database and the vhost.

`--cpu` reports what does not depend on other load on the machine: the CPU seconds
(utime + stime from /proc, children included) the worker processes, the API and the
relay spent per paid matter between the first payment and the last dispatch, and, from
SQLAlchemy engine events counted inside each worker, the statements, transactions and
round trips per matter, by actor and by statement shape. `--py-spy DIR` also records
each worker with py-spy (`--py-spy-bin`; `--gil`: only the thread holding the GIL, so
the samples are Python CPU, not threads waiting) and prints where that CPU went.

A run killed half way leaves its database and vhost: `DROP DATABASE
onetrip_bench_delivery_<pid> WITH (FORCE)` and `rabbitmqctl delete_vhost` the same name.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import json
import os
import re
import resource
import signal
import socket
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


# --- CPU seconds of a process tree, from /proc ------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime + stime in seconds) of a live process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu(root: int) -> float:
    """CPU seconds of `root` and its live descendants (uvicorn's worker processes)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            parents[int(entry)], cpu[int(entry)] = found
    total = 0.0
    for pid, seconds in cpu.items():
        walk = pid
        while walk > 1 and walk != root:
            walk = parents.get(walk, 0)
        if walk == root:
            total += seconds
    return total


# --- the counting worker: `bench_delivery.py _counted-worker STATS --threads N` ----------

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


def statement_shape(statement: str) -> str:
    """`SELECT licenses`, `INSERT outbox_events`, `UPDATE print_runs FOR UPDATE`…"""
    words = statement.split(None, 1)
    verb = words[0].upper() if words else "?"
    table = _TABLE.search(statement)
    lock = " FOR UPDATE" if "FOR UPDATE" in statement else ""
    return f"{verb} {table.group(1) if table else ''}{lock}".strip()


def run_counted_worker(stats_path: str, worker_args: list[str]) -> None:
    skipped = {a.removeprefix("--skip=") for a in worker_args if a.startswith("--skip=")}
    worker_args = [a for a in worker_args if not a.startswith("--skip=")]
    _run_counted_worker(stats_path, worker_args, skipped)


def _run_counted_worker(stats_path: str, worker_args: list[str], skipped: set[str]) -> None:
    """`onetrip worker`, counting each actor's messages and each statement, transaction
    and savepoint its units of work send, written to `stats_path` every half second."""
    import contextvars
    import threading

    import dramatiq
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from onetrip import cli

    # Set in the worker thread before an async actor is handed to the event loop: the
    # loop's task (and SQLAlchemy's greenlet) run in a copy of that thread's context.
    running = contextvars.ContextVar("actor", default="(none)")
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def bump(key: str) -> None:
        with lock:
            counts[key] += 1

    def on_statement(conn, cursor, statement, parameters, context, executemany):
        shape = statement_shape(statement)
        bump(f"sql|{running.get()}|{shape}")
        # compiled for this call: not from SQLAlchemy's cache ("no key", "generated")
        stats = context._get_cache_stats() if context is not None else ""
        if stats.startswith(("no key", "generated")):
            bump(f"compiled|{running.get()}|{shape}")

    event.listen(Engine, "before_cursor_execute", on_statement)

    def on_transaction(conn, *_, name: str) -> None:
        # an AUTOCOMMIT connection sends no BEGIN, COMMIT or ROLLBACK to PostgreSQL
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            bump(f"tx|{running.get()}|{name}")

    for name in ("begin", "commit", "rollback", "savepoint", "release_savepoint"):
        event.listen(Engine, name, functools.partial(on_transaction, name=name))

    class CountingWorker(dramatiq.Worker):
        def __init__(self, broker, **options):
            for actor in broker.actors.values():
                call = actor.fn

                def counted(*args, _call=call, _name=actor.actor_name, **kwargs):
                    bump(f"msg|{_name}|")
                    token = running.set(_name)
                    try:
                        return _call(*args, **kwargs)
                    finally:
                        running.reset(token)

                actor.fn = counted
            if skipped:  # every declared queue but these (and their delay queues)
                queues = broker.get_declared_queues() | broker.get_declared_delay_queues()
                options["queues"] = {q for q in queues if q.split(".")[0] not in skipped}
            super().__init__(broker, **options)

    def dump() -> None:
        while True:
            with lock:
                text = json.dumps(counts)
            Path(stats_path + ".tmp").write_text(text)
            os.replace(stats_path + ".tmp", stats_path)
            time.sleep(0.5)

    dramatiq.Worker = CountingWorker  # cli.worker looks it up when it starts
    threading.Thread(target=dump, daemon=True).start()
    cli.main(["worker", *worker_args])


def read_counts(path: Path) -> collections.Counter[str]:
    try:
        return collections.Counter(json.loads(path.read_text()))
    except (OSError, ValueError):
        return collections.Counter()


def own_cpu() -> float:
    """CPU seconds of this process (the HTTP client paying the matters, and the polling)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def backends_cpu(db: asyncpg.Connection) -> float:
    """CPU seconds of the database's backends now open (those that exit take theirs)."""
    pids = await db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()"
    )
    return sum(found[1] for row in pids if (found := _stat(row["pid"])) is not None)


#: seconds the workers are watched doing nothing before the payments, for their idle rate
IDLE_WINDOW = 3.0


async def settle(
    workers: list[subprocess.Popen[bytes]], idle_rate: float, started: float
) -> tuple[float, float]:
    """Wait (at most a minute) until the workers use no more CPU than when idle, i.e.
    every queue is drained; (their CPU seconds then, seconds since `started`)."""
    last = sum(tree_cpu(p.pid) for p in workers)
    for _ in range(60):
        await asyncio.sleep(1)
        now = sum(tree_cpu(p.pid) for p in workers)
        if now - last <= max(2 * idle_rate, 0.05):
            return now, time.monotonic() - started
        last = now
    return last, time.monotonic() - started


def report_counts(delta: collections.Counter[str], matters: int, *, shapes: int = 40) -> None:
    """Messages, statements and round trips per matter, by actor and statement shape."""
    by_actor: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    by_shape: collections.Counter[str] = collections.Counter()
    compiled: collections.Counter[str] = collections.Counter()
    for key, n in delta.items():
        kind, actor, what = key.split("|", 2)
        if kind == "compiled":
            compiled[f"{actor}: {what}"] += n
        elif kind == "msg":
            by_actor[actor]["messages"] += n
        elif kind == "sql":
            by_actor[actor]["statements"] += n
            by_shape[f"{actor}: {what}"] += n
        else:
            by_actor[actor]["transactions" if what == "begin" else what] += n
    print("\nper paid matter, by actor (workers together):")
    print("| actor | messages | statements | transactions | savepoints | round trips |")
    print("|---|---|---|---|---|---|")
    total = collections.Counter()
    for actor, c in sorted(by_actor.items(), key=lambda item: -item[1]["statements"]):
        trips = sum(c[k] for k in ("statements", "transactions", "commit", "rollback"))
        trips += c["savepoint"] + c["release_savepoint"]
        total.update(c)
        total["trips"] += trips
        print(
            f"| {actor} | {c['messages'] / matters:.2f} | {c['statements'] / matters:.2f} "
            f"| {c['transactions'] / matters:.2f} | {c['savepoint'] / matters:.2f} "
            f"| {trips / matters:.2f} |"
        )
    print(
        f"| **all** | {total['messages'] / matters:.2f} | {total['statements'] / matters:.2f} "
        f"| {total['transactions'] / matters:.2f} | {total['savepoint'] / matters:.2f} "
        f"| **{total['trips'] / matters:.2f}** |"
    )
    if not shapes:
        return
    print(f"\nstatements per paid matter, by actor and shape (top {shapes}):")
    for shape, n in by_shape.most_common(shapes):
        print(f"  {n / matters:6.2f}  {shape}")
    print(
        f"\nstatements compiled (not from SQLAlchemy's cache) per paid matter: "
        f"{sum(compiled.values()) / matters:.2f}"
    )
    for shape, n in compiled.most_common(10):
        print(f"  {n / matters:6.2f}  {shape}")


#: innermost frames of a thread that waits (for a message, a lock, the socket)
IDLE_FRAMES = frozenset(
    {"wait", "select", "_wait_for_tstate_lock", "sleep", "get", "poll", "epoll_wait", "_poll"}
)


def short(frame: str) -> str:
    """`function (module.py)` of one of our frames; "" for a library's."""
    name, _, where = frame.partition(" (")
    if "site-packages" in where:
        return ""
    return f"{name} ({re.sub(r':[0-9]+', '', where.split('/')[-1])}"


def spawn(
    command: list[str], env: dict[str, str] | None, log: Path | None
) -> subprocess.Popen[bytes]:
    """Start a process, its output into `log` (and in log's folder), else discarded."""
    out = log.open("wb") if log else subprocess.DEVNULL
    cwd = log.parent if log else None
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=out)


def summarize_py_spy(paths: list[Path], top: int = 40) -> None:
    """Where the recorded workers' samples went: by our own innermost function (the
    nearest frame in delivery/, payments/, notifications/, ledger/ or onetrip/) and by
    library, from py-spy's raw (collapsed) stacks."""
    ours = ("delivery/", "payments/", "notifications/", "ledger/", "onetrip/")
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            if frames[-1].split(" (")[0] in IDLE_FRAMES:  # a thread waiting, not working
                continue
            total += n
            mine = [short(f) for f in frames if any(o in f for o in ours)]
            mine = [f for f in mine if f]
            for name in set(mine):
                inclusive[name] += n
            own[mine[-1] if mine else "(none)"] += n
            match = re.search(r"site-packages/(\w+)", frames[-1])
            leaf[match.group(1) if match else frames[-1].split(" (")[0]] += n
    if not total:
        print("py-spy: no busy samples")
        return
    print(f"\npy-spy: {total} busy samples; by our innermost frame (self + libraries it calls):")
    for name, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f} %  {name}")
    print("\nby our frame, inclusive:")
    for name, n in inclusive.most_common(top):
        print(f"  {100 * n / total:5.1f} %  {name}")
    print("\nby innermost library:")
    for name, n in leaf.most_common(20):
        print(f"  {100 * n / total:5.1f} %  {name}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--matters", type=int, default=1000)
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--port", type=int, default=0, help="the API's port (0: a free one)")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="report CPU seconds and statements / round trips per matter (load-independent)",
    )
    parser.add_argument(
        "--relay-interval",
        type=float,
        default=0.1,
        help="seconds between relay passes (ONETRIP_RELAY_INTERVAL; 0.1, the service's default)",
    )
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="pay every matter with the relay paused, then let it go and time from there",
    )
    parser.add_argument("--py-spy", type=Path, help="record each worker with py-spy into DIR")
    parser.add_argument("--py-spy-bin", default="/tmp/tools/bin/py-spy")
    parser.add_argument(
        "--skip-queue",
        action="append",
        default=[],
        help="a queue the workers do not consume (e.g. notifications: the pipeline alone)",
    )
    options = parser.parse_args()
    options.cpu = options.cpu or options.py_spy is not None or bool(options.skip_queue)
    if not options.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            options.port = probe.getsockname()[1]

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
        "ONETRIP_RELAY_INTERVAL": str(options.relay_interval),
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
        stats_files = [work / f"worker-{n}.counts.json" for n in range(options.workers)]
        for n in range(options.workers):
            threads = ("--threads", str(options.worker_threads))
            if options.cpu:
                command = [sys.executable, __file__, "_counted-worker", str(stats_files[n])]
                command += [f"--skip={queue}" for queue in options.skip_queue]
                processes.append(spawn([*command, *threads], env, work / f"worker-{n}.log"))
            else:
                start(f"worker-{n}", "worker", *threads)
        serve_process, relay_process, *worker_processes = processes
        base = f"http://127.0.0.1:{options.port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for _ in range(400):  # a loaded machine starts it slowly
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if serve_process.poll() is not None:
                    raise SystemExit(f"onetrip serve exited: see {work / 'serve.log'}")
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
            idle_rate = 0.0  # worker CPU seconds per second with nothing to do (periodic jobs)
            if options.cpu:
                await asyncio.sleep(2)  # the workers' start-up is not counted
                idle_from = sum(tree_cpu(p.pid) for p in worker_processes)
                await asyncio.sleep(IDLE_WINDOW)
                idle_rate = (
                    sum(tree_cpu(p.pid) for p in worker_processes) - idle_from
                ) / IDLE_WINDOW

            def cpu_now() -> dict[str, float]:
                return {
                    "workers": sum(tree_cpu(p.pid) for p in worker_processes),
                    "api": tree_cpu(serve_process.pid),
                    "relay": tree_cpu(relay_process.pid),
                    "client": own_cpu(),
                }

            if options.backlog:
                for _ in range(60):  # the relay has started: it uses next to no CPU now
                    before = tree_cpu(relay_process.pid)
                    await asyncio.sleep(0.5)
                    if tree_cpu(relay_process.pid) - before < 0.05:
                        break
                relay_process.send_signal(signal.SIGSTOP)
                paying = time.monotonic()
                await asyncio.gather(*(pay(n) for n in range(options.matters)))
                print(f"paid {options.matters} in {time.monotonic() - paying:.1f} s; relay goes on")
            cpu_before = {**cpu_now(), "postgres": await backends_cpu(db)}
            counts_before = sum((read_counts(f) for f in stats_files), collections.Counter())
            spies = []
            if options.py_spy:
                options.py_spy.mkdir(parents=True, exist_ok=True)
                for n, process in enumerate(worker_processes):
                    out = options.py_spy / f"worker-{n}.raw"
                    record = ["record", "-p", str(process.pid), "-r", "50", "--gil", "--function"]
                    record += ["-f", "raw", "-o", str(out), "--nonblocking"]
                    spies.append(spawn([options.py_spy_bin, *record], None, None))
            started = time.monotonic()
            if options.backlog:
                relay_process.send_signal(signal.SIGCONT)
                paid_after = 0.0
            else:
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
            cpu_after = {**cpu_now(), "postgres": await backends_cpu(db)}
            await asyncio.sleep(1)  # the counters are written every half second
            counts_after = sum((read_counts(f) for f in stats_files), collections.Counter())
            drained, drained_after = cpu_after["workers"], total
            if options.cpu:  # lower-priority work (notifications) may still be queued
                drained, drained_after = await settle(worker_processes, idle_rate, started)
                counts_drained = sum((read_counts(f) for f in stats_files), collections.Counter())
            for spy in spies:
                spy.send_signal(signal.SIGINT)
            for spy in spies:
                spy.wait(30)
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
        if options.cpu:
            per = {k: 1000 * (cpu_after[k] - cpu_before[k]) / options.matters for k in cpu_after}
            idle = 1000 * idle_rate * total / options.matters
            drained_per = 1000 * (drained - cpu_before["workers"]) / options.matters
            print("\nCPU per paid matter (utime + stime, independent of other load):")
            print(
                "| workers, until all dispatched | of which idle ticks | workers, queues drained "
                "| API (serve) | relay |"
            )
            print("|---|---|---|---|---|")
            print(
                f"| {per['workers']:.1f} ms | {idle:.1f} ms ({1000 * idle_rate:.0f} ms/s) "
                f"| {drained_per:.1f} ms (at {drained_after:.0f} s) "
                f"| {per['api']:.1f} ms | {per['relay']:.1f} ms |"
            )
            print(
                f"\nand, until all dispatched: PostgreSQL backends {per['postgres']:.1f} ms, "
                f"this benchmark's HTTP client {per['client']:.1f} ms per paid matter"
            )
            print("\nuntil all dispatched:")
            counts_after.subtract(counts_before)
            report_counts(+counts_after, options.matters)
            print("\nuntil the queues were drained:")
            counts_drained.subtract(counts_before)
            report_counts(+counts_drained, options.matters, shapes=0)
        if options.py_spy:
            summarize_py_spy(sorted(options.py_spy.glob("worker-*.raw")))
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
    if sys.argv[1:2] == ["_counted-worker"]:
        run_counted_worker(sys.argv[2], sys.argv[3:])
    else:
        asyncio.run(main())
