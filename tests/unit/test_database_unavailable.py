"""Which errors mean "the database cannot serve us just now" (503, retry) rather than a
bug (500): each error here is a real one, raised by SQLite, SQLAlchemy's pool or the
network, not constructed by hand."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from onetrip.problems import database_unavailable, exception_handlers


def sqlite_locked_error(path: Path) -> BaseException:
    """SQLite's "database is locked" once another writer outlasts the busy timeout."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
        holder.close()
    raise AssertionError("the write was not refused")


def test_sqlite_locked_past_its_busy_timeout_is_unavailable(tmp_path: Path) -> None:
    error = sqlite_locked_error(tmp_path / "locked.db")
    assert "database is locked" in str(error)
    assert database_unavailable(error)


async def test_no_free_pooled_connection_in_time_is_unavailable(tmp_path: Path) -> None:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}",
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.05,
    )
    try:
        async with engine.connect():
            with pytest.raises(Exception) as raised:
                async with engine.connect():
                    pass
    finally:
        await engine.dispose()
    assert type(raised.value).__name__ == "TimeoutError"  # sqlalchemy.exc.TimeoutError
    assert database_unavailable(raised.value)


def test_a_refused_connection_and_an_unknown_host_are_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connecting is refused
        with pytest.raises(ConnectionRefusedError) as refused:
            socket.create_connection(("127.0.0.1", port), timeout=1)
    assert database_unavailable(refused.value)
    with pytest.raises(socket.gaierror) as unknown:  # a name that does not resolve
        socket.getaddrinfo("127.0.0.1", "no-such-service", type=socket.SOCK_STREAM)
    assert database_unavailable(unknown.value)


def test_a_cause_wrapped_in_another_error_is_found() -> None:
    try:
        try:
            socket.create_connection(("127.0.0.1", 1), timeout=1)
        except OSError as exc:
            raise RuntimeError("could not load the key") from exc
    except RuntimeError as wrapped:
        assert database_unavailable(wrapped)


def test_a_bug_raised_while_handling_a_lost_connection_is_still_a_bug() -> None:
    try:
        try:
            socket.create_connection(("127.0.0.1", 1), timeout=1)
        except OSError:
            raise KeyError("a bug in the error handling") from None
    except KeyError as bug:
        assert not database_unavailable(bug)


def test_bugs_and_bad_sql_are_not_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'ok.db'}")
    try:
        with pytest.raises(DBAPIError) as bad_sql, engine.connect() as conn:
            conn.execute(text("SELEC 1"))
    finally:
        engine.dispose()
    assert not database_unavailable(bad_sql.value)
    assert not database_unavailable(KeyError("x"))
    assert not database_unavailable(ValueError("database is locked"))  # only the driver's
    with pytest.raises(FileNotFoundError) as missing:
        (tmp_path / "none").read_text()
    assert not database_unavailable(missing.value)  # an OSError, but not a connection's


async def test_the_app_answers_503_problem_json_with_retry_after(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"

    @get("/write", sync_to_thread=False)
    def write() -> None:
        raise sqlite_locked_error(path)

    @get("/bug", sync_to_thread=False)
    def bug() -> None:
        raise KeyError("a bug")

    app = Litestar([write, bug], exception_handlers=exception_handlers)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/write")
        bug_response = await client.get("/bug")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert body["status"] == 503
    assert body["instance"] == "/write"
    assert (bug_response.status_code, bug_response.json()["code"]) == (500, "internal_error")
