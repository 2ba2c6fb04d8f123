#!/usr/bin/env python3
"""Importing, booking and reconciling Stripe balance transactions at a province's scale.

    .venv/bin/python benchmarks/bench_reconcile.py --lines 1000000

On a fresh PostgreSQL database of its own (onetrip_bench_recon_<pid>, never `test`):

1. opens --departments departments (half bear Stripe's fees themselves) and puts in the
   ledger, set-based, the payments the Stripe file will show: one posting per charge
   (`payment:{id}:succeeded`, Dr platform:stripe_clearing / Cr dept:<D>:fees_payable)
   and one per refund (`refund:{id}`), spread over --days days;
2. writes Stripe's itemized payout reconciliation report (payout_reconciliation.
   itemized.5) for them to a temporary file, streamed: --lines balance transactions
   (charges with their fees, 3 % refunds, one payout a day);
3. times, in one unit of work as `onetrip reconcile import` runs it:
   `ledger.reconciliation.imports.import_file` — parse, store the records (COPY on
   PostgreSQL), and book them (F1's booking.book_stripe_records, timed on its own);
4. times `ledger.reconciliation.runs.run` over the whole range (F2), in its own unit of
   work: charges and refunds against the ledger, payouts' control totals;
5. reports the peak RSS of this process (the file is never held in memory) and checks
   the outcome: every line stored once, every charge and refund matched, the books
   balanced.

--parse-only measures reading the file alone (no database), to tell Python's share.
Prints a markdown table row; drops the database unless --keep-db.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import tempfile
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

# Stripe's itemized payout report, in the column order the test fixtures write it
from tests.finance_fixtures import STRIPE_COLUMNS as COLUMNS  # noqa: E402

#: the server's settings a bulk import's time depends on, printed with the results
SERVER_SETTINGS = ("shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression")
REFUND_EVERY = 33  # one payment in 33 is refunded (3 %)


def department_code(i: int) -> str:
    return f"D{i:03d}"


def stripe_fee(amount: int) -> int:
    """3.4 % + 1.80 yuan, rounded down to the fen (as tests/finance_fixtures.py)."""
    return amount * 34 // 1000 + 180


def major(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return f"{sign}{minor // 100}.{minor % 100:02d}"


def amount_of(i: int) -> int:
    return 5_000 + (i * 7919) % 60_000 // 100 * 100  # 50–650 yuan


def plan(lines: int, days: int) -> tuple[int, int]:
    """How many charges and refunds make `lines` lines with one payout a day."""
    body = lines - days
    charges = body * REFUND_EVERY // (REFUND_EVERY + 1)
    return charges, body - charges


def write_report(path: Path, lines: int, days: int, departments: int, t0: datetime) -> int:
    """The report, one line at a time; returns the number of lines written."""
    charges, refunds = plan(lines, days)
    per_day = charges / days
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(COLUMNS) + "\n")
        refunded = 0
        for day in range(days):
            payout = f"po_bench{day:05d}"
            arrival = (t0 + timedelta(days=day + 2)).date()
            effective = f"{arrival.isoformat()} 00:00:00"
            net_total = 0
            first, last = int(day * per_day), int((day + 1) * per_day)
            for i in range(first, last):
                at = t0 + timedelta(seconds=(i - first) * 86_400 / max(1, last - first), days=day)
                created = at.strftime("%Y-%m-%d %H:%M:%S")
                available = (at + timedelta(days=2)).strftime("%Y-%m-%d 00:00:00")
                amount = amount_of(i)
                fee = stripe_fee(amount)
                dept = department_code(i % departments)
                pid = payment_id(i)
                out.write(
                    f"{payout},{effective},txn_c{i:09d},{created},{available},cny,"
                    f"{major(amount)},{major(fee)},{major(amount - fee)},charge,ch_{i:09d},"
                    f"政务缴费,ch_{i:09d},pi_{i:09d},{pid},{dept}\n"
                )
                net_total += amount - fee
                written += 1
                if i % REFUND_EVERY == 0 and refunded < refunds:
                    out.write(
                        f"{payout},{effective},txn_r{i:09d},{created},{available},cny,"
                        f"{major(-amount)},0.00,{major(-amount)},refund,re_{i:09d},"
                        f"退款,,,{pid},{dept}\n"
                    )
                    net_total -= amount
                    refunded += 1
                    written += 1
            out.write(
                f"{payout},{effective},txn_p{day:09d},{effective},{effective},cny,"
                f"{major(-net_total)},0.00,{major(-net_total)},payout,{payout},"
                f"STRIPE PAYOUT,,,,\n"
            )
            written += 1
    return written


def payment_id(i: int) -> str:
    return "pay_" + f"{i:026d}"


async def seed_ledger(
    conn: asyncpg.Connection, lines: int, days: int, departments: int, t0: datetime
) -> tuple[int, int]:
    """The charges' and refunds' postings, set-based (the same ids as write_report)."""
    charges, refunds = plan(lines, days)
    per_day = charges / days
    await conn.execute("SET session_replication_role = replica")  # generating, not measured
    # charge i is on day floor(i / per_day), at its share of that day
    at = (
        "($4::timestamptz + floor(g / $3::float8) * interval '1 day'"
        " + (g - ceil(floor(g / $3::float8) * $3::float8)) * (interval '1 day' / $3::float8))"
    )
    amount = "(5000 + (g * 7919) % 60000 / 100 * 100)"
    dept = "('D' || lpad((g % $2)::text, 3, '0'))"
    await conn.execute(
        f"""
        INSERT INTO ledger_transactions (id, idempotency_key, description, effective_at,
            recorded_at, metadata, external_ref, external_source)
        SELECT 'txn_p' || lpad(g::text, 25, '0'), 'payment:pay_' || lpad(g::text, 26, '0')
               || ':succeeded', '网上缴费 支付成功入账', {at}, {at},
               json_build_object('payment_id', 'pay_' || lpad(g::text, 26, '0'),
                                 'department', {dept}, 'kind', 'payment'),
               'pi_' || lpad(g::text, 9, '0'), 'stripe'
          FROM generate_series(0, $1::bigint - 1) g
        """,
        charges,
        departments,
        per_day,
        t0,
    )
    await conn.execute(
        f"""
        INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, effective_at)
        SELECT 'txn_p' || lpad(g::text, 25, '0'), x.account_id, x.amount, 'CNY', {at}
          FROM generate_series(0, $1::bigint - 1) g
          JOIN ledger_accounts fees ON fees.code = 'dept:' || {dept} || ':fees_payable'
                                   AND fees.currency = 'CNY'
          CROSS JOIN LATERAL (VALUES
              ((SELECT id FROM ledger_accounts WHERE code = 'platform:stripe_clearing'
                  AND currency = 'CNY'), {amount}::bigint),
              (fees.id, -{amount}::bigint)) AS x(account_id, amount)
        """,
        charges,
        departments,
        per_day,
        t0,
    )
    # refunds: the first `refunds` payments with g % REFUND_EVERY = 0, on the same day
    refunded = (
        "(SELECT g FROM generate_series(0, $1::bigint - 1) g"
        f" WHERE g % {REFUND_EVERY} = 0 LIMIT $5)"
    )
    await conn.execute(
        f"""
        INSERT INTO ledger_transactions (id, idempotency_key, description, effective_at,
            recorded_at, metadata)
        SELECT 'txn_r' || lpad(g::text, 25, '0'), 'refund:re_' || lpad(g::text, 9, '0'),
               '退款', {at} + interval '1 second', {at} + interval '1 second',
               json_build_object('payment_id', 'pay_' || lpad(g::text, 26, '0'),
                                 'refund_id', 're_' || lpad(g::text, 9, '0'),
                                 'department', {dept}, 'kind', 'refund')
          FROM {refunded} AS r(g)
        """,
        charges,
        departments,
        per_day,
        t0,
        refunds,
    )
    await conn.execute(
        f"""
        INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, effective_at)
        SELECT 'txn_r' || lpad(g::text, 25, '0'), x.account_id, x.amount, 'CNY',
               {at} + interval '1 second'
          FROM {refunded} AS r(g)
          JOIN ledger_accounts fees ON fees.code = 'dept:' || {dept} || ':fees_payable'
                                   AND fees.currency = 'CNY'
          CROSS JOIN LATERAL (VALUES
              ((SELECT id FROM ledger_accounts WHERE code = 'platform:stripe_clearing'
                  AND currency = 'CNY'), -{amount}::bigint),
              (fees.id, {amount}::bigint)) AS x(account_id, amount)
        """,
        charges,
        departments,
        per_day,
        t0,
        refunds,
    )
    await conn.execute("SET session_replication_role = origin")
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
    await conn.execute("VACUUM ANALYZE ledger_transactions")
    await conn.execute("VACUUM ANALYZE ledger_entries")
    return charges, refunds


def _time_statements(engine: Any, slower_than_s: float, out: dict[str, Any]) -> None:
    """Record the wall time of every statement slower than `slower_than_s` (its first
    line and a digest), in out["slow_statements"], in the order they ran."""
    from sqlalchemy import event

    slow: list[str] = out.setdefault("slow_statements", [])

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        took = time.perf_counter() - conn.info["started"].pop()
        if took >= slower_than_s:
            head = " ".join(statement.split())[:110]
            slow.append(f"{took:7.2f} s  {head}")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def pg_cpu_s(conn: asyncpg.Connection) -> float:
    """CPU seconds used so far by this database's backends (from /proc)."""
    pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    total = 0
    for row in pids:
        try:
            stat = Path(f"/proc/{row['pid']}/stat").read_text()  # noqa: ASYNC240 - /proc
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from ledger import service as ledger
    from ledger.reconciliation import booking, imports, runs
    from onetrip.db import Database, get_database, set_database, unit_of_work
    from onetrip.migrate import upgrade_async

    name = f"onetrip_bench_recon_{os.getpid()}"
    raw = db_url(args.pg, name)
    os.environ["DATABASE_URL"] = raw
    from onetrip.settings import get_settings, reset_settings

    reset_settings()
    url = get_settings().database_url
    await create_database(args.pg, name)
    tmp = Path(tempfile.mkdtemp(prefix="onetrip-recon-"))
    report = tmp / "payout_reconciliation_itemized_5.csv"
    out: dict[str, Any] = {"lines": args.lines}
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    try:
        await upgrade_async(url)
        admin = await asyncpg.connect(raw)
        settings = await admin.fetch(
            "SELECT name, current_setting(name) AS value FROM pg_settings"
            " WHERE name = ANY($1::text[]) ORDER BY name",
            list(SERVER_SETTINGS),
        )
        await admin.close()
        out["server"] = {row["name"]: row["value"] for row in settings}
        print("  PostgreSQL " + ", ".join(f"{k}={v}" for k, v in out["server"].items()))
        if args.log_slow is not None:
            admin = await asyncpg.connect(raw)
            await admin.execute(
                f'ALTER DATABASE "{name}" SET log_min_duration_statement = {int(args.log_slow)}'
            )
            await admin.close()
        set_database(Database(url))
        if args.statements is not None:
            _time_statements(get_database().engine.sync_engine, args.statements / 1000, out)
        conn = await asyncpg.connect(raw)
        async with unit_of_work() as session:
            for i in range(args.departments):
                await ledger.open_department_accounts(
                    session,
                    department_code(i),
                    f"部门{i}",
                    stripe_fees_borne_by="department" if i % 2 else "platform",
                )
        started = time.perf_counter()
        if args.import_only:
            charges, refunds = plan(args.lines, args.days)
        else:
            charges, refunds = await seed_ledger(conn, args.lines, args.days, args.departments, t0)
        out["seed_s"] = time.perf_counter() - started
        started = time.perf_counter()
        written = write_report(report, args.lines, args.days, args.departments, t0)
        out["write_file_s"] = time.perf_counter() - started
        out["file_mb"] = report.stat().st_size / 1e6
        out["charges"], out["refunds"], out["written"] = charges, refunds, written
        print(
            f"  ledger seeded ({charges:,} payments, {refunds:,} refunds) in"
            f" {out['seed_s']:.0f} s; file of {written:,} lines, {out['file_mb']:.0f} MB",
            file=sys.stderr,
        )
        out["rss_before_mb"] = current_rss_mb()

        # booking timed on its own, inside the import's unit of work
        book = booking.book_stripe_records
        booked: dict[str, Any] = {}

        async def timed_booking(session: Any, import_id: str | None = None) -> Any:
            started = time.perf_counter()
            result = await book(session, import_id)
            booked["s"] = time.perf_counter() - started
            booked["summary"] = result
            return result

        imports.book_stripe_records = timed_booking  # type: ignore[assignment]
        pg_before = await pg_cpu_s(conn)
        wal_before = await conn.fetchval("SELECT pg_current_wal_lsn()")
        cpu_before = time.process_time()
        started = time.perf_counter()
        with report.open("rb") as file:
            async with unit_of_work() as session:
                summary = await imports.import_file(
                    session,
                    source="stripe_payout_recon",
                    file=file,
                    file_name=report.name,
                    imported_by="cli:bench",
                )
            out["import_commit_s"] = time.perf_counter() - started
        out["import_s"] = time.perf_counter() - started
        out["import_python_cpu_s"] = time.process_time() - cpu_before
        out["import_pg_cpu_s"] = await pg_cpu_s(conn) - pg_before
        wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal_before)
        out["import_wal_mb"] = float(wal) / 1e6
        out["booking_s"] = booked.get("s")
        out["booking_summary"] = str(booked.get("summary"))
        out["new_records"] = summary.new_records
        out["peak_rss_import_mb"] = rss_mb()
        print(
            f"  imported + booked in {out['import_s']:.1f} s"
            f" ({out['import_wal_mb']:.0f} MB of WAL)",
            file=sys.stderr,
        )
        if args.import_only or args.no_run:
            await conn.close()
            return out

        started = time.perf_counter()
        async with unit_of_work() as session:
            view = await runs.run(
                session,
                date_from=t0.date(),
                date_to=(t0 + timedelta(days=args.days + 3)).date(),
                started_by="cli:bench",
            )
        out["run_s"] = time.perf_counter() - started
        out["run"] = {
            "matched": view.matched,
            "unmatched_ledger": view.unmatched_ledger,
            "unmatched_external": view.unmatched_external,
            "discrepancies": view.discrepancies,
            "by_reason": view.by_reason,
        }
        out["peak_rss_mb"] = rss_mb()
        print(f"  reconciled in {out['run_s']:.1f} s: {out['run']}", file=sys.stderr)

        # the second import of the same file: nothing new, nothing booked twice
        txns_before = await conn.fetchval("SELECT count(*) FROM ledger_transactions")
        started = time.perf_counter()
        with report.open("rb") as file:
            async with unit_of_work() as session:
                again = await imports.import_file(
                    session,
                    source="stripe_payout_recon",
                    file=file,
                    file_name=report.name,
                    imported_by="cli:bench",
                )
        out["reimport_s"] = time.perf_counter() - started
        out["reimport_new"] = again.new_records
        out["reimport_new_transactions"] = (
            await conn.fetchval("SELECT count(*) FROM ledger_transactions") - txns_before
        )
        out["checks"] = {
            "records": await conn.fetchval("SELECT count(*) FROM reconciliation_external_records"),
            "stripe_bookings": await conn.fetchval(
                "SELECT count(*) FROM ledger_transactions WHERE idempotency_key LIKE 'stripe:%'"
            ),
            "cached_totals_mismatch": await conn.fetchval(
                "SELECT count(*) FROM ledger_accounts a LEFT JOIN (SELECT account_id,"
                " coalesce(sum(amount) FILTER (WHERE amount > 0), 0) d,"
                " coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) c"
                " FROM ledger_entries GROUP BY account_id) t ON t.account_id = a.id"
                " WHERE a.debits <> coalesce(t.d, 0) OR a.credits <> coalesce(t.c, 0)"
                " OR a.balance <> coalesce(t.d, 0) - coalesce(t.c, 0)"
            ),
            "unbalanced": await conn.fetchval(
                "SELECT coalesce(sum(amount), 0) FROM ledger_entries"
            ),
        }
        await conn.close()
    finally:
        await get_database().dispose()
        report.unlink(missing_ok=True)
        tmp.rmdir()  # noqa: ASYNC240
        if not args.keep_db:
            await drop_database(args.pg, name)
    return out


def parse_only(args: argparse.Namespace) -> dict[str, Any]:
    from ledger.reconciliation import csvfiles

    tmp = Path(tempfile.mkdtemp(prefix="onetrip-recon-"))
    report = tmp / "report.csv"
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    try:
        written = write_report(report, args.lines, args.days, args.departments, t0)
        started, cpu = time.perf_counter(), time.process_time()
        with report.open("rb") as file:
            count = sum(1 for _ in csvfiles.stripe_payout_recon(file, None))
        return {
            "lines": written,
            "parsed": count,
            "parse_s": time.perf_counter() - started,
            "parse_cpu_s": time.process_time() - cpu,
            "peak_rss_mb": rss_mb(),
        }
    finally:
        report.unlink(missing_ok=True)
        tmp.rmdir()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--departments", type=int, default=50)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--parse-only", action="store_true")
    parser.add_argument(
        "--import-only",
        action="store_true",
        help="no payments in the ledger, no run: the import and its booking alone",
    )
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="the ledger seeded, the import and its booking, but no reconciliation run",
    )
    parser.add_argument(
        "--log-slow",
        type=int,
        metavar="MS",
        help="log this database's statements slower than MS to the PostgreSQL log",
    )
    parser.add_argument(
        "--statements",
        type=int,
        metavar="MS",
        help="list the application's statements slower than MS with their wall time",
    )
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("ONETRIP_LOG_LEVEL", "WARNING")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.node()} · load {load}")
    if args.parse_only:
        print(json.dumps(parse_only(args), indent=2))
        return 0
    out = asyncio.run(run(args))
    out["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.import_only or args.no_run:
        print(json.dumps(out, indent=2, default=str))
        return 0
    total = out["import_s"] + out["run_s"]
    print(
        "| lines | import + booking s (booking s) | run s | total s | Python CPU s | PG CPU s"
        " | peak RSS MB | matched | unmatched ledger / external | discrepancies | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {out['written']:,} | {out['import_s']:.1f} ({out['booking_s'] or 0:.1f})"
        f" | {out['run_s']:.1f} | **{total:.1f}** | {out['import_python_cpu_s']:.1f}"
        f" | {out['import_pg_cpu_s']:.1f} | {out['peak_rss_mb']:.0f}"
        f" | {out['run']['matched']:,} | {out['run']['unmatched_ledger']:,} /"
        f" {out['run']['unmatched_external']:,} | {out['run']['discrepancies']:,}"
        f" | {out['load_end']} |"
    )
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
