"""Schema migrations with Alembic, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncConnection

from onetrip.db import make_engine
from onetrip.settings import get_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: object | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(sync_connection: object, revision: str) -> None:
    command.upgrade(alembic_config(sync_connection), revision)


async def upgrade_async(url: str | None = None, revision: str = "head") -> None:
    """Bring the database at `url` (default: the configured one) up to `revision`."""
    engine = make_engine(url or get_settings().database_url)
    try:
        async with engine.connect() as connection:
            await _run(connection, revision)
    finally:
        await engine.dispose()


async def _run(connection: AsyncConnection, revision: str) -> None:
    # SQLite connections here emit no BEGIN of their own (see onetrip.db); Alembic's
    # transaction is the one begun here.
    async with connection.begin():
        await connection.run_sync(_upgrade, revision)


def upgrade(url: str | None = None, revision: str = "head") -> None:
    asyncio.run(upgrade_async(url, revision))
