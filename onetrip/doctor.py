"""`onetrip doctor`: what this installation has and lacks, with what to do about it.

Each check answers ok, missing (not configured, or degraded but working: the service
runs) or failed (configured and not working, or something the service needs). The
command exits non-zero when any check failed. Checks are bounded by short timeouts and
never raise: a check that blows up reports failed with the error.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from onetrip.settings import Settings, get_settings
from onetrip.smtp import parse_smtp_url

Status = Literal["ok", "missing", "failed"]

#: seconds any one network check may take
TIMEOUT = 5.0


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: Status
    detail: str
    advice: str = ""  # what to do, when it is not ok


# --- the checks -------------------------------------------------------------------------


def check_cjk_font(settings: Settings) -> Check:
    """The Chinese font PDFs embed: a configured one that does not load is failed; the
    non-embedded fallback is missing (PDFs render, their Chinese text shows blank)."""
    from onetrip.pdf.fonts import current_cjk_font, parse_font_spec

    font = current_cjk_font()
    if settings.cjk_font_path:
        path, index = parse_font_spec(settings.cjk_font_path)
        if (font.path, font.index) != (path, index):
            return Check(
                "CJK font",
                "failed",
                f"ONETRIP_CJK_FONT={settings.cjk_font_path} does not load; using {font.label}",
                "point ONETRIP_CJK_FONT at a TrueType font (path.ttf, or path.ttc#N)",
            )
    if font.embedded:
        return Check("CJK font", "ok", f"{font.label} (embedded in PDFs)")
    return Check(
        "CJK font",
        "missing",
        f"none embeddable: PDFs use {font.name}, not embedded (blank Chinese in most viewers)",
        "apt-get install fonts-wqy-microhei, or set ONETRIP_CJK_FONT to a TrueType font",
    )


async def _database_revision(url: str) -> str | None:
    from sqlalchemy import text

    from onetrip.db import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            exists = await connection.run_sync(
                lambda sync: sync.dialect.has_table(sync, "alembic_version")
            )
            if not exists:
                return None
            result = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return result.scalar()
    finally:
        await engine.dispose()


def migration_head() -> str:
    """The newest migration this code has."""
    from alembic.script import ScriptDirectory

    from onetrip.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head or "base"


def _sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for an in-memory database)."""
    path = url.split("://", 1)[1].lstrip("/") if "://" in url else ""
    if url.split("://", 1)[1].startswith("//"):  # sqlite:////absolute/path
        path = "/" + path
    return Path(path) if path and path != ":memory:" else None


async def check_database(settings: Settings) -> Check:
    """Connect, and compare the schema's migration with this code's newest."""
    url = settings.database_url
    shown = _without_password(url)
    head = migration_head()
    embedded = settings.is_sqlite and settings.embedded_broker
    if settings.is_sqlite:
        path = _sqlite_path(url)
        if path is not None and not path.exists():
            return Check(
                "database",
                "missing" if embedded else "failed",
                f"{shown}: no database file yet",
                "`onetrip serve` creates it; or run `onetrip db upgrade`",
            )
    try:
        revision = await asyncio.wait_for(_database_revision(url), timeout=TIMEOUT)
    except Exception as exc:
        return Check(
            "database",
            "failed",
            f"{shown}: cannot connect ({_reason(exc)})",
            "start the database, or fix DATABASE_URL",
        )
    if revision == head:
        return Check("database", "ok", f"{shown}, migrated to {head}")
    return Check(
        "database",
        # embedded, `serve` migrates first; scaled out, the API would run on an old schema
        "missing" if embedded else "failed",
        f"{shown}: schema at {revision or 'nothing'}, this code needs {head}",
        "run `onetrip db upgrade`" + (" (`onetrip serve` does it)" if embedded else ""),
    )


def check_broker(settings: Settings) -> Check:
    """With BROKER_URL: connect to RabbitMQ or Redis."""
    url = settings.broker_url
    if not url:
        return Check("broker", "ok", "none set: jobs run in the API process (embedded)")
    shown = _without_password(url)
    try:
        if url.startswith(("amqp://", "amqps://")):
            _connect_rabbitmq(url)
        elif url.startswith(("redis://", "rediss://")):
            _connect_redis(url)
        else:
            return Check("broker", "failed", f"{shown}: not amqp:// or redis://", "fix BROKER_URL")
    except Exception as exc:
        return Check(
            "broker",
            "failed",
            f"{shown}: cannot connect ({_reason(exc)})",
            "start RabbitMQ/Redis, or fix BROKER_URL",
        )
    return Check("broker", "ok", f"{shown} reachable")


def _connect_rabbitmq(url: str) -> None:
    import pika

    parameters = pika.URLParameters(url)
    parameters.socket_timeout = TIMEOUT
    parameters.blocked_connection_timeout = TIMEOUT
    parameters.connection_attempts = 1
    pika.BlockingConnection(parameters).close()


def _connect_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()


def check_stripe(settings: Settings, get: Callable[[str], int] | None = None) -> Check:
    """Sandbox without a key; with one, the webhook secret and a reachable API base."""
    if not settings.stripe_api_key:
        return Check(
            "Stripe",
            "ok",
            "no STRIPE_API_KEY: the sandbox gateway takes test cards (no real money)",
        )
    if not settings.stripe_webhook_secret:
        return Check(
            "Stripe",
            "failed",
            "STRIPE_API_KEY set but STRIPE_WEBHOOK_SECRET missing: payments never confirm",
            "set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_…)",
        )
    mode = "test" if settings.stripe_api_key.startswith(("sk_test_", "rk_test_")) else "live"
    if not settings.stripe_api_base:
        return Check("Stripe", "ok", f"{mode} key and webhook secret set (api.stripe.com)")
    try:
        status = (get or _http_status)(settings.stripe_api_base)
    except Exception as exc:
        return Check(
            "Stripe",
            "failed",
            f"STRIPE_API_BASE {settings.stripe_api_base} unreachable ({_reason(exc)})",
            "start it, fix STRIPE_API_BASE, or unset it to use api.stripe.com",
        )
    return Check(
        "Stripe",
        "ok",
        f"{mode} key and webhook secret set; {settings.stripe_api_base} answers ({status})",
    )


def _http_status(url: str) -> int:
    import httpx

    return httpx.get(url, timeout=TIMEOUT).status_code  # any answer is reachable


def check_smtp(settings: Settings) -> Check:
    """SMTP_URL parsed, then a connection (EHLO, and login when it has credentials)."""
    if not settings.smtp_url:
        return Check("SMTP", "missing", "SMTP_URL not set: no email is sent", "set SMTP_URL")
    shown = _without_password(settings.smtp_url)
    try:
        config = parse_smtp_url(settings.smtp_url)
    except ValueError as exc:
        return Check("SMTP", "failed", f"{shown}: {exc}", "fix SMTP_URL")
    try:
        client = (smtplib.SMTP_SSL if config.implicit_tls else smtplib.SMTP)(
            config.host, config.port, timeout=TIMEOUT
        )
        try:
            client.ehlo()
            if config.username:
                client.login(config.username, config.password or "")
        finally:
            client.quit()
    except Exception as exc:
        return Check(
            "SMTP",
            "failed",
            f"{shown}: {_reason(exc)}",
            "start the mail server, or fix SMTP_URL",
        )
    return Check("SMTP", "ok", f"{shown} answers")


# --- running them -----------------------------------------------------------------------


async def run_checks(settings: Settings | None = None) -> list[Check]:
    """Every check, in the table's order."""
    settings = settings or get_settings()
    checks = [_guarded("CJK font", lambda: check_cjk_font(settings))]
    try:
        checks.append(await check_database(settings))
    except Exception as exc:
        checks.append(Check("database", "failed", _reason(exc)))
    for name, check in (
        ("broker", lambda: check_broker(settings)),
        ("Stripe", lambda: check_stripe(settings)),
        ("SMTP", lambda: check_smtp(settings)),
    ):
        checks.append(await asyncio.to_thread(_guarded, name, check))
    return checks


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:
        return Check(name, "failed", _reason(exc))


def failed(checks: list[Check]) -> bool:
    return any(check.status == "failed" for check in checks)


def table(checks: list[Check]) -> list[str]:
    """The checks as aligned lines: CHECK, STATUS, DETAIL, then what to do."""
    rows = [("CHECK", "STATUS", "DETAIL")] + [(c.name, c.status, c.detail) for c in checks]
    widths = [max(len(row[i]) for row in rows) for i in (0, 1)]
    lines = []
    for row, check in zip(rows, [None, *checks], strict=True):
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip())
        if check is not None and check.status != "ok" and check.advice:
            lines.append(f"{'':<{widths[0]}}  {'':<{widths[1]}}  → {check.advice}")
    return lines


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _without_password(url: str) -> str:
    """`url` with any password replaced by `***`, to print it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
