"""A real HTTP server on 127.0.0.1 that receives outgoing webhooks and verifies them with
the `standardwebhooks` package from PyPI (never with our own signing code)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Answer:
    """What the receiver answers to one request."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified_by: set[str]  # which of the receiver's secrets verify it


class Receiver:
    """Answers requests from `script` in order (then 200), recording each one."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.script: list[Answer] = []
        self.received: list[Received] = []
        self.port = 0

    def url(
        self, path: str = "/hooks/onetrip", host: str = "127.0.0.1", scheme: str = "http"
    ) -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        verified = set()
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified.add(secret)
        self.received.append(Received(headers=headers, body=body, verified_by=verified))
        answer = self.script.pop(0) if self.script else Answer()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if not verified:
            return web.Response(status=401, body=b"bad signature")
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


@asynccontextmanager
async def serving(
    receiver: Receiver, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Receiver]:
    """Run `receiver` on 127.0.0.1 (a free port) for the duration of the block."""
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A plain-http receiver on 127.0.0.1."""
    async with serving(Receiver()) as running:
        yield running
