"""The migrations build exactly the schema the models describe, on both dialects."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from onetrip.db import make_engine
from onetrip.migrate import upgrade_async
from onetrip.schema import load_models
from onetrip.settings import async_database_url


async def _differences(url: str) -> list[object]:
    engine = make_engine(async_database_url(url))
    try:
        async with engine.connect() as connection:

            def compare(sync_connection: object) -> list[object]:
                context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
                return list(compare_metadata(context, load_models()))

            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def test_the_migrated_schema_matches_the_models(db_url: str) -> None:
    assert await _differences(db_url) == []


def _head() -> str:
    from alembic.script import ScriptDirectory

    from onetrip.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def test_upgrading_again_is_harmless(db_url: str) -> None:
    await upgrade_async(async_database_url(db_url))
    engine = make_engine(async_database_url(db_url))
    try:
        async with engine.connect() as connection:
            version = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert version == _head()
