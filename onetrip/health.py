"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

import dramatiq
import msgspec
from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import text

from onetrip.broker import broker_reachable
from onetrip.db import get_database
from onetrip.openapi import documented
from onetrip.problems import RETRY_AFTER_SECONDS


class Live(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    """`ok`, or `unavailable` with the check that failed (`error: ...`)."""

    status: str
    checks: dict[str, str]


class HealthController(Controller):
    path = "/health"
    tags = ["operations"]

    @get("/live", summary="The process is up", opt=documented(uses_database=False))
    async def live(self) -> Live:
        return Live(status="ok")

    @get(
        "/ready",
        summary="The database and the broker are reachable",
        responses={
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                Readiness,
                description="The database or the broker cannot be reached (Retry-After)",
                examples=[],
            )
        },
    )
    async def ready(self) -> Response[Readiness]:
        checks: dict[str, str] = {}
        try:
            # Bounded like the broker's check: a database that accepts connections but
            # never answers must not hang the probe.
            await asyncio.wait_for(_select_one(), timeout=3)
            checks["database"] = "ok"
        except Exception as exc:  # report, never raise, from a health check
            checks["database"] = f"error: {type(exc).__name__}"
        # The broker clients block; keep them off the event loop, and bounded.
        try:
            reachable = await asyncio.wait_for(
                asyncio.to_thread(broker_reachable, dramatiq.get_broker()), timeout=3
            )
        except TimeoutError:
            reachable = False
        checks["broker"] = "ok" if reachable else "error"
        healthy = all(v == "ok" for v in checks.values())
        return Response(
            Readiness(status="ok" if healthy else "unavailable", checks=checks),
            status_code=HTTP_200_OK if healthy else HTTP_503_SERVICE_UNAVAILABLE,
            # as every 503 of the API says: when to ask again
            headers=None if healthy else {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


async def _select_one() -> None:
    async with get_database().session() as session:
        await session.execute(text("SELECT 1"))
