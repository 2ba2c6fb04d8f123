"""SMS through two real HTTP providers (aiohttp test servers on free ports): the request
they get, traffic shared between them, and failover when one answers 500 or times out,
with the traffic coming back once it recovers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from notifications.channels import (
    Channel,
    Message,
    PermanentFailure,
    TemporaryFailure,
    channel_for,
    reset_channels,
)
from notifications.channels.sms import FailoverSmsChannel, parse_sms_providers
from onetrip.ids import new_id
from onetrip.settings import reset_settings


@dataclass
class Provider:
    """A test SMS provider: records every request, answers `status` (after `delay` s)."""

    name: str
    key: str
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/sms"

    @property
    def setting(self) -> str:
        return f"{self.name}={self.url}#{self.key}"

    @property
    def references(self) -> list[str]:
        return [r["body"]["reference"] for r in self.requests]

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {"headers": dict(request.headers), "body": await request.json(), "path": request.path}
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"error": "bad key"}, status=401)
        if self.status >= 300:
            return web.json_response({"error": "nope"}, status=self.status, headers=self.headers)
        return web.json_response({"id": f"{self.name}-{len(self.requests)}"}, status=self.status)


async def serve(provider: Provider) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/v1/sms", provider.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    provider.port = runner.addresses[0][1]
    return runner


@pytest.fixture
async def providers() -> AsyncIterator[tuple[Provider, Provider]]:
    a, b = Provider("a", "key-a"), Provider("b", "key-b")
    runners = [await serve(a), await serve(b)]
    yield a, b
    for runner in runners:
        await runner.cleanup()


Configure = Callable[..., Channel]  # (**environment) → the SMS channel


class Clock:
    """The failover's monotonic clock, moved by the test (cooldowns without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sms(
    recipient: str = "138 0013 8000", text: str = "【一趟办】您的证照已送达，请评价。"
) -> Message:
    return Message(id=new_id("ntf"), channel="sms", recipient=recipient, subject="", text=text)


def failover(a: Provider, b: Provider, clock: Clock, timeout: float = 10.0) -> FailoverSmsChannel:
    return FailoverSmsChannel(
        parse_sms_providers(f"{a.setting},{b.setting}"),
        timeout=timeout,
        cooldown=30,
        monotonic=clock,
    )


async def test_the_documented_request(providers: tuple[Provider, Provider]) -> None:
    a, b = providers
    channel = failover(a, b, Clock())
    message = sms()
    sent = await channel.send(message)
    [request] = a.requests + b.requests
    owner = a if a.requests else b
    assert request["headers"]["Authorization"] == f"Bearer {owner.key}"
    assert request["headers"]["Idempotency-Key"] == message.id
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert request["body"] == {
        "to": "+8613800138000",
        "text": message.text,
        "reference": message.id,
    }
    assert sent.provider == f"sms:{owner.name}"
    assert sent.provider_ref == f"{owner.name}-1"


async def test_healthy_providers_share_the_traffic(providers: tuple[Provider, Provider]) -> None:
    a, b = providers
    channel = failover(a, b, Clock())
    for _ in range(6):
        await channel.send(sms())
    assert (len(a.requests), len(b.requests)) == (3, 3)


async def test_a_failing_provider_loses_its_traffic_and_wins_it_back(
    providers: tuple[Provider, Provider],
) -> None:
    a, b = providers
    clock = Clock()
    channel = failover(a, b, clock)
    a.status = 500
    sent_by = [(await channel.send(sms())).provider for _ in range(10)]
    # Every message went out once, through b; each of a's failures was retried on b at
    # once, and after 3 failures in a row a got no more traffic.
    assert sent_by == ["sms:b"] * 10
    assert len(b.requests) == 10
    assert len(a.requests) == 3
    assert set(a.references) <= set(b.references)
    assert channel.states() == {"a": "open", "b": "closed"}

    a.status = 200  # recovered, but nobody knows yet
    await channel.send(sms())
    assert len(a.requests) == 3  # still out: the cooldown is not over

    clock.now += 31  # cooldown over: the next message probes a first
    assert channel.states()["a"] == "half_open"
    probe = await channel.send(sms())
    assert probe.provider == "sms:a"
    assert channel.states() == {"a": "closed", "b": "closed"}
    before_a, before_b = len(a.requests), len(b.requests)
    for _ in range(6):
        await channel.send(sms())
    assert (len(a.requests) - before_a, len(b.requests) - before_b) == (3, 3)


async def test_a_failed_probe_keeps_the_provider_out_for_longer(
    providers: tuple[Provider, Provider],
) -> None:
    a, b = providers
    clock = Clock()
    channel = failover(a, b, clock)
    a.status = 503
    for _ in range(5):
        await channel.send(sms())
    assert len(a.requests) == 3

    clock.now += 31
    sent = await channel.send(sms())  # the probe fails; the message goes by b at once
    assert sent.provider == "sms:b"
    assert len(a.requests) == 4
    assert channel.states()["a"] == "open"
    clock.now += 31  # the second cooldown is 60 s
    await channel.send(sms())
    assert len(a.requests) == 4
    clock.now += 30
    await channel.send(sms())
    assert len(a.requests) == 5


async def test_one_probe_at_a_time(providers: tuple[Provider, Provider]) -> None:
    a, b = providers
    clock = Clock()
    channel = failover(a, b, clock)
    a.status = 500
    for _ in range(6):
        await channel.send(sms())
    assert channel.states()["a"] == "open"
    a.status, a.delay = 200, 0.3  # recovered, and slow
    clock.now += 31
    before_a, before_b = len(a.requests), len(b.requests)
    sent = await asyncio.gather(*(channel.send(sms()) for _ in range(3)))
    assert sorted(s.provider for s in sent) == ["sms:a", "sms:b", "sms:b"]
    assert (len(a.requests) - before_a, len(b.requests) - before_b) == (1, 2)


async def test_a_probe_refusing_the_message_lets_the_next_one_probe(
    providers: tuple[Provider, Provider],
) -> None:
    a, b = providers
    clock = Clock()
    channel = failover(a, b, clock)
    a.status = 500
    for _ in range(6):
        await channel.send(sms())
    clock.now += 31
    a.status = 422  # no verdict on a's health: the message itself is refused
    with pytest.raises(PermanentFailure, match="HTTP 422"):
        await channel.send(sms())
    assert channel.states()["a"] == "half_open"
    a.status = 200
    assert (await channel.send(sms())).provider == "sms:a"
    assert channel.states()["a"] == "closed"


async def test_a_provider_that_times_out(providers: tuple[Provider, Provider]) -> None:
    a, b = providers
    channel = failover(a, b, Clock(), timeout=0.5)
    a.delay = 60  # never answers in time
    started = time.monotonic()
    for _ in range(8):
        assert (await channel.send(sms())).provider == "sms:b"
    # a cost one timeout each time it was first in turn, until its circuit opened after
    # 3 of them (every message still went out, by b); then nothing. Nobody waited for
    # its answer (a generous bound: the machine may be busy).
    assert len(a.requests) == 3
    assert time.monotonic() - started < 15
    assert channel.states()["a"] == "open"


async def test_every_provider_failing_is_a_temporary_failure(
    providers: tuple[Provider, Provider],
) -> None:
    a, b = providers
    clock = Clock()
    channel = failover(a, b, clock)
    a.status, b.status = 500, 429
    b.headers = {"Retry-After": "120"}
    message = sms()
    with pytest.raises(TemporaryFailure) as raised:
        await channel.send(message)
    assert "a: HTTP 500" in raised.value.detail and "b: HTTP 429" in raised.value.detail
    assert raised.value.retry_after == 120
    assert a.references == [message.id] and b.references == [message.id]

    for _ in range(2):
        with pytest.raises(TemporaryFailure):
            await channel.send(sms())
    assert channel.states() == {"a": "open", "b": "open"}
    requests = len(a.requests) + len(b.requests)
    clock.now += 10
    with pytest.raises(TemporaryFailure, match="out of rotation") as raised:
        await channel.send(sms())
    assert raised.value.retry_after == pytest.approx(20)
    assert len(a.requests) + len(b.requests) == requests  # nobody was bothered


async def test_a_refused_message_is_permanent_without_failover(
    providers: tuple[Provider, Provider],
) -> None:
    a, b = providers
    channel = failover(a, b, Clock())
    a.status = b.status = 400
    with pytest.raises(PermanentFailure, match="HTTP 400"):
        await channel.send(sms())
    assert len(a.requests) + len(b.requests) == 1
    assert channel.states() == {"a": "closed", "b": "closed"}


async def test_a_refused_key_fails_over(providers: tuple[Provider, Provider]) -> None:
    a, b = providers
    a.key = "rotated-at-the-provider"  # our configured key is no longer accepted
    channel = FailoverSmsChannel(
        parse_sms_providers(f"a={a.url}#key-a,{b.setting}"), monotonic=Clock()
    )
    for _ in range(3):
        assert (await channel.send(sms())).provider == "sms:b"


@pytest.mark.parametrize("recipient", ["", "12345", "010-12345678", "+86 10 1234 5678", "+0123"])
async def test_not_a_mobile_number_is_permanent(
    providers: tuple[Provider, Provider], recipient: str
) -> None:
    a, b = providers
    with pytest.raises(PermanentFailure, match="not a mobile phone number"):
        await failover(a, b, Clock()).send(sms(recipient))
    assert a.requests == b.requests == []


@pytest.fixture
def configured(env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Configure]:
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/onetrip.db")

    def configure(**variables: str) -> Channel:
        for name, value in variables.items():
            env.setenv(name, value)
        reset_settings()
        return channel_for("sms")

    reset_channels()
    yield configure
    reset_channels()


async def test_providers_from_the_settings_in_both_forms(
    providers: tuple[Provider, Provider], configured: Configure
) -> None:
    a, b = providers
    compact = configured(ONETRIP_SMS_PROVIDERS=f"{a.setting},{b.setting}")
    assert isinstance(compact, FailoverSmsChannel)
    assert channel_for("sms") is compact  # one per process: the health is kept
    for _ in range(2):
        await compact.send(sms())
    as_json = json.dumps([{"name": p.name, "url": p.url, "key": p.key} for p in (b, a)])
    listed = configured(ONETRIP_SMS_PROVIDERS=as_json, ONETRIP_SMS_TIMEOUT="1")
    assert listed is not compact
    assert [p.name for p in listed.providers] == ["b", "a"]
    assert listed.timeout == 1
    for _ in range(2):
        await listed.send(sms())
    assert (len(a.requests), len(b.requests)) == (2, 2)


async def test_bad_provider_settings_hold_messages_back(configured: Configure) -> None:
    channel = configured(ONETRIP_SMS_PROVIDERS="a=ftp://sms.example#k")
    with pytest.raises(TemporaryFailure, match="http"):
        await channel.send(sms())


async def test_without_providers_sms_are_written_to_the_outbox(
    configured: Configure, tmp_path: Path
) -> None:
    channel = configured()
    message = sms("+86 139-0000-0000")
    sent = await channel.send(message)
    log_file = tmp_path / "outbox" / "sms.log"
    assert sent.provider == "file" and sent.detail == str(log_file)
    [line] = log_file.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record["to"] == "+8613900000000"
    assert record["text"] == message.text  # Chinese as written, not \u escapes
    assert message.text in line
    assert record["reference"] == message.id
