"""SMTP_URL, read once for every part that talks to the mail server (the email channel
in notifications, `onetrip doctor`): `smtp://[user:password@]host[:port]` (STARTTLS
when offered, `?starttls=required|never`), `smtps://…` (TLS from the start), and
`?cafile=` / `?verify=false`."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int  # 25 for smtp://, 465 for smtps:// unless given
    username: str | None
    password: str | None
    implicit_tls: bool  # smtps://
    starttls: str  # "auto" | "required" | "never"
    cafile: str | None
    verify: bool
    timeout: float

    @property
    def provider(self) -> str:
        return f"smtp:{self.host}"

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.verify:
            return None  # validate_certs=False instead
        return _verifying_context(self.cafile)


@functools.cache
def _verifying_context(cafile: str | None) -> ssl.SSLContext:
    # Built once per CA file (the system's CAs when None): loading them costs more than
    # the rest of a TLS handshake.
    return ssl.create_default_context(cafile=cafile)


def parse_smtp_url(url: str, *, timeout: float = 30.0) -> SmtpConfig:
    """The SMTP settings in `url`; ValueError saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host")
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"SMTP_URL has a bad port: {error}") from None
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"starttls", "cafile", "verify"}
    if unknown:
        raise ValueError(f"SMTP_URL: unknown option(s) {', '.join(sorted(unknown))}")
    starttls = query.get("starttls", ["auto"])[-1].lower()
    if starttls not in ("auto", "required", "never"):
        raise ValueError("SMTP_URL: starttls is auto, required or never")
    if parts.scheme == "smtps" and starttls == "required":
        raise ValueError("SMTP_URL: smtps:// is TLS already; starttls=required is for smtp://")
    verify = query.get("verify", ["true"])[-1].lower()
    if verify not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("SMTP_URL: verify is true or false")
    return SmtpConfig(
        host=parts.hostname,
        port=port or (465 if parts.scheme == "smtps" else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        implicit_tls=parts.scheme == "smtps",
        starttls=starttls,
        cafile=query.get("cafile", [None])[-1] or None,
        verify=verify in ("true", "1", "yes"),
        timeout=timeout,
    )
