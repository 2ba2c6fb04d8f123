"""`onetrip reconcile run` as an operator runs it: a separate process on a SQLite file
holding the month, a summary table, and a non-zero exit when it is refused."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from onetrip.db import Database, set_database, unit_of_work
from onetrip.settings import async_database_url
from tests import finance_fixtures as fx
from tests.e2e.test_processes_support import clean_env, run_onetrip


async def _build(url: str) -> fx.FinanceMonth:
    database = Database(async_database_url(url))
    set_database(database)
    try:
        async with unit_of_work() as session:
            month = await fx.build_month(session)
            await fx.import_month(session, month)
        return month
    finally:
        await database.dispose()
        set_database(None)


def _runs(path: Path) -> list[tuple[str, int, int]]:
    conn = sqlite3.connect(path)
    try:
        return list(
            conn.execute("SELECT started_by, dry_run, new_matches FROM reconciliation_runs")
        )
    finally:
        conn.close()


def test_reconcile_run_prints_what_it_found_and_refusals_exit_non_zero(
    sqlite_url: str, tmp_path: Path
) -> None:
    month = asyncio.run(_build(sqlite_url))
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    env = clean_env(DATABASE_URL=sqlite_url, USER="cashier1", COLUMNS="160")
    args = ("reconcile", "run", "--from", "2026-11-01", "--to", "2026-11-30")

    dry = run_onetrip(*args, "--dry-run", env=env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run, nothing written" in dry.stdout
    done = run_onetrip(*args, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    matched = len(month.payments) + len(month.refunds)
    assert f"{matched} matched, 3 open exception(s)" in done.stdout
    for reason in ("amount_differs", "duplicate", "missing_in_bank"):
        assert f"open: {reason}" in done.stdout
    assert month.p1.id in done.stdout and "¥8,214.62" in done.stdout  # control totals
    assert [(who, bool(dry_run)) for who, dry_run, _ in _runs(path)] == [
        ("cli:cashier1", True),
        ("cli:cashier1", False),
    ]

    backwards = run_onetrip(
        "reconcile", "run", "--from", "2026-11-30", "--to", "2026-11-01", env=env, cwd=tmp_path
    )
    assert backwards.returncode == 1
    assert "date_from must not be after date_to" in backwards.stderr
    assert "Traceback" not in backwards.stderr
    assert len(_runs(path)) == 2
