"""`onetrip reconcile import` and `onetrip reconcile profile`, run as finance staff run
them: a separate process on a SQLite file, a summary table, non-zero exit on refusal."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.e2e.test_processes_support import clean_env, run_onetrip
from tests.integration import test_reconciliation_support as fx


def count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_a_bank_statement_is_imported_once_and_refusals_exit_non_zero(tmp_path: Path) -> None:
    db = tmp_path / "finance.db"
    env = clean_env(DATABASE_URL=f"sqlite:///{db}", USER="cashier1")
    profile = tmp_path / "icbc.json"
    profile.write_text(json.dumps(fx.GBK_PROFILE, ensure_ascii=False), encoding="utf-8")
    added = run_onetrip("reconcile", "profile", "add", str(profile), env=env, cwd=tmp_path)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "profile icbc-hangzhou saved" in added.stdout
    listed = run_onetrip("reconcile", "profile", "list", env=env, cwd=tmp_path)
    assert "icbc-hangzhou" in listed.stdout and "gbk" in listed.stdout

    lines = fx.month_of_lines()
    statement = tmp_path / "工商银行-2026-11.csv"
    statement.write_bytes(fx.gbk_csv(lines))
    args = (
        "reconcile",
        "import",
        str(statement),
        "--source",
        "bank_csv",
        "--profile",
        "icbc-hangzhou",
    )
    first = run_onetrip(*args, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{len(lines)} new, 0 already imported" in first.stdout
    assert "CNY" in first.stdout and "¥" in first.stdout  # the summary table
    again = run_onetrip(*args, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"0 new, {len(lines)} already imported" in again.stdout
    assert count(db, "reconciliation_external_records") == len(lines)
    conn = sqlite3.connect(db)
    who = {row[0] for row in conn.execute("SELECT imported_by FROM reconciliation_imports")}
    conn.close()
    assert who == {"cli:cashier1"} or all(w.startswith("cli:") for w in who)

    broken = tmp_path / "broken.csv"
    text = fx.gbk_csv(lines).decode("gbk").replace('"12,600.00"', '"12,600.005"')
    broken.write_bytes(text.encode("gbk"))
    refused = run_onetrip(
        "reconcile",
        "import",
        str(broken),
        "--source",
        "bank_csv",
        "--profile",
        "icbc-hangzhou",
        env=env,
        cwd=tmp_path,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "line 4" in refused.stderr and "more than 2 decimal places" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert count(db, "reconciliation_imports") == 2

    camt = tmp_path / "stmt.xml"
    camt.write_bytes(b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.09'/>")
    not_camt = run_onetrip(
        "reconcile", "import", str(camt), "--source", "camt053", env=env, cwd=tmp_path
    )
    assert not_camt.returncode == 1 and "not a camt.053" in not_camt.stderr
    no_file = run_onetrip("reconcile", "import", "--source", "camt053", env=env, cwd=tmp_path)
    assert no_file.returncode != 0 and "needs a FILE" in no_file.stderr
