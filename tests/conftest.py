"""Shared fixtures: databases (SQLite and PostgreSQL), brokers, localstripe, the app.

Real servers only. PostgreSQL, RabbitMQ and Redis tests run when their URL is set
(ONETRIP_TEST_POSTGRES_URL, ONETRIP_TEST_RABBITMQ_URL, ONETRIP_TEST_REDIS_URL) and
skip otherwise; with ONETRIP_TEST_REQUIRE_SERVICES=1 (CI) a missing one fails instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

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


async def _truncate_all(url: str) -> None:
    from onetrip.schema import load_models

    metadata = load_models()
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    conn = await _pg_connect(async_database_url(url))
    try:
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


# --- the database under test, on both dialects ---------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database; tests using it run once per dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'onetrip.db'}"
        asyncio.run(_build_schema(url))
        return url
    url = request.getfixturevalue("postgres_database_url")
    asyncio.run(_truncate_all(url))
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An SQLite database only, for tests that do not depend on the dialect."""
    url = f"sqlite:///{tmp_path / 'onetrip.db'}"
    asyncio.run(_build_schema(url))
    return url


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


@pytest.fixture
async def app_client(db: Database, env: pytest.MonkeyPatch) -> AsyncIterator[object]:
    """An in-process client of the whole app (embedded worker and relay included)."""
    from litestar.testing import AsyncTestClient

    from onetrip.app import create_app
    from onetrip.settings import get_settings

    app = create_app(get_settings())
    async with AsyncTestClient(app=app) as client:
        yield client
