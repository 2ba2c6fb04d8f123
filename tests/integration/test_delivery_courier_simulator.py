"""The simulated courier against the running app: a real HTTP server on 127.0.0.1 with
its embedded worker, the simulator's periodic job calling the courier API over HTTP with
its own courier key, until the parcel (and the licence) is delivered."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from delivery.models import DispatchEvent
from onetrip.db import get_database
from onetrip.settings import get_settings, reset_settings
from tests.factories import make_key
from tests.integration.test_delivery_dispatch import (
    add_partner,
    consume_printed,
    dispatches_of,
    license_row,
    printed_license,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_simulator_moves_a_dispatch_to_delivered_over_http(
    db: Any, env: pytest.MonkeyPatch
) -> None:
    from onetrip.app import create_app

    port = free_port()
    await add_partner("SF")
    key = await make_key("courier", partner="SF")
    env.setenv("ONETRIP_PUBLIC_URL", f"http://127.0.0.1:{port}")
    env.setenv("ONETRIP_COURIER_SIMULATOR", "true")
    env.setenv("ONETRIP_COURIER_SIMULATOR_STEP", "0.2")
    env.setenv("ONETRIP_COURIER_SIMULATOR_KEY", key)
    reset_settings()
    license = await printed_license()
    await consume_printed(license.id)
    [dispatch] = await dispatches_of(license.id)

    app = create_app(get_settings(), embedded_worker=True)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 40
        while (await license_row(license.id)).status != "delivered":
            assert time.monotonic() < deadline, "the simulator did not deliver in 40 s"
            assert not serving.done(), "the server stopped"
            await asyncio.sleep(0.3)
    finally:
        server.should_exit = True
        await serving
    async with get_database().session() as session:
        events = list(
            (
                await session.execute(
                    select(DispatchEvent)
                    .where(DispatchEvent.dispatch_id == dispatch.id)
                    .order_by(DispatchEvent.occurred_at)
                )
            ).scalars()
        )
    assert [e.status for e in events] == [
        "accepted",
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivered",
    ]
    assert all(e.event_id.startswith("sim-") and e.applied for e in events)
    assert events[-1].recipient_name == "张伟"
    [dispatch] = await dispatches_of(license.id)
    assert dispatch.status == "delivered"
