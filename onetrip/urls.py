"""Where outgoing webhooks may go: `https` on public addresses only, unless
ONETRIP_WEBHOOK_ALLOW_PRIVATE=true (development and tests) allows `http` and loopback
or private addresses. Checked when a URL is registered and again before each send
(a name can resolve differently later): these rules live here and nowhere else."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from onetrip.errors import ValidationFailed
from onetrip.settings import get_settings


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        message, code="invalid_webhook_url", errors=[{"field": field, "message": message}]
    )


def is_public_address(address: str) -> bool:
    """True if a webhook may be sent to this IP address.

    False for loopback, private, link-local, multicast, reserved and unspecified
    addresses, and for anything else not globally routable (shared 100.64/10, ...).
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # ::ffff:10.0.0.1 reaches 10.0.0.1: judge the IPv4 address it carries.
        ip = ip.ipv4_mapped
    refused = (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )
    return ip.is_global and not refused


def _syntax(url: str, field: str, allow_private: bool) -> str:
    """The URL's host after the checks that need no DNS (scheme, host present)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _invalid(field, "must be an absolute https URL")
    if parts.scheme == "http" and not allow_private:
        raise _invalid(field, "must use https")
    return parts.hostname


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _refuse_local_names(host: str, field: str) -> None:
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise _invalid(field, "must be a public address")


def _check_addresses(host: str, addresses: list[str], field: str) -> None:
    for address in addresses:
        if not is_public_address(address):
            detail = "must be a public address"
            if address != host:
                detail += f" ({host} resolves to {address})"
            raise _invalid(field, detail)


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def check_webhook_url(url: str, *, field: str = "webhook_url", resolve: bool = False) -> str:
    """Return the URL if webhooks may be sent there, else raise a 422."""
    allow_private = get_settings().webhook_allow_private
    host = _syntax(url, field, allow_private)
    if allow_private:
        return url
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        _refuse_local_names(host, field)
        if not resolve:
            return url
        try:
            addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, _port(url))})
        except OSError:
            raise _invalid(field, f"cannot resolve {host}") from None
    _check_addresses(host, addresses, field)
    return url


async def resolve_webhook_url(url: str, *, field: str = "webhook_url") -> list[str]:
    """The addresses to connect to for `url`, every one of them allowed, in the resolver's
    order of preference; raises a 422 `ValidationFailed` otherwise.

    For the send itself: the caller connects to one of these addresses (not to the name
    again), so a second DNS answer cannot differ from the one checked here.
    """
    allow_private = get_settings().webhook_allow_private
    host = _syntax(url, field, allow_private)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        if not allow_private:
            _refuse_local_names(host, field)
        loop = asyncio.get_running_loop()
        try:
            # loop.getaddrinfo runs socket.getaddrinfo in a thread: the loop never blocks.
            infos = await loop.getaddrinfo(host, _port(url), type=socket.SOCK_STREAM)
        except OSError:
            raise _invalid(field, f"cannot resolve {host}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise _invalid(field, f"cannot resolve {host}")
    if not allow_private:
        _check_addresses(host, addresses, field)
    return addresses
