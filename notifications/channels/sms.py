"""SMS: HTTP providers with failover, or a log file in embedded mode.

The request every provider gets (one JSON shape; an adapter per provider is a URL and
a key, documented in the README):

    POST {url}
    Authorization: Bearer {key}
    Content-Type: application/json
    Idempotency-Key: ntf_…
    {"to": "+8613800138000", "text": "…", "reference": "ntf_…"}

    2xx {"id": "provider-message-id", …}  → Sent(provider="sms:NAME", provider_ref=id)

`reference` (and Idempotency-Key) is our notification id, the same on every attempt, so
a provider (or whoever reads its logs) can drop a resend after a crash.

Providers: ONETRIP_SMS_PROVIDERS, either `name=URL#KEY,name=URL#KEY` (the key is the
URL's fragment, never sent) or a JSON list `[{"name": "a", "url": "…", "key": "…"}]`.
Unset: `FileSmsChannel` appends each message to `{data folder}/outbox/sms.log`.

Failover (`FailoverSmsChannel`), per process:
- Healthy providers share the traffic in turn (round robin).
- A provider failing (timeout, connection error, HTTP 5xx/429/408, a refused key
  401/403, a wrong URL 404/405) sends that same message on to the next provider at once.
- After FAILURE_THRESHOLD failures in a row a provider's circuit opens: it gets no
  traffic for `cooldown` seconds (30 s, doubling after each failed probe up to 10 min).
  Then one message probes it first (half-open); success closes the circuit (it takes its
  share again), failure opens it again for longer.
- When every provider fails (or all are open) the message is a TemporaryFailure, with
  `retry_after` from the providers' Retry-After or the soonest probe.
- Other HTTP 4xx (400, 422: the provider refuses this message, e.g. the number) are a
  PermanentFailure at once, with no failover and no mark against the provider.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from notifications.channels import (
    Channel,
    Message,
    MisconfiguredChannel,
    PermanentFailure,
    Sent,
    TemporaryFailure,
)
from notifications.channels.outbox import outbox_folder
from onetrip.clock import utcnow
from onetrip.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "FailoverSmsChannel",
    "FileSmsChannel",
    "HttpSmsProvider",
    "ProviderHealth",
    "normalize_phone",
    "parse_sms_providers",
    "sms_channel",
]

FAILURE_THRESHOLD = 3  # failures in a row that open a provider's circuit
COOLDOWN = 30.0  # seconds a provider first stays out of rotation
MAX_COOLDOWN = 600.0

# HTTP statuses that say "this provider, not this message": fail over.
_PROVIDER_PROBLEMS = {401, 403, 404, 405, 408, 425, 429}


# ----------------------------------------------------------------------- numbers

_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
_CN_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")


def normalize_phone(value: str, default_country: str = "86") -> str | None:
    """`value` as E.164 ("+8613800138000"), or None when it cannot be an SMS number.

    Spaces, hyphens, dots and parentheses are dropped; "00" is read as "+"; a number
    without a country code is a Chinese mobile number (11 digits, 1[3-9]…) under
    `default_country` 86. +86 numbers must be mobile numbers.
    """
    digits = re.sub(r"[\s\-.()]", "", value or "")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not digits.startswith("+"):
        if default_country == "86" and _CN_MOBILE.match(digits):
            return "+86" + digits
        return None
    if not _E164.match(digits):
        return None
    if digits.startswith("+86") and not _CN_MOBILE.match(digits[3:]):
        return None
    return digits


# --------------------------------------------------------------------- providers


@dataclass(frozen=True)
class HttpSmsProvider:
    """One provider: where to POST and the bearer key (never logged)."""

    name: str
    url: str
    key: str = field(repr=False)

    @property
    def provider(self) -> str:
        return f"sms:{self.name}"


def parse_sms_providers(value: str) -> list[HttpSmsProvider]:
    """ONETRIP_SMS_PROVIDERS: `name=URL#KEY,…` or a JSON list of {name, url, key}.

    ValueError says what is wrong (no provider, a duplicate name, not http(s), no key).
    """
    value = value.strip()
    entries: list[tuple[str, str, str]] = []
    if value.startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"ONETRIP_SMS_PROVIDERS is not valid JSON: {error}") from None
        for item in items if isinstance(items, list) else [None]:
            if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) for k in ("name", "url", "key")
            ):
                raise ValueError('ONETRIP_SMS_PROVIDERS items are {"name", "url", "key"} strings')
            entries.append((item["name"], item["url"], item["key"]))
    else:
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, rest = part.partition("=")
            url, _, key = rest.partition("#")
            if not sep:
                raise ValueError(f"ONETRIP_SMS_PROVIDERS: {part!r} is not name=URL#KEY")
            entries.append((name.strip(), url.strip(), key.strip()))
    if not entries:
        raise ValueError("ONETRIP_SMS_PROVIDERS lists no provider")
    providers: list[HttpSmsProvider] = []
    for name, url, key in entries:
        parts = urlsplit(url)
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise ValueError(f"ONETRIP_SMS_PROVIDERS: bad provider name {name!r}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ONETRIP_SMS_PROVIDERS: {name}'s URL must be http(s)://host/…")
        if not key:
            raise ValueError(f"ONETRIP_SMS_PROVIDERS: {name} has no key (URL#KEY)")
        if any(p.name == name for p in providers):
            raise ValueError(f"ONETRIP_SMS_PROVIDERS: {name} is listed twice")
        clean = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
        providers.append(HttpSmsProvider(name=name, url=clean, key=key))
    return providers


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment: datetime = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - utcnow()).total_seconds())


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Built once: loading the system's CAs costs more than a request to a near provider.
    return ssl.create_default_context()


class _ProviderDown(Exception):
    """This provider failed this time (fail over); not raised to callers."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


async def post_sms(
    client: httpx.AsyncClient, provider: HttpSmsProvider, message: Message, to: str
) -> Sent:
    """One request to one provider: Sent, PermanentFailure, or _ProviderDown."""
    try:
        response = await client.post(
            provider.url,
            json={"to": to, "text": message.text, "reference": message.id},
            headers={
                "Authorization": f"Bearer {provider.key}",
                "Idempotency-Key": message.id,
                "Accept": "application/json",
            },
        )
    except httpx.TimeoutException:
        raise _ProviderDown("timed out") from None
    except httpx.HTTPError as error:
        raise _ProviderDown(f"{type(error).__name__}: {error}") from None
    status = response.status_code
    excerpt = response.text[:200].strip()
    if 200 <= status < 300:
        try:
            body = response.json()
        except ValueError:
            body = None
        reference = body.get("id") if isinstance(body, dict) else None
        return Sent(
            provider=provider.provider,
            provider_ref=str(reference) if reference is not None else None,
            detail=f"HTTP {status}",
        )
    if status >= 500 or status in _PROVIDER_PROBLEMS or status < 200 or 300 <= status < 400:
        if status in (401, 403):
            log.error("SMS provider %s refuses our key (HTTP %s)", provider.name, status)
        raise _ProviderDown(f"HTTP {status} {excerpt}".strip(), _retry_after(response))
    raise PermanentFailure(provider.provider, f"HTTP {status} {excerpt}".strip())


# ----------------------------------------------------------------------- health


@dataclass
class ProviderHealth:
    """A provider's circuit: closed (in rotation), open (out until `open_until`),
    half-open (one probe in flight)."""

    failures: int = 0  # in a row
    open_until: float | None = None
    cooldown: float = COOLDOWN
    probing: bool = False
    sent: int = 0
    failed: int = 0

    def state(self, now: float) -> str:
        if self.open_until is None:
            return "closed"
        return "half_open" if now >= self.open_until else "open"


class FailoverSmsChannel:
    """SMS through `providers` with failover (see the module docstring). Thread-safe:
    the health is shared by every event loop and thread of the process."""

    name = "sms"

    def __init__(
        self,
        providers: Sequence[HttpSmsProvider],
        *,
        timeout: float = 10.0,
        failure_threshold: int = FAILURE_THRESHOLD,
        cooldown: float = COOLDOWN,
        max_cooldown: float = MAX_COOLDOWN,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not providers:
            raise ValueError("no SMS provider")
        self.providers = list(providers)
        self.timeout = timeout
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.monotonic = monotonic
        self.health = {p.name: ProviderHealth(cooldown=cooldown) for p in self.providers}
        self._turn = 0
        self._lock = threading.Lock()

    def states(self) -> dict[str, str]:
        """Each provider's circuit state ("closed", "open", "half_open"): logs, tests."""
        now = self.monotonic()
        with self._lock:
            return {name: health.state(now) for name, health in self.health.items()}

    def _plan(self) -> tuple[list[HttpSmsProvider], float | None]:
        """The providers to try for one message, in order, and (when there are none) the
        seconds until the first one may be probed. A half-open provider is probed first
        (one message at a time), then the closed ones from the next in turn."""
        now = self.monotonic()
        with self._lock:
            probe: list[HttpSmsProvider] = []
            closed: list[HttpSmsProvider] = []
            for provider in self.providers:
                health = self.health[provider.name]
                state = health.state(now)
                if state == "closed":
                    closed.append(provider)
                elif state == "half_open" and not health.probing and not probe:
                    health.probing = True
                    probe.append(provider)
            if closed:
                start = self._turn % len(closed)
                self._turn += 1
                closed = closed[start:] + closed[:start]
            plan = probe + closed
            if plan:
                return plan, None
            reopen = [h.open_until for h in self.health.values() if h.open_until is not None]
            return [], max(0.0, min(reopen) - now) if reopen else None

    def _succeeded(self, provider: HttpSmsProvider) -> None:
        with self._lock:
            health = self.health[provider.name]
            if health.open_until is not None:
                log.info("SMS provider %s recovered: back in rotation", provider.name)
            health.failures = 0
            health.open_until = None
            health.cooldown = self.cooldown
            health.probing = False
            health.sent += 1

    def _failed(self, provider: HttpSmsProvider, detail: str) -> None:
        now = self.monotonic()
        with self._lock:
            health = self.health[provider.name]
            health.failed += 1
            health.failures += 1
            if health.probing:  # the probe failed: out again, for longer
                health.probing = False
                health.cooldown = min(health.cooldown * 2, self.max_cooldown)
                health.open_until = now + health.cooldown
                log.warning(
                    "SMS provider %s still failing (%s): out for %.0f s",
                    provider.name,
                    detail,
                    health.cooldown,
                )
            elif health.open_until is None and health.failures >= self.failure_threshold:
                health.open_until = now + health.cooldown
                log.warning(
                    "SMS provider %s failed %d times in a row (%s): out for %.0f s",
                    provider.name,
                    health.failures,
                    detail,
                    health.cooldown,
                )

    def _released(self, providers: Sequence[HttpSmsProvider]) -> None:
        with self._lock:
            for provider in providers:
                self.health[provider.name].probing = False

    async def send(self, message: Message) -> Sent:
        to = normalize_phone(message.recipient)
        if to is None:
            raise PermanentFailure("sms", f"not a mobile phone number: {message.recipient!r}")
        if not message.text.strip():
            raise PermanentFailure("sms", "empty text")
        plan, wait = self._plan()
        if not plan:
            raise TemporaryFailure("sms", "every SMS provider is out of rotation", wait)
        failures: list[str] = []
        hints: list[float] = []
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, verify=_tls_context()
            ) as client:
                for provider in plan:
                    try:
                        sent = await post_sms(client, provider, message, to)
                    except _ProviderDown as down:
                        self._failed(provider, down.detail)
                        failures.append(f"{provider.name}: {down.detail}")
                        if down.retry_after is not None:
                            hints.append(down.retry_after)
                        continue
                    self._succeeded(provider)
                    if failures:
                        log.info("SMS %s sent by %s after %s", message.id, provider.name, failures)
                    return sent
        finally:
            # A probe that got no verdict (the message refused for good, or the send
            # cancelled) lets the next message probe instead.
            self._released(plan)
        raise TemporaryFailure("sms", "; ".join(failures), min(hints) if hints else None)


# -------------------------------------------------------------------------- file


class FileSmsChannel:
    """Embedded mode: appends one JSON line per message to `path` and logs it."""

    name = "sms"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _append(self, line: str) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")

    async def send(self, message: Message) -> Sent:
        to = normalize_phone(message.recipient)
        if to is None:
            raise PermanentFailure("file", f"not a mobile phone number: {message.recipient!r}")
        record = {
            "at": utcnow().isoformat(),
            "to": to,
            "text": message.text,
            "reference": message.id,
        }
        await asyncio.to_thread(self._append, json.dumps(record, ensure_ascii=False))
        log.info("SMS %s to %s written to %s: %s", message.id, to, self.path, message.text)
        return Sent(provider="file", provider_ref=message.id, detail=str(self.path))


def sms_config_key(settings: Settings) -> object:
    """What the SMS channel is built from (channel_for rebuilds when it changes)."""
    return (settings.sms_providers, settings.sms_timeout, outbox_folder(settings))


def sms_channel(settings: Settings) -> Channel:
    """The providers of ONETRIP_SMS_PROVIDERS with failover, else the log file."""
    if not settings.sms_providers:
        return FileSmsChannel(outbox_folder(settings) / "sms.log")
    try:
        providers = parse_sms_providers(settings.sms_providers)
    except ValueError as error:
        return MisconfiguredChannel("sms", str(error))
    return FailoverSmsChannel(providers, timeout=settings.sms_timeout)
