"""Shared fixtures: databases (SQLite and PostgreSQL), brokers, localstripe, the app.

Real servers only. PostgreSQL, RabbitMQ and Redis tests run when their URL is set
(ONETRIP_TEST_POSTGRES_URL, ONETRIP_TEST_RABBITMQ_URL, ONETRIP_TEST_REDIS_URL) and
skip otherwise; with ONETRIP_TEST_REQUIRE_SERVICES=1 (CI) a missing one fails instead.

Speed without sharing state: the schema is migrated once per session and per dialect
(an SQLite template file copied into each test's tmp_path; one PostgreSQL database
emptied between tests), the app runs without its background runtime unless a test is
marked `with_worker`, and process-wide caches are reset around every test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from onetrip import ratelimit
from onetrip.auth import key_cache
from onetrip.broker import configure_broker
from onetrip.db import Database, set_database
from onetrip.settings import async_database_url, reset_settings

REQUIRE = os.environ.get("ONETRIP_TEST_REQUIRE_SERVICES") == "1"


def service_url(name: str) -> str:
    """The URL of a real service for tests, or skip (fail in CI) when not configured."""
    url = os.environ.get(f"ONETRIP_TEST_{name.upper()}_URL")
    if not url:
        if REQUIRE:
            pytest.fail(f"ONETRIP_TEST_{name.upper()}_URL is required in CI")
        pytest.skip(f"set ONETRIP_TEST_{name.upper()}_URL to run {name} tests")
    return url


# --- process-wide state, fresh in every test ----------------------------------------


def reset_singletons() -> None:
    """Forget every in-process cache a test could leave behind for the next one.

    Settings and API keys are read through caches; the catalogue caches fees for a few
    seconds; Stripe clients are kept per event loop (and per API base); the CJK font is
    chosen once from ONETRIP_CJK_FONT. A test that changes any of them must not leak it.
    """
    from notifications.channels import reset_channels
    from onetrip.pdf import reset_cjk_font
    from onetrip.stripe_client import forget_clients
    from payments.catalogue import clear_cache

    reset_settings()
    key_cache.clear()
    ratelimit.reset()
    clear_cache()
    forget_clients()
    reset_cjk_font()
    reset_channels()


@pytest.fixture(autouse=True)
def _fresh_singletons() -> Iterator[None]:
    """Every test starts from empty caches and an empty in-process broker."""
    reset_singletons()
    # A new StubBroker (every declared actor moved onto it): no message queued by an
    # earlier test can be consumed in this one.
    configure_broker(None)
    yield
    reset_singletons()


# --- PostgreSQL: one fresh database per test session --------------------------------


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    base = service_url("postgres")
    name = f"onetrip_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_create_pg_database(base, name))
    prefix, _, _ = base.rpartition("/")
    url = f"{prefix}/{name}"
    asyncio.run(_build_schema(url))
    yield url
    asyncio.run(_drop_pg_database(base, name))


async def _pg_connect(url: str):  # type: ignore[no-untyped-def]
    import asyncpg

    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))


async def _create_pg_database(base: str, name: str) -> None:
    conn = await _pg_connect(base)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_pg_database(base: str, name: str) -> None:
    conn = await _pg_connect(base)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _build_schema(url: str) -> None:
    from onetrip.migrate import upgrade_async

    await upgrade_async(async_database_url(url))


# Tables whose own triggers refuse DELETE (the ledger is append-only) and the sequences
# that have handed out a value, in one round trip.
_PG_STATE = """
SELECT 'protected', c.relname
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgtype & 8 <> 0 AND n.nspname = current_schema()
UNION ALL
SELECT 'sequence', format('%I.%I', schemaname, sequencename)
FROM pg_sequences WHERE last_value IS NOT NULL
"""


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _empty_all_tables(url: str) -> None:
    """Leave every table empty and every sequence rewound, as in a fresh database.

    TRUNCATE of every table cost ~0.15 s per test (new files for each table and index),
    while a test leaves a few rows in a few tables. So only tables holding rows are
    emptied: the append-only ones (their triggers refuse DELETE) by TRUNCATE ... CASCADE
    first, then the others by DELETE, children first. Used sequences restart, as
    RESTART IDENTITY did.
    """
    from onetrip.schema import load_models

    tables = [table.name for table in load_models().sorted_tables]  # parents first
    probe = " UNION ALL ".join(
        f"SELECT 'rows', '{name}' WHERE EXISTS (SELECT 1 FROM {_quoted(name)})" for name in tables
    )
    conn = await _pg_connect(async_database_url(url))
    try:
        found: dict[str, set[str]] = {"rows": set(), "protected": set(), "sequence": set()}
        for kind, name in await conn.fetch(f"{probe} UNION ALL {_PG_STATE}"):
            found[kind].add(name)
        truncated = [n for n in tables if n in found["rows"] and n in found["protected"]]
        deleted = [n for n in reversed(tables) if n in found["rows"] and n not in truncated]
        statements = [f"TRUNCATE {', '.join(map(_quoted, truncated))} CASCADE"] if truncated else []
        statements += [f"DELETE FROM {_quoted(name)}" for name in deleted]
        statements += [f"ALTER SEQUENCE {name} RESTART" for name in sorted(found["sequence"])]
        if statements:
            async with conn.transaction():
                await conn.execute(";\n".join(statements))
    finally:
        await conn.close()


# --- SQLite: one migrated template per session, copied per test ---------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head, built once per session (so a migration added
    since the last run is always in it) and only ever copied, never opened again."""
    path = tmp_path_factory.mktemp("sqlite-template") / "onetrip.db"
    asyncio.run(_build_schema(f"sqlite:///{path}"))
    # Fold the write-ahead log into the main file, so the file alone is the database.
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _copy_sqlite(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    for suffix in ("-wal", "-shm"):  # none after the checkpoint; copied if SQLite kept one
        side = template.with_name(template.name + suffix)
        if side.exists():
            shutil.copyfile(side, target.with_name(target.name + suffix))
    return f"sqlite:///{target}"


# --- the database under test, on both dialects ---------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database; tests using it run once per dialect."""
    if request.param == "sqlite":
        return _copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "onetrip.db")
    url = request.getfixturevalue("postgres_database_url")
    asyncio.run(_empty_all_tables(url))
    return url


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """An SQLite database only, for tests that do not depend on the dialect."""
    return _copy_sqlite(sqlite_template, tmp_path / "onetrip.db")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment for the service's settings."""
    for name in list(os.environ):
        if name.startswith(("ONETRIP_", "STRIPE_")) and not name.startswith("ONETRIP_TEST_"):
            monkeypatch.delenv(name, raising=False)
    for name in ("DATABASE_URL", "BROKER_URL", "SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONETRIP_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("ONETRIP_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("ONETRIP_RELAY_INTERVAL", "0.05")
    # Tests make many requests with one key or from one address: the rate-limit tests
    # set their own limits.
    monkeypatch.setenv("ONETRIP_RATE_LIMIT", "100000")
    monkeypatch.setenv("ONETRIP_PAGE_RATE_LIMIT", "100000")
    reset_settings()
    key_cache.clear()
    yield monkeypatch
    reset_settings()
    key_cache.clear()


@pytest.fixture
async def db(db_url: str, env: pytest.MonkeyPatch) -> AsyncIterator[Database]:
    """The global Database pointed at a fresh database of each dialect."""
    env.setenv("DATABASE_URL", db_url)
    reset_settings()
    database = Database(async_database_url(db_url))
    set_database(database)
    configure_broker(None)
    yield database
    await database.dispose()
    set_database(None)


@pytest.fixture(scope="session")
def api_app() -> Any:
    """The whole app without its background runtime, built once per session.

    Building it (route registration, a signature model per handler) cost ~0.2 s per
    test. It holds no per-test state: settings, the database and the broker are read
    through their globals, which `db` and `env` point at each test's own; each client
    runs the app's lifespan again (and disposes the test's engine at the end).
    """
    from onetrip.app import create_app
    from onetrip.settings import load_settings

    # Built for no broker and no database in particular: create_app's globals are
    # replaced by every test's `db` fixture.
    app = create_app(replace(load_settings(), broker_url=None), embedded_worker=False)
    set_database(None)
    return app


@pytest.fixture
async def app_client(
    request: pytest.FixtureRequest, api_app: Any, db: Database, env: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    """An in-process client of the whole app, without its background runtime.

    No relay and no Dramatiq worker: requests do all a contract test checks, and nothing
    runs behind the test's back (no periodic sweep racing the one a test calls, no relay
    polling the database). A test that waits for a job (a receipt rendered by the
    worker, an event relayed to a consumer) says so with `@pytest.mark.with_worker`,
    and gets an app of its own with the embedded relay and worker.
    """
    from litestar.testing import AsyncTestClient

    from onetrip.app import create_app
    from onetrip.settings import get_settings

    app = api_app  # session-scoped: set up before `db` points the globals at this test
    if request.node.get_closest_marker("with_worker") is not None:
        app = create_app(get_settings(), embedded_worker=True)
    async with AsyncTestClient(app=app) as client:
        check_conformance(request, client)  # issue 7: responses as documented
        yield client


@pytest.fixture(scope="session")
def openapi_conformance(api_app: Any) -> Any:
    """Checks responses against the app's served OpenAPI document (built once)."""
    from onetrip.openapi import document
    from tests.integration.test_openapi_support import Conformance

    return Conformance(document(api_app))


def check_conformance(request: pytest.FixtureRequest, client: Any) -> None:
    """On the payments, ledger and keys test modules (or one setting
    OPENAPI_CONFORMANCE = True), fail every request whose response the OpenAPI
    document does not describe (tests/integration/test_openapi_support.py)."""
    from tests.integration.test_openapi_support import checked

    if request.module is None or not checked(request.module):
        return
    conformance = request.getfixturevalue("openapi_conformance")

    async def check(response: Any) -> None:
        await response.aread()
        wrong = conformance.problems(
            response.request.method,
            response.request.url.path,
            response.status_code,
            response.headers.get("content-type"),
            dict(response.headers),
            response.content,
        )
        assert not wrong, "response not as the OpenAPI document says:\n" + "\n".join(wrong)

    client.event_hooks["response"].append(check)


# --- CUPS (print runs) ---------------------------------------------------------------


@pytest.fixture
def cups_url() -> str:
    """The IPP URL of a real CUPS queue printing to cups-pdf (ONETRIP_TEST_CUPS_URL,
    `.ci/run` sets it up); skips without it, fails in CI."""
    return service_url("cups")
