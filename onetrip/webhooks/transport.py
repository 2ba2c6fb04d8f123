"""One HTTP attempt, made safely: the address checked at send time is the one connected to.

The host is resolved once (in a thread), every address it resolves to must be allowed
(onetrip/urls.py), and the request goes to that IP with the original `Host` header and,
for https, the original name for SNI and certificate checks; a second DNS answer (DNS
rebinding) never gets a say. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from onetrip.errors import ValidationFailed
from onetrip.urls import resolve_webhook_url

EXCERPT_BYTES = 1024
USER_AGENT = "OneTrip-Webhooks/1"


@dataclass(frozen=True)
class Response:
    """What one attempt met: a status (None if no response came), a short excerpt of the
    body, the `Retry-After` header, and why no response came or why it was refused."""

    status: int | None
    excerpt: str | None = None
    retry_after: str | None = None
    error: str | None = None
    refused: bool = False  # the address check refused it: nothing was sent
    duration_ms: int = 0


def _excerpt(raw: bytes) -> str:
    # Receivers answer anything; keep it printable text a database column accepts.
    return raw[:EXCERPT_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _pinned_url(url: str, address: str) -> tuple[str, str]:
    """The URL with its host replaced by `address`, and the Host header to send."""
    parts = urlsplit(url)
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    netloc_ip = f"[{address}]" if ip.version == 6 else address
    if parts.port is not None:
        netloc_ip += f":{parts.port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]  # never forward userinfo
    return urlunsplit((parts.scheme, netloc_ip, parts.path or "/", parts.query, "")), host_header


_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    # Loading the CA bundle takes milliseconds: once per process, not once per attempt.
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def _client() -> httpx.AsyncClient:
    # No keep-alive: pooled connections are keyed by IP, and a connection opened (and
    # its certificate checked) for one name must not carry a request for another.
    return httpx.AsyncClient(
        verify=_tls(),
        limits=httpx.Limits(max_keepalive_connections=0),
        follow_redirects=False,
        trust_env=False,  # a proxy would resolve the name itself, after our check
    )


async def send(url: str, headers: dict[str, str], body: bytes, time_limit: float) -> Response:
    """POST `body` to `url` once, within `time_limit` seconds all told (resolution included),
    trying each allowed address in turn until one accepts the connection."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        async with asyncio.timeout(time_limit), _client() as client:
            return await _send(client, url, headers, body, took)
    except ValidationFailed as exc:
        return Response(None, error=f"refused: {exc.detail}", refused=True, duration_ms=took())
    except (TimeoutError, httpx.TimeoutException):
        return Response(None, error=f"timeout after {time_limit:g} s", duration_ms=took())


async def _send(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    body: bytes,
    took: Callable[[], int],
) -> Response:
    addresses = await resolve_webhook_url(url)
    host = urlsplit(url).hostname or ""
    error = "no address to connect to"
    for address in addresses:
        target, host_header = _pinned_url(url, address)
        request = client.build_request(
            "POST",
            target,
            content=body,
            headers={**headers, "host": host_header, "user-agent": USER_AGENT},
            # The certificate is checked against the name, not the IP we connect to.
            extensions={"sni_hostname": host} if url.startswith("https:") else {},
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            error = f"connection error: {exc}" if str(exc) else "connection error"
            continue  # the next address may answer
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            return Response(None, error=f"{type(exc).__name__}: {exc}"[:500], duration_ms=took())
        try:
            raw = b""
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) >= EXCERPT_BYTES:
                    break  # the rest is not read: an excerpt is all we keep
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError:
            pass  # the status is what counts; a broken body only shortens the excerpt
        finally:
            await response.aclose()
        return Response(
            status=response.status_code,
            excerpt=_excerpt(raw) if raw else None,
            retry_after=response.headers.get("retry-after"),
            duration_ms=took(),
        )
    return Response(None, error=error[:500], duration_ms=took())
