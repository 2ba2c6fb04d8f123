"""Where outgoing webhooks may go: `https` on public addresses only, unless
ONETRIP_WEBHOOK_ALLOW_PRIVATE=true (development and tests) allows `http` and loopback
or private addresses. Checked when a URL is registered and again before each send
(a name can resolve differently later)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from onetrip.errors import ValidationFailed
from onetrip.settings import get_settings


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        message, code="invalid_webhook_url", errors=[{"field": field, "message": message}]
    )


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


def check_webhook_url(url: str, *, field: str = "webhook_url", resolve: bool = False) -> str:
    """Return the URL if webhooks may be sent there, else raise a 422."""
    allow_private = get_settings().webhook_allow_private
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _invalid(field, "must be an absolute https URL")
    if parts.scheme == "http" and not allow_private:
        raise _invalid(field, "must use https")
    if allow_private:
        return url
    host = parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise _invalid(field, "must be a public address") from None
        if not resolve:
            return url
        try:
            addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, parts.port or 443)})
        except OSError:
            raise _invalid(field, f"cannot resolve {host}") from None
    if not all(_is_public(a) for a in addresses):
        raise _invalid(field, "must be a public address")
    return url
