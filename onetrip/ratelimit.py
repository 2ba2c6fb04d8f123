"""Rate limits: a token bucket per API key, and per client address on applicant pages.

A bucket holds up to `burst` tokens (twice the rate), refills at `rate` tokens a
second, and each request takes one; an empty bucket answers 429 `rate_limited` with
`Retry-After` (whole seconds, rounded up). Embedded, the buckets live in this process,
in a bounded LRU. Scaled out, with `ONETRIP_RATE_LIMIT_URL` (or a Redis `BROKER_URL`),
they live in Redis and one Lua script refills and takes atomically, with Redis's own
clock, so every API process shares a key's bucket. If Redis cannot be reached the
process falls back to its own buckets (and says so in the log) rather than refuse
every request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from onetrip.errors import OneTripError
from onetrip.settings import get_settings

log = logging.getLogger(__name__)

#: Buckets one process keeps: least recently used ones go first (a dropped bucket is a
#: full one again, which only forgives a client that has been quiet the longest).
MAX_LOCAL_BUCKETS = 10_000
#: Applicant pages, limited per client address (they carry no key).
PAGE_PREFIXES = ("/pay/", "/track/", "/verify/")
REDIS_PREFIX = "onetrip:ratelimit:"


class RateLimited(OneTripError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: float, detail: str) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(f"{detail}; retry after {seconds} s")
        self.retry_after = seconds
        self.headers = {"Retry-After": str(seconds)}


class Buckets(Protocol):
    async def take(self, name: str, rate: float, burst: float) -> float:
        """Take one token from bucket `name`: 0 if taken, else seconds until one is there."""
        ...


class LocalBuckets:
    """Token buckets in this process: a bounded LRU of (tokens, last refill)."""

    def __init__(
        self, max_buckets: int = MAX_LOCAL_BUCKETS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_buckets = max_buckets
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take_now(self, name: str, rate: float, burst: float) -> float:
        now = self.clock()
        tokens, last = self._buckets.pop(name, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / rate
        self._buckets[name] = (tokens, now)  # (re)inserted last: most recently used
        if len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        return wait

    async def take(self, name: str, rate: float, burst: float) -> float:
        return self.take_now(name, rate, burst)

    def clear(self) -> None:
        self._buckets.clear()


# KEYS[1] the bucket; ARGV rate, burst, expiry in ms. Redis's clock, so processes agree.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return tostring(wait)
"""


class RedisBuckets:
    """Token buckets in Redis, shared by every process that uses the same server."""

    def __init__(self, url: str, prefix: str = REDIS_PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        self.fallback = LocalBuckets()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._warned_at = -math.inf

    def _script(self) -> Any:
        # redis.asyncio connections belong to the loop that opened them
        loop = asyncio.get_running_loop()
        script = self._clients.get(loop)
        if script is None:
            import redis.asyncio

            client = redis.asyncio.from_url(
                self.url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
            script = client.register_script(_TAKE)
            self._clients[loop] = script
        return script

    async def take(self, name: str, rate: float, burst: float) -> float:
        import redis.exceptions

        # The bucket refills completely in burst / rate seconds: forget it after that.
        expiry_ms = math.ceil(burst / rate * 1000) + 1000
        try:
            wait = await self._script()(keys=[self.prefix + name], args=[rate, burst, expiry_ms])
        except (redis.exceptions.RedisError, OSError):
            now = time.monotonic()
            if now - self._warned_at > 30:
                self._warned_at = now
                log.warning("rate limits: Redis unreachable, limiting in this process only")
            return self.fallback.take_now(name, rate, burst)
        return float(wait)

    async def close(self) -> None:
        """Close this loop's connection (tests; a server's connections end with it)."""
        script = self._clients.pop(asyncio.get_running_loop(), None)
        if script is not None:
            await script.registered_client.aclose()


_buckets: tuple[str | None, Buckets] | None = None


def buckets() -> Buckets:
    """The buckets for the current settings: Redis when configured, else in-process."""
    global _buckets
    url = get_settings().rate_limit_url
    if _buckets is None or _buckets[0] != url:
        _buckets = (url, RedisBuckets(url) if url else LocalBuckets())
    return _buckets[1]


def reset() -> None:
    """Forget every bucket (tests)."""
    global _buckets
    _buckets = None


async def _check(name: str, rate: float, detail: str) -> None:
    if rate <= 0:  # 0 turns limiting off
        return
    wait = await buckets().take(name, rate, 2 * rate)
    if wait > 0:
        raise RateLimited(wait, detail)


async def check_key(key_id: str) -> None:
    """Take one request from the key's bucket (ONETRIP_RATE_LIMIT per second), or 429."""
    await _check(
        f"key:{key_id}",
        get_settings().rate_limit,
        f"this API key is limited to {get_settings().rate_limit:g} requests a second",
    )


async def check_address(address: str) -> None:
    """Take one request from a client address's page bucket (ONETRIP_PAGE_RATE_LIMIT)."""
    rate = get_settings().page_rate_limit
    await _check(f"addr:{address}", rate, f"pages are limited to {rate:g} requests a second")


class PageRateLimit(ASGIMiddleware):
    """Applicant pages carry no key: limit them per client address."""

    def __init__(self, prefixes: tuple[str, ...] = PAGE_PREFIXES) -> None:
        self.prefixes = prefixes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            client = scope.get("client")
            await check_address(client[0] if client else "unknown")
        await next_app(scope, receive, send)
