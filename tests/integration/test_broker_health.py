"""/health/ready against real brokers and an unreachable database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import dramatiq
import pytest
from litestar.testing import AsyncTestClient

from onetrip.broker import configure_broker
from onetrip.db import set_database
from onetrip.settings import get_settings, reset_settings
from tests.conftest import service_url
from tests.e2e.test_processes_support import delete_vhost, free_port, isolated_broker_url


@pytest.fixture(scope="module")
def rabbitmq_vhost() -> Iterator[tuple[str, str | None]]:
    with isolated_broker_url(service_url("rabbitmq")) as isolated:
        yield isolated


@pytest.fixture
async def ready(env: pytest.MonkeyPatch, sqlite_url: str) -> AsyncIterator[Any]:
    """`ready(database_url=..., broker_url=...)` → an API client of a scaled-out app
    (no in-process worker) with that configuration; everything is put back after."""
    clients: list[AsyncTestClient[Any]] = []

    async def start(broker_url: str, database_url: str = sqlite_url) -> AsyncTestClient[Any]:
        from onetrip.app import create_app

        env.setenv("DATABASE_URL", database_url)
        env.setenv("BROKER_URL", broker_url)
        reset_settings()
        client = AsyncTestClient(app=create_app(get_settings()))
        await client.__aenter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.__aexit__(None, None, None)
    broker = dramatiq.get_broker()
    configure_broker(None)
    broker.close()
    set_database(None)


async def test_ready_with_rabbitmq(ready, rabbitmq_vhost) -> None:  # type: ignore[no-untyped-def]
    client = await ready(rabbitmq_vhost[0])
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    # asked again, on the connection it keeps
    assert (await client.get("/health/ready")).status_code == 200


async def test_ready_with_redis(ready) -> None:  # type: ignore[no-untyped-def]
    client = await ready(service_url("redis"))
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.parametrize("scheme", ["amqp", "redis"])
async def test_ready_is_503_when_the_broker_is_unreachable(ready, scheme) -> None:  # type: ignore[no-untyped-def]
    port = free_port()  # nothing listens there
    url = (
        f"amqp://guest:guest@127.0.0.1:{port}/%2F"
        if scheme == "amqp"
        else f"redis://127.0.0.1:{port}/0"
    )
    client = await ready(url)
    response = await client.get("/health/ready")
    assert response.status_code == 503, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "error"}


async def test_ready_notices_rabbitmq_going_away_after_it_was_reachable(ready) -> None:  # type: ignore[no-untyped-def]
    """The check talks to RabbitMQ each time; a connection that was open once is no proof
    (deleting our vhost closes its connections, as a broker restart would)."""
    with isolated_broker_url(service_url("rabbitmq")) as (url, vhost):
        if vhost is None:
            pytest.skip("needs rabbitmqctl on the RabbitMQ host to take a vhost away")
        client = await ready(url)
        assert (await client.get("/health/ready")).status_code == 200
        assert delete_vhost(vhost)
        response = await client.get("/health/ready")
        assert response.status_code == 503, response.text
        assert response.json()["checks"]["broker"] == "error"


async def test_ready_is_503_when_the_database_is_unreachable(ready, rabbitmq_vhost) -> None:  # type: ignore[no-untyped-def]
    port = free_port()  # nothing listens there
    client = await ready(
        rabbitmq_vhost[0], database_url=f"postgresql://postgres@127.0.0.1:{port}/onetrip"
    )
    response = await client.get("/health/ready")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["broker"] == "ok"
