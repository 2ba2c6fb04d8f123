#!/usr/bin/env python3
"""Finance reads at a province's scale: a page of the payments list and the trial
balance, at growing numbers of payments.

    .venv/bin/python benchmarks/bench_finance_reads.py --sizes 1000000,3000000

On a fresh PostgreSQL database of its own (onetrip_bench_reads_<pid>, never `test`):
migrates, opens --departments departments (their ledger accounts through
ledger.open_department_accounts), then grows the data set to each size in turn,
set-based (INSERT … SELECT generate_series, one statement per 500,000 payments):

- payments at a province's rate (30.9 million a month, one every 86 ms), time-ordered
  ids, departments skewed (a few big ones, many small), 72 % succeeded, the rest
  expired / failed / cancelled / created / needs_review;
- each succeeded payment's ledger transaction, Dr platform:stripe_clearing / Cr
  dept:<D>:fees_payable, effective when it succeeded. The ledger's triggers are off
  while the rows are generated (session_replication_role = replica: generating is not
  what is measured); cached balances and debit/credit totals are then set in one
  UPDATE and checked against the entries.

Then `VACUUM ANALYZE` (as autovacuum would have), and at each size it measures:

- list pages: `payments.queries.list_payments` as the API calls it, for the keys and
  filters finance staff use: wall time per call (median and p95 of --repeat calls,
  ORM rows and views included) and the statement's EXPLAIN ANALYZE execution time;
- the trial balance: `ledger.queries.trial_balance` now (cached totals), `as_of` a past
  moment (the latest snapshot + the entries since; the snapshots are written first, and
  the job is timed), and, for comparison, the old way (every entry summed);
- with --before, at the first size: the list without the new indexes (dropped and
  created again), as the issue measured it.

Prints markdown tables; drops the database unless --keep-db.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import asyncpg  # noqa: E402
from bench_payments import create_database, db_url, drop_database  # noqa: E402

RATE = timedelta(milliseconds=86.4)  # 1,000,000 payments a day
CHUNK = 500_000
#: (status, share in %): what a month of payments looks like
STATUSES = [
    ("succeeded", 72),
    ("expired", 12),
    ("failed", 6),
    ("cancelled", 5),
    ("created", 4),
    ("needs_review", 1),
]
NEW_INDEXES = {
    "ix_payments_status_id": "(status, id)",
    "ix_payments_department_status_id": "(department, status, id)",
    "ix_payments_reference_id": "(reference, id)",
}


def department_code(i: int) -> str:
    return f"D{i:03d}"


def status_case(column: str) -> str:
    """A SQL CASE picking a status from `column` in [0, 100)."""
    parts, upper = [], 0
    for status, share in STATUSES:
        upper += share
        parts.append(f"WHEN {column} < {upper} THEN '{status}'")
    return "CASE " + " ".join(parts) + " END"


async def generate(
    conn: asyncpg.Connection, start: int, stop: int, departments: int, t0: datetime
) -> None:
    """Payments start..stop-1 and the ledger transactions of the succeeded ones."""
    await conn.execute("SET session_replication_role = replica")
    # department: skewed towards the first codes (x² of a uniform number); reference: a
    # case number that repeats every 100,000 payments in a department
    await conn.execute(
        f"""
        INSERT INTO payments (id, token, department, matter_code, matter_name, reference,
            quantity, unit_amount, amount, currency, fee_split, status, refund_status,
            amount_refunded, amount_received, received_currency, applicant, delivery,
            return_url, metadata, gateway, gateway_ref, created_at, updated_at, expires_at,
            succeeded_at)
        SELECT 'pay_' || lpad(g::text, 26, '0'), 'tok' || g, d.code, d.code || '-M1',
               '普通护照', 'REF-' || (g % 100000), 1, 12000, 12000, 'CNY',
               json_build_array(json_build_object('department', d.code, 'share_bps', 10000)),
               s.status, 'none', 0,
               CASE WHEN s.status = 'succeeded' THEN 12000 END,
               CASE WHEN s.status = 'succeeded' THEN 'CNY' END,
               json_build_object('name', '张三' || g, 'email', 'a' || g || '@example.cn',
                                 'phone', '+86138' || lpad((g % 100000000)::text, 8, '0')),
               '{{}}'::json, 'https://pay.example.gov.cn/done', '{{}}'::json, 'stripe',
               'pi_' || g, t.at, t.at, t.at + interval '30 minutes',
               CASE WHEN s.status = 'succeeded' THEN t.at + interval '1 minute' END
          FROM generate_series($1::bigint, $2::bigint - 1) AS g
          CROSS JOIN LATERAL (SELECT 'D' || lpad((floor(power(
                   ((g * 2654435761) % 1000003) / 1000003.0, 2) * $3))::int::text, 3, '0')
                   AS code) d
          CROSS JOIN LATERAL (SELECT {status_case("((g * 40503) % 100)")} AS status) s
          CROSS JOIN LATERAL (SELECT $4::timestamptz + g * interval '86.4 milliseconds'
                   AS at) t
        """,
        start,
        stop,
        departments,
        t0,
    )
    # Statistics for the joins below: planned for an empty payments table, they probe
    # the new payments once per ledger account (minutes a chunk).
    await conn.execute("ANALYZE payments")
    await conn.execute("ANALYZE ledger_accounts")
    await conn.execute(
        """
        INSERT INTO ledger_transactions (id, idempotency_key, description, effective_at,
            recorded_at, metadata, external_ref, external_source)
        SELECT 'txn_' || substr(p.id, 5), 'payment:' || p.id || ':succeeded',
               '网上缴费 ' || p.id || ' 支付成功入账', p.succeeded_at, p.succeeded_at,
               json_build_object('payment_id', p.id, 'department', p.department,
                                 'kind', 'payment'),
               p.gateway_ref, 'stripe'
          FROM payments p
         WHERE p.id >= 'pay_' || lpad($1::bigint::text, 26, '0')
           AND p.id < 'pay_' || lpad($2::bigint::text, 26, '0') AND p.status = 'succeeded'
        """,
        start,
        stop,
    )
    await conn.execute(
        """
        INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, effective_at)
        SELECT 'txn_' || substr(p.id, 5), x.account_id, x.amount, 'CNY', p.succeeded_at
          FROM payments p
          JOIN ledger_accounts fees ON fees.code = 'dept:' || p.department || ':fees_payable'
                                   AND fees.currency = 'CNY'
          CROSS JOIN LATERAL (VALUES ((SELECT id FROM ledger_accounts
                                        WHERE code = 'platform:stripe_clearing'
                                          AND currency = 'CNY'), p.amount),
                                     (fees.id, -p.amount)) AS x(account_id, amount)
         WHERE p.id >= 'pay_' || lpad($1::bigint::text, 26, '0')
           AND p.id < 'pay_' || lpad($2::bigint::text, 26, '0') AND p.status = 'succeeded'
        """,
        start,
        stop,
    )
    await conn.execute("SET session_replication_role = origin")


#: Growing by more than this many payments, the tables' secondary indexes are dropped
#: first and built again after (one sort each instead of a million random inserts):
#: generating is not what is measured, and at 30 M it would otherwise take hours here.
REBUILD_INDEXES_ABOVE = 2_000_000
GENERATED_TABLES = ["payments", "ledger_transactions", "ledger_entries"]


async def drop_secondary_indexes(conn: asyncpg.Connection) -> list[str]:
    """Drop every index but the primary keys of GENERATED_TABLES; returns the DDL that
    makes them again (unique constraints as constraints)."""
    rows = await conn.fetch(
        """
        SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def,
               c.conname, i.indrelid::regclass::text AS tbl, pg_get_constraintdef(c.oid) AS cdef
          FROM pg_index i
          LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype = 'u'
         WHERE i.indrelid = ANY($1::regclass[]) AND NOT i.indisprimary
        """,
        GENERATED_TABLES,
    )
    again = []
    for row in rows:
        if row["conname"]:
            await conn.execute(f'ALTER TABLE {row["tbl"]} DROP CONSTRAINT "{row["conname"]}"')
            again.append(
                f'ALTER TABLE {row["tbl"]} ADD CONSTRAINT "{row["conname"]}" {row["cdef"]}'
            )
        else:
            await conn.execute(f"DROP INDEX {row['name']}")
            again.append(row["def"])
    return again


async def build_indexes(conn: asyncpg.Connection, ddl: list[str]) -> None:
    await conn.execute("SET maintenance_work_mem = '1GB'")
    for statement in ddl:
        started = time.perf_counter()
        await conn.execute(statement)
        print(f"  … {time.perf_counter() - started:5.1f} s  {statement[:90]}", file=sys.stderr)
    await conn.execute("RESET maintenance_work_mem")


async def set_cached_totals(conn: asyncpg.Connection) -> None:
    """What the triggers would have kept: balance, debits and credits per account."""
    await conn.execute(
        """
        UPDATE ledger_accounts a
           SET balance = coalesce(t.debits, 0) - coalesce(t.credits, 0),
               debits = coalesce(t.debits, 0), credits = coalesce(t.credits, 0)
          FROM ledger_accounts a2
          LEFT JOIN (SELECT account_id,
                            sum(amount) FILTER (WHERE amount > 0) AS debits,
                            -sum(amount) FILTER (WHERE amount < 0) AS credits
                       FROM ledger_entries GROUP BY account_id) t ON t.account_id = a2.id
         WHERE a.id = a2.id
        """
    )


def stats(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


async def timed(call: Any, repeat: int) -> tuple[float, float, Any]:
    result = await call()  # warm: plans, caches
    samples = []
    cpu = time.process_time()
    for _ in range(repeat):
        started = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - started) * 1000)
    timed.cpu_ms = (time.process_time() - cpu) / repeat * 1000  # type: ignore[attr-defined]
    median, p95 = stats(samples)
    return median, p95, result


class Capture:
    """The last statement SQLAlchemy sent reading `table`, to EXPLAIN ANALYZE it as it was."""

    def __init__(self, table: str = "payments") -> None:
        self.table = table
        self.sent: tuple[str, Any] | None = None

    def __call__(self, _c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if f"FROM {self.table}" in statement:
            self.sent = (statement, params)


async def explain_ms(statement: str, params: Any) -> tuple[float, str]:
    from onetrip.db import unit_of_work

    async with unit_of_work() as session:
        conn = await session.connection()
        rows = await conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params
        )
        plan = rows.scalar_one()
        plan = json.loads(plan) if isinstance(plan, str) else plan
    top = plan[0]

    def indexes(node: dict[str, Any]) -> list[str]:
        found = [node["Index Name"]] if "Index Name" in node else []
        for child in node.get("Plans", ()):
            found += indexes(child)
        return found

    names = sorted(set(indexes(top["Plan"]))) or [top["Plan"]["Node Type"]]
    return top["Execution Time"], ", ".join(names)


async def list_cases(conn: asyncpg.Connection, departments: int) -> list[tuple[str, Any, dict]]:
    from onetrip.auth import Principal

    big, small = department_code(0), department_code(departments - 1)
    middle = await conn.fetchval(
        "SELECT id FROM payments WHERE department = $1 AND status = 'succeeded'"
        " ORDER BY id LIMIT 1 OFFSET (SELECT count(*) / 2 FROM payments"
        " WHERE department = $1 AND status = 'succeeded')",
        big,
    )
    reference = await conn.fetchval("SELECT reference FROM payments WHERE id = $1", middle)
    admin = Principal(key_id="bench_admin", role="admin")
    finance = Principal(
        key_id="bench_fin", role="finance", departments=tuple(department_code(i) for i in (0, 1, 7))
    )
    return [
        ("admin, status=succeeded", admin, {"status": "succeeded"}),
        ("admin, status=needs_review (1 %)", admin, {"status": "needs_review"}),
        (
            f"department {big} (largest), status=succeeded",
            Principal(key_id="d1", role="department", departments=(big,)),
            {"status": "succeeded"},
        ),
        (
            f"department {small} (smallest), status=failed",
            Principal(key_id="d2", role="department", departments=(small,)),
            {"status": "failed"},
        ),
        (
            f"department {big}, status=succeeded, page from the middle (cursor)",
            Principal(key_id="d1", role="department", departments=(big,)),
            {"status": "succeeded", "cursor": middle},
        ),
        ("finance key of 3 departments, status=succeeded", finance, {"status": "succeeded"}),
        ("admin, reference=…", admin, {"reference": reference}),
        (
            f"department {big}, no filter",
            Principal(key_id="d1", role="department", departments=(big,)),
            {},
        ),
    ]


async def measure_lists(cases: list, repeat: int) -> list[dict[str, Any]]:
    from sqlalchemy import event

    from onetrip.db import get_database, unit_of_work
    from payments.queries import list_payments

    capture = Capture()
    engine = get_database().engine.sync_engine
    out = []
    for label, principal, filters in cases:

        async def call(principal: Any = principal, filters: dict = filters) -> Any:
            async with unit_of_work() as session:
                return await list_payments(
                    session,
                    principal,
                    status=filters.get("status"),
                    reference=filters.get("reference"),
                    created_from=None,
                    created_to=None,
                    limit=50,
                    cursor=filters.get("cursor"),
                )

        event.listen(engine, "before_cursor_execute", capture)
        try:
            median, p95, page = await timed(call, repeat)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        assert capture.sent is not None
        execution, indexes = await explain_ms(*capture.sent)
        out.append(
            {
                "case": label,
                "rows": len(page["data"]),
                "median_ms": median,
                "p95_ms": p95,
                "python_cpu_ms": timed.cpu_ms,  # type: ignore[attr-defined]
                "explain_ms": execution,
                "indexes": indexes,
            }
        )
    return out


async def measure_trial_balance(t_last: datetime, repeat: int) -> list[dict[str, Any]]:
    from sqlalchemy import event

    from ledger import snapshots
    from ledger.queries import _summed_entries, trial_balance
    from onetrip.db import get_database, unit_of_work

    started = time.perf_counter()
    runs = await snapshots.bring_up_to_date()
    job_ms = (time.perf_counter() - started) * 1000
    written = sum(len(run.written) for run in runs)
    started = time.perf_counter()
    await snapshots.bring_up_to_date()
    again_ms = (time.perf_counter() - started) * 1000

    out: list[dict[str, Any]] = [
        {"case": f"snapshot job: first run ({written} cut-offs)", "median_ms": job_ms},
        {"case": "snapshot job: run again (nothing due)", "median_ms": again_ms},
    ]
    now = datetime.now(UTC)
    # the moment furthest from the cut-off before it (a minute short of the next one)
    gap = snapshots.EVERY - timedelta(minutes=1)
    worst = snapshots.cut_off_before(t_last - timedelta(hours=3)) + gap
    earlier = snapshots.cut_off_before(t_last - timedelta(hours=36)) + snapshots.EVERY / 2
    cases = [
        ("now (cached totals)", None, None),
        ("now, one department's key", None, [department_code(0)]),
        (
            f"as_of {worst:%m-%d %H:%M} (snapshot + {gap.seconds // 60} min of entries: the worst)",
            worst,
            None,
        ),
        (
            f"as_of {earlier:%m-%d %H:%M} (snapshot + {snapshots.EVERY.seconds // 120} min)",
            earlier,
            None,
        ),
    ]
    reference = None
    for label, as_of, scope in cases:

        async def call(as_of: Any = as_of, scope: Any = scope) -> Any:
            async with unit_of_work() as session:
                return await trial_balance(session, as_of=as_of, scope=scope)

        capture = Capture("ledger_accounts")
        engine = get_database().engine.sync_engine
        event.listen(engine, "before_cursor_execute", capture)
        try:
            median, p95, report = await timed(call, repeat)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        assert report.total_debits == report.total_credits
        if as_of is None and scope is None:
            reference = report
        elif scope is None:
            async with unit_of_work() as session:
                summed_rows = await _summed_entries(session, as_of)
            expected = {r.id: (int(r.debits), int(r.credits)) for r in summed_rows}
            got = {line.account_id: (line.debits, line.credits) for line in report.lines}
            assert got == expected, f"the trial balance as of {as_of} differs from the entries"
        assert capture.sent is not None
        execution, _ = await explain_ms(*capture.sent)
        out.append(
            {
                "case": label,
                "median_ms": median,
                "p95_ms": p95,
                "python_cpu_ms": timed.cpu_ms,  # type: ignore[attr-defined]
                "explain_ms": execution,
            }
        )

    async def old_way() -> Any:
        async with unit_of_work() as session:
            return await _summed_entries(session, now + timedelta(days=1))

    median, p95, rows = await timed(old_way, max(3, repeat // 10))
    summed = {row.id: (int(row.debits), int(row.credits)) for row in rows}
    assert reference is not None
    cached = {line.account_id: (line.debits, line.credits) for line in reference.lines}
    assert cached == summed, "the cached totals differ from the entries"
    out.append(
        {
            "case": "before: every entry summed (the old trial balance)",
            "median_ms": median,
            "p95_ms": p95,
        }
    )
    return out


async def measure_size(
    conn: asyncpg.Connection,
    size: int,
    generated_s: float,
    t_last: datetime,
    departments: int,
    repeat: int,
) -> dict[str, Any]:
    """The list pages and the trial balance at the database's present size."""
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM payments) AS payments,"
        " (SELECT count(*) FROM ledger_entries) AS entries,"
        " (SELECT count(*) FROM ledger_accounts) AS accounts,"
        " pg_size_pretty(pg_database_size(current_database())) AS size"
    )
    return {
        "size": size,
        "generated_s": generated_s,
        "counts": dict(counts),
        "lists": await measure_lists(await list_cases(conn, departments), repeat),
        "trial_balance": await measure_trial_balance(t_last, repeat),
    }


async def measure_again(args: argparse.Namespace) -> dict[str, Any]:
    """--reuse NAME: measure again on a database an earlier --keep-db run left."""
    from onetrip.db import Database, set_database
    from onetrip.settings import get_settings, reset_settings

    raw = db_url(args.pg, args.reuse)
    os.environ["DATABASE_URL"] = raw
    reset_settings()
    set_database(Database(get_settings().database_url))
    conn = await asyncpg.connect(raw)
    try:
        size = await conn.fetchval("SELECT count(*) FROM payments")
        t_last = await conn.fetchval("SELECT max(created_at) FROM payments") + RATE
        departments = await conn.fetchval("SELECT count(*) FROM departments")
        entry = await measure_size(conn, size, 0.0, t_last, departments, args.repeat)
        print_size(entry)
        return {"sizes": [entry]}
    finally:
        await conn.close()
        from onetrip.db import get_database

        await get_database().dispose()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from ledger import service as ledger
    from onetrip.db import Database, set_database, unit_of_work
    from onetrip.migrate import upgrade_async

    if args.reuse:
        return await measure_again(args)
    name = f"onetrip_bench_reads_{os.getpid()}"
    raw = db_url(args.pg, name)
    os.environ["DATABASE_URL"] = raw
    from onetrip.settings import get_settings, reset_settings

    reset_settings()
    url = get_settings().database_url
    await create_database(args.pg, name)
    results: dict[str, Any] = {"sizes": []}
    try:
        await upgrade_async(url)
        set_database(Database(url))
        conn = await asyncpg.connect(raw)
        async with unit_of_work() as session:
            for i in range(args.departments):
                await ledger.open_department_accounts(session, department_code(i), f"部门{i}")
        await conn.execute(
            "INSERT INTO departments (code, name, timezone, stripe_fees_borne_by, created_at)"
            " SELECT 'D' || lpad(g::text, 3, '0'), '部门' || g, 'Asia/Shanghai', 'platform', now()"
            " FROM generate_series(0, $1 - 1) g",
            args.departments,
        )
        sizes = [int(s) for s in args.sizes.split(",")]
        t0 = datetime.now(UTC) - RATE * max(sizes) - timedelta(hours=2)
        have = 0
        for size in sizes:
            started = time.perf_counter()
            # The triggers are off while generating: say what they would have, that
            # snapshots cut off after the first new entry are stale.
            await conn.execute(
                "INSERT INTO ledger_snapshot_invalidations (earliest) VALUES ($1)",
                t0 + RATE * have,
            )
            rebuild = (
                await drop_secondary_indexes(conn) if size - have > REBUILD_INDEXES_ABOVE else []
            )
            while have < size:
                stop = min(size, have + CHUNK)
                await generate(conn, have, stop, args.departments, t0)
                have = stop
                print(
                    f"  … {have:,} payments ({time.perf_counter() - started:.0f} s)",
                    file=sys.stderr,
                )
            await build_indexes(conn, rebuild)
            await set_cached_totals(conn)
            await conn.execute("VACUUM ANALYZE payments")
            await conn.execute("VACUUM ANALYZE ledger_entries")
            await conn.execute("VACUUM ANALYZE ledger_transactions")
            await conn.execute("VACUUM ANALYZE ledger_accounts")
            generated_s = time.perf_counter() - started
            t_last = t0 + RATE * size
            entry = await measure_size(
                conn, size, generated_s, t_last, args.departments, args.repeat
            )
            if args.before and size == sizes[0]:
                for index in NEW_INDEXES:
                    await conn.execute(f"DROP INDEX {index}")
                entry["lists_before"] = await measure_lists(
                    await list_cases(conn, args.departments), max(3, args.repeat // 5)
                )
                for index, columns in NEW_INDEXES.items():
                    await conn.execute(f"CREATE INDEX {index} ON payments {columns}")
                await conn.execute("ANALYZE payments")
            results["sizes"].append(entry)
            print_size(entry)
        await conn.close()
    finally:
        from onetrip.db import get_database

        await get_database().dispose()
        if not args.keep_db:
            await drop_database(args.pg, name)
    return results


def print_size(entry: dict[str, Any]) -> None:
    counts = entry["counts"]
    print(
        f"\n### {counts['payments']:,} payments, {counts['entries']:,} entries,"
        f" {counts['accounts']} accounts ({counts['size']}; generated in"
        f" {entry['generated_s']:.0f} s)\n"
    )
    print(
        "| list page (limit 50) | rows | median ms | p95 ms | Python CPU ms"
        " | EXPLAIN ANALYZE ms | index |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in entry["lists"]:
        print(
            f"| {row['case']} | {row['rows']} | {row['median_ms']:.2f} | {row['p95_ms']:.2f}"
            f" | {row['python_cpu_ms']:.2f} | {row['explain_ms']:.2f} | {row['indexes']} |"
        )
    for row in entry.get("lists_before", ()):
        print(
            f"| *before:* {row['case']} | {row['rows']} | {row['median_ms']:.2f}"
            f" | {row['p95_ms']:.2f} | {row['python_cpu_ms']:.2f} | {row['explain_ms']:.2f}"
            f" | {row['indexes']} |"
        )
    print("\n| trial balance | median ms | p95 ms | Python CPU ms | EXPLAIN ANALYZE ms |")
    print("|---|---|---|---|---|")
    for row in entry["trial_balance"]:
        p95 = f"{row['p95_ms']:.2f}" if "p95_ms" in row else ""
        cpu = f"{row['python_cpu_ms']:.2f}" if "python_cpu_ms" in row else ""
        explain = f"{row['explain_ms']:.2f}" if "explain_ms" in row else ""
        print(f"| {row['case']} | {row['median_ms']:.2f} | {p95} | {cpu} | {explain} |")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,3000000", help="payments, comma-separated")
    parser.add_argument("--departments", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per case")
    parser.add_argument(
        "--before", action="store_true", help="also measure without the new indexes"
    )
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--reuse", metavar="NAME", help="measure again on a kept database")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("ONETRIP_LOG_LEVEL", "WARNING")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.node()} · {os.cpu_count()} CPU ·"
        f" load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    results = asyncio.run(run(args))
    print(f"\nload at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
