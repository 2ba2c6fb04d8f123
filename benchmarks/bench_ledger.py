#!/usr/bin/env python3
"""Ledger transactions posted per second through ledger.service.post_transaction.

    .venv/bin/python benchmarks/bench_ledger.py --transactions 20000 --concurrency 8

On a fresh PostgreSQL database (onetrip_bench_ledger_<pid>): migrates, opens ten
departments (catalogue.create_department, which opens their fees-payable accounts and
the platform's), then K asyncio tasks post N transactions between them, each in its own
unit_of_work (one database transaction per posting, as a payment's success would):

    Dr platform:stripe_clearing      +A
    Cr dept:<D>:fees_payable         -A          (70 % of postings)
  or
    Cr dept:<D1>:fees_payable        -a1         (30 %: a fee split between two
    Cr dept:<D2>:fees_payable        -(A - a1)    departments, "一窗联办")

With --batch B each unit of work posts B postings through ledger.service.post_transactions
(one statement for the whole batch); --batch-mode loop instead locks the batch's accounts
in id order and calls post_transaction B times in the same unit of work, to compare.
--old-triggers reinstalls the per-entry deferred balance check the schema had before
(L3 in RESULTS.md), to measure what checking once per transaction saves.

Every posting touches platform:stripe_clearing, the hot account the FACTS warn about.
With --clearing-shards S the debit goes to one of S sub-accounts
platform:stripe_clearing:<i> instead (created by the benchmark), to measure what
splitting the hot account would buy.

Afterwards: the trial balance must balance, every cached balance must equal the sum of
its entries (ledger.service.verify_balances), and the counts and the clearing balance
must match what was posted. Prints a markdown table row; drops the database unless
--keep-db.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import asyncpg  # noqa: E402
from bench_payments import CpuMeter, create_database, db_url, drop_database, postgres_pids  # noqa: E402
from sqlalchemy import text  # noqa: E402

DEPARTMENTS = [
    ("PSB", "市公安局"),
    ("AMR", "市场监督管理局"),
    ("NRB", "自然资源和规划局"),
    ("HCB", "住房和城乡建设局"),
    ("TRB", "交通运输局"),
    ("EDU", "市教育局"),
    ("HEA", "市卫生健康委员会"),
    ("CIV", "市民政局"),
    ("CUL", "市文化广电旅游局"),
    ("AGR", "市农业农村局"),
]


Posting = tuple[str, str, list[tuple[str, int]], dict]

# The balance check as it was before L3: a deferred constraint trigger per entry, on top
# of the one per transaction (3-4 checks per posting instead of one).
OLD_TRIGGERS = """
DROP TRIGGER IF EXISTS ledger_entries_balanced ON ledger_entries;
CREATE OR REPLACE FUNCTION ledger_entry_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_balanced(NEW.transaction_id);
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER ledger_entries_balanced
    AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_inserted();
"""


def postings(n: int, shards: int, seed: int = 20260101) -> list[Posting]:
    """(idempotency key, description, [(account, amount)], metadata) for n postings."""
    from ledger.service import STRIPE_CLEARING, department_fees_account

    rng = random.Random(seed)
    codes = [code for code, _ in DEPARTMENTS]
    out = []
    for i in range(n):
        amount = rng.randrange(1000, 60000, 100)  # 10–600 元 in fen
        clearing = f"{STRIPE_CLEARING}:{i % shards}" if shards else STRIPE_CLEARING
        if rng.random() < 0.7:
            dept = rng.choice(codes)
            lines = [(clearing, amount), (department_fees_account(dept), -amount)]
            depts = [dept]
        else:
            d1, d2 = rng.sample(codes, 2)
            first = amount * 6 // 10
            lines = [
                (clearing, amount),
                (department_fees_account(d1), -first),
                (department_fees_account(d2), -(amount - first)),
            ]
            depts = [d1, d2]
        payment_id = f"pay_bench{i:08d}"
        out.append(
            (
                f"payment:{payment_id}:succeeded",
                f"网上缴费 {payment_id} 支付成功入账",
                lines,
                {"payment_id": payment_id, "departments": depts, "gateway": "stripe"},
            )
        )
    return out


async def run(args: argparse.Namespace, url: str, name: str) -> dict:
    from onetrip.db import Database, make_engine, set_database, unit_of_work
    from onetrip.migrate import upgrade_async

    if args.pool_size:
        pool_size = args.pool_size

        class SizedDatabase(Database):
            @property
            def engine(self):  # type: ignore[override]
                loop = asyncio.get_running_loop()
                if loop not in self._engines:
                    from sqlalchemy.ext.asyncio import async_sessionmaker

                    engine = make_engine(self.url, pool_size=pool_size, max_overflow=0)
                    self._engines[loop] = engine
                    self._makers[loop] = async_sessionmaker(engine, expire_on_commit=False)
                return self._engines[loop]

        set_database(SizedDatabase(url))
    else:
        set_database(Database(url))

    from ledger import service as ledger
    from payments import catalogue
    from payments.schemas import DepartmentIn

    await upgrade_async(url)
    if args.old_triggers:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(OLD_TRIGGERS)
        finally:
            await conn.close()
    async with unit_of_work() as session:
        for code, dname in DEPARTMENTS:
            await catalogue.create_department(session, DepartmentIn(code=code, name=dname))
        if args.clearing_shards:
            await ledger._create_accounts(  # the benchmark's own sub-accounts
                session,
                [
                    {
                        "code": f"{ledger.STRIPE_CLEARING}:{i}",
                        "name": f"Stripe clearing {i}",
                        "kind": "asset",
                        "department": None,
                        "currency": "CNY",
                    }
                    for i in range(args.clearing_shards)
                ],
            )

    work = postings(args.transactions, args.clearing_shards)
    warm = postings(args.warmup, args.clearing_shards, seed=7)
    warm = [("warmup:" + k, d, lines, m) for k, d, lines, m in warm]

    def lines_of(item) -> list:
        return [ledger.Line(account, amount, "CNY") for account, amount in item[2]]

    lock_accounts = text(
        "SELECT id FROM ledger_accounts WHERE code = ANY(CAST(:codes AS text[]))"
        " ORDER BY id FOR NO KEY UPDATE"
    )

    async def post(items: list) -> None:
        async with unit_of_work() as session:
            if args.batch == 1:
                key, description, _, metadata = items[0]
                await ledger.post_transaction(
                    session,
                    idempotency_key=key,
                    description=description,
                    lines=lines_of(items[0]),
                    metadata=metadata,
                )
            elif args.batch_mode == "statement":
                await ledger.post_transactions(
                    session,
                    [
                        ledger.Posting(item[0], item[1], lines_of(item), metadata=item[3])
                        for item in items
                    ],
                )
            else:  # loop: lock the batch's accounts in id order, then one statement each
                codes = sorted({account for item in items for account, _ in item[2]})
                await session.execute(lock_accounts, {"codes": codes})
                for item in items:
                    await ledger.post_transaction(
                        session,
                        idempotency_key=item[0],
                        description=item[1],
                        lines=lines_of(item),
                        metadata=item[3],
                    )

    latencies: list[float] = []
    errors: dict[str, int] = {}
    posted = [0]

    async def worker(queue: list, record: bool) -> None:
        while queue:
            items = [queue.pop() for _ in range(min(args.batch, len(queue)))]
            t0 = time.perf_counter()
            try:
                await post(items)
            except Exception as exc:  # counted and reported
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if record:
                latencies.append(time.perf_counter() - t0)
                posted[0] += len(items)

    # warm-up: fills the pool, the statement caches and PostgreSQL's buffers
    queue = list(reversed(warm))
    await asyncio.gather(*(worker(queue, False) for _ in range(args.concurrency)))

    queue = list(reversed(work))
    meter = CpuMeter({"postgres": postgres_pids(name)})
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(worker(queue, True) for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    cpu = meter.stop({"postgres": postgres_pids(name)})
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu["python"] = (
        (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    ) / elapsed
    cpu["other"] = max(cpu["machine_busy"] - cpu["python"] - cpu["postgres"], 0.0)

    # checks
    async with unit_of_work() as session:
        trial = await ledger.trial_balance(session)
        mismatches = await ledger.verify_balances(session)
        clearing_codes = (
            [f"{ledger.STRIPE_CLEARING}:{i}" for i in range(args.clearing_shards)]
            if args.clearing_shards
            else [ledger.STRIPE_CLEARING]
        )
        clearing_balance = 0
        for code in clearing_codes:
            clearing_balance += (await ledger.get_account_by_code(session, code)).balance
    expected_clearing = sum(lines[0][1] for _, _, lines, _ in work + warm)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        n_txn = await conn.fetchval(
            "SELECT count(*) FROM ledger_transactions WHERE idempotency_key LIKE 'payment:%'"
        )
        n_entries = await conn.fetchval(
            "SELECT count(*) FROM ledger_entries e JOIN ledger_transactions t "
            "ON t.id = e.transaction_id WHERE t.idempotency_key LIKE 'payment:%'"
        )
    finally:
        await conn.close()
    from onetrip.db import get_database

    await get_database().dispose()

    ok_count = posted[0]
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    checks = {
        "all_posted": ok_count == args.transactions and n_txn == args.transactions,
        "entries": n_entries == sum(len(lines) for _, _, lines, _ in work),
        "trial_balance_balanced": trial.total_debits == trial.total_credits,
        "cached_balances_equal_entries": not mismatches,
        "clearing_balance": clearing_balance == expected_clearing,
    }
    return {
        "transactions": args.transactions,
        "batch": args.batch,
        "batch_mode": args.batch_mode if args.batch > 1 else "-",
        "old_triggers": args.old_triggers,
        "units_of_work": len(latencies),
        "concurrency": args.concurrency,
        "pool": args.pool_size or "default (20 + 2 overflow)",
        "clearing_shards": args.clearing_shards,
        "elapsed_s": elapsed,
        "tps": ok_count / elapsed,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
        "errors": errors,
        "trial_total_debits": trial.total_debits,
        "trial_total_credits": trial.total_credits,
        "mismatches": len(mismatches),
        "checks": checks,
        "cpu_cores": cpu,
        "python_ms_per_txn": cpu["python"] * elapsed / max(ok_count, 1) * 1000,
        "pg_ms_per_txn": cpu["postgres"] * elapsed / max(ok_count, 1) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transactions", "-n", type=int, default=20000)
    parser.add_argument("--concurrency", "-k", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=500, help="postings before measuring")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=0,
        help="connection pool size, no overflow (default: the app's,"
        " ONETRIP_DB_POOL_SIZE or 20, + 2 overflow)",
    )
    parser.add_argument(
        "--clearing-shards",
        type=int,
        default=0,
        help="spread the clearing debit over this many sub-accounts",
    )
    parser.add_argument(
        "--batch",
        "-b",
        type=int,
        default=1,
        help="postings per unit of work (1: post_transaction; more: post_transactions)",
    )
    parser.add_argument(
        "--batch-mode",
        choices=["statement", "loop"],
        default="statement",
        help="statement: post_transactions, one statement per batch; loop:"
        " lock the accounts, then post_transaction per posting",
    )
    parser.add_argument(
        "--old-triggers",
        action="store_true",
        help="reinstall the per-entry deferred balance check (before L3)",
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (as uvicorn does)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--label", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    name = f"onetrip_bench_ledger_{os.getpid()}"
    url = db_url(args.pg, name)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("ONETRIP_LOG_LEVEL", "WARNING")
    from onetrip.settings import get_settings, reset_settings

    reset_settings()
    async_url = get_settings().database_url
    asyncio.run(create_database(args.pg, name))
    try:
        if args.uvloop:
            import uvloop

            result = uvloop.run(run(args, async_url, name))
        else:
            result = asyncio.run(run(args, async_url, name))
    finally:
        if not args.keep_db:
            asyncio.run(drop_database(args.pg, name))

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    result["loadavg_after"] = load
    ok = all(result["checks"].values())
    cpu = result["cpu_cores"]
    print(
        "| label | transactions | batch | concurrency | pool | clearing shards | txn/s "
        "| p50 ms | p99 ms (per unit of work) "
        "| errors | balanced & balances = entries | CPU cores python / pg / other "
        "| CPU ms per txn python / pg | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    batch = "1" if args.batch == 1 else f"{args.batch} ({args.batch_mode})"
    print(
        f"| {args.label or 'post_transaction'} | {result['transactions']} | {batch} "
        f"| {result['concurrency']} "
        f"| {args.pool_size or '20+2'} | {args.clearing_shards or '-'} | {result['tps']:.0f} "
        f"| {result['p50_ms']:.1f} | {result['p99_ms']:.1f} "
        f"| {sum(result['errors'].values())} | {'yes' if ok else '**NO**'} "
        f"| {cpu['python']:.2f} / {cpu['postgres']:.2f} / {cpu['other']:.2f} "
        f"| {result['python_ms_per_txn']:.2f} / {result['pg_ms_per_txn']:.2f} "
        f"| {load} |"
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    if not ok:
        print(f"CHECK FAILED: {result['checks']} errors={result['errors']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
