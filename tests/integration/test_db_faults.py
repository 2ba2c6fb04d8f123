"""The service under database faults (issue 6, items 4 and 5).

A PostgreSQL restart may cost the requests in flight, never the ones after it; while the
database cannot be reached, requests get 503 `service_unavailable` with `Retry-After`,
never 500. Nothing here stops the shared server: the test's own database has its backends
terminated (what a restart does to the pool), or the app points at a port where nothing
listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event, text
from sqlalchemy.util import await_

from onetrip.db import Database, get_database, set_database
from onetrip.settings import async_database_url, reset_settings
from tests.conftest import _empty_all_tables
from tests.e2e.test_processes_support import free_port
from tests.factories import auth, payment_body
from tests.integration.test_payments_support import assert_problem, count_rows, idem

pytest_plugins = ["tests.integration.test_payments_support"]

# With a timeout, pg_terminate_backend waits (up to that many ms) until each backend is
# gone; without one it only signals them, and returns while they are still exiting.
_TERMINATE = """
SELECT count(pg_terminate_backend(pid{timeout})) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


@pytest.fixture
def db_url(postgres_database_url: str) -> str:
    """PostgreSQL only: these faults are the pool's and asyncpg's."""
    asyncio.run(_empty_all_tables(postgres_database_url))
    return postgres_database_url


@pytest.fixture
async def client(api_app: Any, keys: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A client that runs the app on the test's own event loop, so that requests sent
    with asyncio.gather really are in flight together (Litestar's test client runs each
    one to its end on a loop of its own) and share the pool a test can watch."""
    transport = httpx.ASGITransport(app=api_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def terminate_every_backend(url: str, *, wait: bool = False) -> int:
    """What a server restart does to the app's pooled connections, from outside: at
    once (requests race the backends' exit), or `wait`ing until they are gone."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(_TERMINATE.format(timeout=", 5000" if wait else "")))
    finally:
        await conn.close()


async def terminate_backend(url: str, pid: int) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(pg_terminate_backend($1, 5000))", pid))
    finally:
        await conn.close()


async def create_many(client: Any, key: str, n: int) -> list[Any]:
    return await asyncio.gather(
        *(
            client.post(
                "/api/v1/payments",
                json=payment_body(reference=f"CRJ-2026-{idem('ref')}"),
                headers=auth(key, idem("restart")),
            )
            for _ in range(n)
        )
    )


async def test_payments_are_created_again_right_after_every_backend_was_terminated(
    client: Any, keys: dict[str, str], db_url: str
) -> None:
    # Fill the pool with connections first, so that every one of them dies.
    assert [r.status_code for r in await create_many(client, keys["psb"], 20)] == [201] * 20
    assert await terminate_every_backend(db_url) >= 1

    responses = await create_many(client, keys["psb"], 20)

    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 20
    assert await count_rows("payments") == 40
    assert await count_rows("outbox_events", "type = 'payment.created'") == 40


async def test_payments_created_back_to_back_after_a_restart_all_succeed(
    client: Any, keys: dict[str, str], db_url: str
) -> None:
    await create_many(client, keys["psb"], 20)
    await terminate_every_backend(db_url, wait=True)

    statuses = [(await create_many(client, keys["psb"], 1))[0].status_code for _ in range(20)]

    assert statuses == [201] * 20
    assert await count_rows("payments") == 40


async def test_reads_through_the_session_survive_terminated_backends(
    client: Any, keys: dict[str, str], db_url: str
) -> None:
    await create_many(client, keys["psb"], 5)
    listed = [client.get("/api/v1/payments", headers=auth(keys["psb"])) for _ in range(5)]
    assert all(r.status_code == 200 for r in await asyncio.gather(*listed))
    # A read through the session cannot be sent again the way the create statement
    # can: one already under way as the backends exit may get 503. After them, none may.
    await terminate_every_backend(db_url, wait=True)

    responses = await asyncio.gather(
        *(client.get("/api/v1/payments", headers=auth(keys["psb"])) for _ in range(5))
    )

    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    assert all(len(r.json()["data"]) == 5 for r in responses)
    assert (await client.get("/health/ready")).status_code == 200


async def test_a_creation_whose_connection_dies_after_checkout_is_sent_once_more(
    client: Any, keys: dict[str, str], db_url: str
) -> None:
    """The backend dies between checkout (past any pre-ping) and the raw create
    statement: the statement is sent again once on a fresh connection, under the same
    Idempotency-Key claim, so the request succeeds and creates exactly one payment."""
    await create_many(client, keys["psb"], 1)
    engine = get_database().engine
    killed: list[int] = []

    def kill_on_first_checkout(dbapi_connection: Any, *_: Any) -> None:
        # SQLAlchemy's pool event, after its pre-ping: our own backend is terminated
        # (waiting until it is gone) before the app sends its statement on it.
        if not killed:
            pid = dbapi_connection.driver_connection.get_server_pid()
            killed.append(await_(terminate_backend(db_url, pid)))

    event.listen(engine.sync_engine.pool, "checkout", kill_on_first_checkout)
    try:
        response = await client.post(
            "/api/v1/payments", json=payment_body(), headers=auth(keys["psb"], "crj-dead")
        )
    finally:
        event.remove(engine.sync_engine.pool, "checkout", kill_on_first_checkout)
    assert killed == [1]
    assert response.status_code == 201, response.text
    assert await count_rows("payments") == 2
    replay = await client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(keys["psb"], "crj-dead")
    )
    assert replay.status_code == 201
    assert replay.json() == response.json()
    assert await count_rows("payments") == 2


# --- the database is down ---------------------------------------------------------------


@pytest.fixture
async def unreachable(env: pytest.MonkeyPatch, api_app: Any) -> AsyncIterator[Any]:
    """The app pointed at a PostgreSQL port where nothing listens."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/onetrip"
    env.setenv("DATABASE_URL", url)
    reset_settings()
    database = Database(async_database_url(url))
    set_database(database)
    async with AsyncTestClient(app=api_app) as client:
        yield client
    await database.dispose()
    set_database(None)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/payments"),
        ("post", "/api/v1/payments"),
        ("get", "/api/v1/ledger/trial-balance"),
        ("get", "/api/v1/matters"),
    ],
)
async def test_requests_while_the_database_is_down_get_503_with_retry_after(
    unreachable: Any, method: str, path: str
) -> None:
    headers = {
        "Authorization": "Bearer otk_0123456789abcdef_" + "A" * 32,
        "Idempotency-Key": "k1",
    }
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "post":
        kwargs["json"] = payment_body()
    response = await getattr(unreachable, method)(path, **kwargs)
    body = assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "5"
    assert "database" in body["detail"]


async def test_health_ready_is_503_with_retry_after_while_the_database_is_down(
    unreachable: Any,
) -> None:
    response = await unreachable.get("/health/ready")
    assert response.status_code == 503, response.text
    assert response.json()["checks"]["database"].startswith("error")
    assert response.headers["retry-after"] == "5"
    assert (await unreachable.get("/health/live")).status_code == 200


async def test_the_service_s_connections_never_jit_compile(db_url: str) -> None:
    """PostgreSQL's JIT compiled a trial balance for ~330 ms that ran in 45 ms (its cost
    estimate passes jit_above_cost): the service's connections turn it off."""
    database = Database(async_database_url(db_url))
    try:
        async with database.session() as session:
            assert (await session.execute(text("SHOW jit"))).scalar_one() == "off"
    finally:
        await database.dispose()
