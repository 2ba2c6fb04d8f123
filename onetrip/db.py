"""Database engine and units of work.

One async engine per event loop: the API server's loop and the Dramatiq worker's
event-loop thread each get their own, because asyncpg connections belong to the loop
that opened them. SQLite (the embedded default) runs in WAL mode and every unit of
work starts with BEGIN IMMEDIATE, so SQLite serialises writers the way PostgreSQL's
row locks would, and a read-then-write never fails half way with SQLITE_BUSY.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Table, TypeDecorator, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import PoolProxiedConnection

from onetrip.settings import get_settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        # A naive datetime is taken to be UTC already (what SQLite hands back).
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | None = None, **kwargs: Any) -> AsyncEngine:
    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    # Pool sized to the concurrency one process serves: connections opened beyond it
    # and closed again cost more than waiting for a free one (benchmarks/RESULTS.md).
    kwargs.setdefault("pool_size", get_settings().db_pool_size)
    kwargs.setdefault("max_overflow", 2)
    # No pool_pre_ping: on asyncpg it is BEGIN / ";" / ROLLBACK on every checkout, which
    # measured ~0.5 ms of CPU per payment creation and halved its throughput (2,000
    # creations, 16 at a time). A `_PoolGuard` catches what a restart leaves in the pool
    # without a round trip; connections are also recycled.
    kwargs.setdefault("pool_recycle", 1800)
    if make_url(url).get_driver_name() == "asyncpg":
        # No JIT: PostgreSQL compiles a statement whose estimated cost passes
        # jit_above_cost, and our reads' estimates do (a LATERAL sum per account, planned
        # for the rows an index range might hold): compiling took ~330 ms of a trial
        # balance whose execution took 45 ms (30 M payments, benchmarks/RESULTS.md).
        # An OLTP service's statements are short; the long ones are set-based scans
        # that JIT shortens by less than it costs here.
        settings = kwargs.setdefault("connect_args", {}).setdefault("server_settings", {})
        settings.setdefault("jit", "off")
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.driver == "asyncpg":
        guard = _PoolGuard()
        event.listen(engine.sync_engine, "connect", guard.on_connect)
        event.listen(engine.sync_engine, "checkout", guard.on_checkout)
        _guards[engine.sync_engine] = guard
    return engine


class _PoolGuard:
    """Keeps connections the server has dropped from being handed out by the pool.

    When PostgreSQL restarts or terminates a backend it closes the socket, and asyncpg
    marks the connection closed as soon as the event loop reads that: `is_closed()` is a
    local check, not a round trip. A closed one at checkout means the server went away,
    so every connection opened before that moment is replaced at its own next checkout
    too (what SQLAlchemy does when a statement it runs finds the server gone), and the
    pool opens a fresh one in its place for this checkout.
    """

    def __init__(self) -> None:
        self.stale_before = 0.0  # connections opened earlier are replaced at checkout

    def on_connect(self, _dbapi_connection: Any, record: Any) -> None:
        record.info["opened_at"] = time.monotonic()

    def on_checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("opened_at", 0.0) < self.stale_before:
            raise DisconnectionError("opened before the server was found gone")
        if dbapi_connection.driver_connection.is_closed():
            self.found_dead(record.info)
            raise DisconnectionError("the server closed this pooled connection")

    def found_dead(self, info: dict[str, Any]) -> None:
        """A connection opened after the last mark died: mark everything until now
        stale. (One opened before it is already replaced: marking again would only
        replace connections opened since, which are fine.)"""
        if info.get("opened_at", 0.0) >= self.stale_before:
            self.stale_before = time.monotonic()


_guards: weakref.WeakKeyDictionary[Any, _PoolGuard] = weakref.WeakKeyDictionary()


def connection_lost(engine: AsyncEngine, connection: PoolProxiedConnection) -> None:
    """Tell the pool that `connection` was found dead outside SQLAlchemy (by the raw
    asyncpg create statement): every pooled connection as old is replaced at its next
    checkout, since the server that held them has probably gone away."""
    guard = _guards.get(engine.sync_engine)
    if guard is not None:
        guard.found_dead(connection.info)


class Database:
    """Engines and session factories, one per running event loop."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = (
            weakref.WeakKeyDictionary()
        )
        self._makers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, async_sessionmaker[AsyncSession]
        ] = weakref.WeakKeyDictionary()
        self.after_commit: list[Callable[[], None]] = []

    @property
    def engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            engine = make_engine(self.url)
            self._engines[loop] = engine
            self._makers[loop] = async_sessionmaker(engine, expire_on_commit=False)
        return engine

    @property
    def is_sqlite(self) -> bool:
        return (self.url or get_settings().database_url).startswith("sqlite")

    def session(self) -> AsyncSession:
        self.engine  # noqa: B018 - make sure this loop has its engine
        return self._makers[asyncio.get_running_loop()]()

    async def dispose(self) -> None:
        """Dispose the engine of the current loop (others are disposed by their loops)."""
        loop = asyncio.get_running_loop()
        engine = self._engines.pop(loop, None)
        self._makers.pop(loop, None)
        if engine is not None:
            await engine.dispose()

    def notify_committed(self) -> None:
        for callback in list(self.after_commit):
            callback()


_database: Database | None = None


def get_database() -> Database:
    global _database
    if _database is None:
        _database = Database()
    return _database


def set_database(database: Database | None) -> None:
    global _database
    _database = database


@asynccontextmanager
async def unit_of_work() -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits when the block ends without error.

    Services never commit: the caller's unit of work does, so a state change, its ledger
    transaction and its outbox events commit together or not at all.
    """
    database = get_database()
    async with database.session() as session, session.begin():
        yield session
    database.notify_committed()


def insert_ignoring_conflicts(
    session: AsyncSession, table: Table, index_elements: list[str]
) -> Any:
    """An INSERT that does nothing when the row exists, for either dialect.

    Callers add `.values(...)` and usually `.returning(...)`: no returned row means the
    row was already there (a replay, a duplicate event).
    """
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=index_elements)
