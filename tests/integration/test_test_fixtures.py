"""The shared fixtures keep tests apart: each test's database is empty and migrated, and
the app runs its worker only when a test asks for it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory

from onetrip.migrate import alembic_config
from onetrip.schema import load_models
from tests.conftest import _copy_sqlite, _empty_all_tables, _pg_connect
from tests.integration.test_payments_support import paid_payment

pytest_plugins = ["tests.integration.test_payments_support"]

on_postgres = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_every_sqlite_copy_is_migrated_to_head_and_independent_of_the_others(
    sqlite_template: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first.db"
    _copy_sqlite(sqlite_template, first)
    assert _rows(first, "SELECT version_num FROM alembic_version") == [(_head(),)]
    connection = sqlite3.connect(first)
    with connection:
        connection.execute(
            "INSERT INTO departments (code, name, timezone, created_at)"
            " VALUES ('PSB', '市公安局', 'Asia/Shanghai', '2026-11-26 08:00:00')"
        )
    connection.close()

    second = tmp_path / "second.db"
    _copy_sqlite(sqlite_template, second)
    assert _rows(first, "SELECT count(*) FROM departments") == [(1,)]
    assert _rows(second, "SELECT count(*) FROM departments") == [(0,)]
    tables = {name for (name,) in _rows(second, "SELECT name FROM sqlite_master")}
    assert {table.name for table in load_models().sorted_tables} <= tables


@on_postgres
async def test_a_postgresql_database_a_test_filled_is_left_empty_and_rewound(
    app_client: Any, keys: dict[str, str], db_url: str
) -> None:
    await paid_payment(app_client, keys["psb"])  # ledger entries use a sequence
    conn = await _pg_connect(db_url)
    try:
        filled = [
            table.name
            for table in load_models().sorted_tables
            if await conn.fetchval(f'SELECT count(*) FROM "{table.name}"')
        ]
        assert {"departments", "payments", "ledger_entries", "outbox_events"} <= set(filled)

        await _empty_all_tables(db_url)

        for table in load_models().sorted_tables:
            assert await conn.fetchval(f'SELECT count(*) FROM "{table.name}"') == 0, table.name
        used = "SELECT sequencename FROM pg_sequences WHERE last_value IS NOT NULL"
        assert await conn.fetch(used) == []
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == _head()
    finally:
        await conn.close()


async def test_the_app_client_runs_no_worker_unless_the_test_asks(app_client: Any) -> None:
    assert app_client.app.state.runtime is None


@pytest.mark.with_worker
async def test_a_test_marked_with_worker_gets_the_embedded_runtime(app_client: Any) -> None:
    runtime = app_client.app.state.runtime
    assert runtime is not None and runtime.worker is not None
