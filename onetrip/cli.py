"""The `onetrip` command: serve, worker, relay, db, demo, keys."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import threading
from datetime import timedelta
from typing import Any

import click

from onetrip.settings import get_settings, reset_settings


def _configure_logging() -> None:
    from onetrip.logs import configure_logging

    configure_logging()


def _configure_broker(url: str | None) -> Any:
    """The broker for BROKER_URL, or a clear error (not a traceback) for a bad URL."""
    from onetrip.broker import configure_broker

    try:
        return configure_broker(url)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def main() -> None:
    """OneTrip: one payment API for every government matter, with licence delivery."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to bind (default 8000).")
@click.option("--workers", default=1, type=int, help="API processes (scaled-out mode only).")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the API (and, with no BROKER_URL, the worker and relay in-process)."""
    _serve(host, port, workers)


def _serve(host: str | None, port: int | None, workers: int) -> None:
    import uvicorn

    if host:
        os.environ["ONETRIP_HOST"] = host
    if port:
        os.environ["ONETRIP_PORT"] = str(port)
    reset_settings()
    settings = get_settings()
    _configure_logging()
    _announce_cjk_font()
    if not settings.embedded_broker:
        _configure_broker(settings.broker_url)  # fail here, not in every API process
    if settings.embedded_broker:
        from onetrip.migrate import upgrade

        upgrade()  # embedded: one command brings the database up to date
        from delivery.signing import private_key

        private_key()  # embedded: the licence signing key exists from the first start
        if workers != 1:
            click.echo("embedded mode runs one API process (set BROKER_URL to scale out)")
            workers = 1
    uvicorn.run(
        "onetrip.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=True,
    )


@main.command()
@click.option("--threads", default=8, type=int, help="Worker threads in this process.")
def worker(threads: int) -> None:
    """Consume jobs from BROKER_URL (RabbitMQ or Redis). Run as many as you need."""
    import dramatiq

    from onetrip.domains import load_job_modules

    settings = get_settings()
    _configure_logging()
    if settings.embedded_broker:
        raise click.ClickException("set BROKER_URL: without it `onetrip serve` runs the worker")
    broker = _configure_broker(settings.broker_url)
    load_job_modules(broker)  # every domain's actors and queues, from the one list
    worker = dramatiq.Worker(broker, worker_threads=threads)
    worker.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"worker consuming {', '.join(sorted(broker.get_declared_queues()))}")
    stop.wait()
    worker.stop()
    broker.close()


@main.command()
def relay() -> None:
    """Publish committed outbox events to the broker and send periodic jobs."""
    from onetrip.domains import load_job_modules
    from onetrip.runtime import Relay

    settings = get_settings()
    _configure_logging()
    if settings.embedded_broker:
        raise click.ClickException("set BROKER_URL: without it `onetrip serve` runs the relay")
    # The relay sends to the actors the events' subscribers name: it needs them declared.
    load_job_modules(_configure_broker(settings.broker_url))
    relay = Relay()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, relay.stop)
        await relay.run()

    asyncio.run(run())


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations (SQLite or PostgreSQL)."""
    from onetrip.migrate import upgrade

    upgrade(revision=revision)
    click.echo(f"database at {revision}")


@main.group()
def keys() -> None:
    """API keys."""


_DURATION = re.compile(r"(\d+)([wdhms])")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `1d12h`, `90m`, `2w` → a timedelta (at least one second)."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise click.BadParameter(f"{text!r} is not a duration such as 30d, 12h or 1d12h")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds < 1:
        raise click.BadParameter("the duration must be at least one second")
    return timedelta(seconds=seconds)


def _run_keys(work: Any) -> Any:
    """Run `work(session)` in one unit of work (after migrating an embedded SQLite
    database); a domain error becomes one clear line and a non-zero exit."""
    from onetrip.db import get_database, unit_of_work
    from onetrip.errors import OneTripError
    from onetrip.migrate import upgrade_async

    async def run() -> Any:
        try:
            if get_settings().is_sqlite:
                await upgrade_async()
            async with unit_of_work() as session:
                return await work(session)
        finally:  # close the connections while their event loop still runs
            await get_database().dispose()

    try:
        return asyncio.run(run())
    except OneTripError as exc:
        raise click.ClickException(exc.detail) from exc


@keys.command("create")
@click.option(
    "--role", required=True, type=click.Choice(["department", "finance", "courier", "admin"])
)
@click.option("--department", "departments", multiple=True, help="Department code (repeatable).")
@click.option("--partner", default=None, help="Courier partner code (courier keys).")
@click.option("--name", "--label", "name", default=None, help="Who or what the key is for.")
@click.option("--expires-in", default=None, help="Stop working after this long: 30d, 12h, 1d12h.")
def keys_create(
    role: str,
    departments: tuple[str, ...],
    partner: str | None,
    name: str | None,
    expires_in: str | None,
) -> None:
    """Create a key and print it once, alone on the last line."""
    from onetrip.auth import create_key
    from onetrip.clock import utcnow
    from onetrip.domains import check_key_scope

    expires_at = utcnow() + parse_duration(expires_in) if expires_in else None

    async def work(session: Any) -> str:
        row, plain = await create_key(
            session,
            role,
            departments=list(departments),
            partner=partner,
            name=name,
            expires_at=expires_at,
        )
        await check_key_scope(session, departments, partner)  # else it rolls back
        bound = f" for {', '.join(departments)}" if departments else ""
        until = f", expires {_moment(expires_at)}" if expires_at else ""
        click.echo(f"created {role} key {row.id}{bound}{until}")
        return plain

    click.echo(_run_keys(work))


def _moment(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _scope(row: Any) -> str:
    if row.partner:
        return f"partner {row.partner}"
    if row.role == "admin" or row.all_departments:
        return "all"
    return ",".join(row.departments or []) or "-"


@keys.command("list")
def keys_list() -> None:
    """Every key, newest first (never the key itself)."""
    from onetrip.auth import list_keys

    async def work(session: Any) -> list[Any]:
        found: list[Any] = []
        cursor = None
        while True:
            rows, cursor = await list_keys(session, limit=200, cursor=cursor)
            found += rows
            if cursor is None:
                return found

    rows = _run_keys(work)
    header = ("ID", "NAME", "ROLE", "SCOPE", "CREATED", "LAST USED", "EXPIRES", "REVOKED")
    table = [header] + [
        (
            row.id,
            row.name or "-",
            row.role,
            _scope(row),
            _moment(row.created_at),
            _moment(row.last_used_at),
            _moment(row.expires_at),
            _moment(row.revoked_at),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: every API process refuses it within 5 seconds."""
    from onetrip.auth import revoke_key

    async def work(session: Any) -> str:
        row = await revoke_key(session, key_id)  # again: no change, same answer
        return f"key {row.id} ({row.name or row.role}) revoked at {_moment(row.revoked_at)}"

    click.echo(_run_keys(work))


@main.command()
@click.option("--host", default=None)
@click.option("--port", default=None, type=int)
@click.option("--no-serve", is_flag=True, help="Seed and print, but do not serve.")
def demo(host: str | None, port: int | None, no_serve: bool) -> None:
    """Seed a realistic catalogue and keys, print how to try it, and serve."""
    from onetrip.demo import seed_demo

    if host:
        os.environ["ONETRIP_HOST"] = host
    if port:
        os.environ["ONETRIP_PORT"] = str(port)
    os.environ.setdefault("ONETRIP_COURIER_SIMULATOR", "true")
    reset_settings()
    _announce_cjk_font()
    asyncio.run(seed_demo(echo=click.echo))
    sys.stdout.flush()
    if not no_serve:
        _serve(host, port, 1)


# --- licence verification (delivery helper DS) ----------------------------------------


@keys.command("rotate-signing")
def keys_rotate_signing() -> None:
    """A new Ed25519 key signs licence codes from now on; the old public keys stay in the
    JWKS, so licences already printed keep verifying."""
    from delivery.signing import key_path, rotate_signing_key

    async def work(session: Any) -> str:
        kid = await rotate_signing_key(session)
        return f"signing key {kid} signs from now on (private key in {key_path()})"

    click.echo(_run_keys(work))


def _load_jwks(source: str) -> Any:
    import json

    import httpx

    try:
        if source.startswith(("http://", "https://")):
            response = httpx.get(source, timeout=10, follow_redirects=True)
            response.raise_for_status()
            return response.json()
        with open(source, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError, httpx.HTTPError) as exc:
        raise click.ClickException(f"cannot read the keys from {source}: {exc}") from exc


@main.command("verify")
@click.argument("code_or_url")
@click.option(
    "--keys",
    "keys_source",
    default=None,
    help="JWKS file (or URL); default: /.well-known/jwks.json of the code's server.",
)
def verify_code(code_or_url: str, keys_source: str | None) -> None:
    """Check a licence's verification code offline: its Ed25519 signature against the
    JWKS, then print what it says. Exit status 1 when it is not genuine."""
    from urllib.parse import urlsplit

    from delivery.signing import InvalidCode, verify

    if keys_source is None:
        parts = urlsplit(code_or_url.strip())
        base = f"{parts.scheme}://{parts.netloc}" if parts.netloc else get_settings().public_url
        keys_source = f"{base}/.well-known/jwks.json"
    jwks = _load_jwks(keys_source)
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise click.ClickException(f'{keys_source} is not a JWKS (no "keys" list)')
    try:
        claims = verify(code_or_url, jwks)
    except InvalidCode:
        click.echo("NOT GENUINE: the signature does not verify with these keys", err=True)
        sys.exit(1)
    click.echo("genuine: signature verified")
    for name, value in claims.as_dict().items():
        click.echo(f"{name}: {value if value is not None else '-'}")


# --- the CJK font line at start, and `onetrip doctor` (issue 7) -------------------------


def _announce_cjk_font() -> None:
    """One line at start when PDFs have no embeddable Chinese font (said once a process)."""
    from onetrip.pdf.fonts import font_advice_once

    advice = font_advice_once()
    if advice:
        click.echo(f"WARNING: {advice}", err=True)


@main.command()
def doctor() -> None:
    """Check the CJK font, database, broker, Stripe and SMTP; say what to do."""
    from onetrip import doctor as checks

    found = asyncio.run(checks.run_checks(get_settings()))
    for line in checks.table(found):
        click.echo(line)
    if checks.failed(found):
        raise SystemExit(1)


# --- reconciliation imports (finance helper F, issue 10) -------------------------------


@main.group()
def reconcile() -> None:
    """Import Stripe's and the banks' records for reconciliation."""


@reconcile.command("import")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--source",
    required=True,
    type=click.Choice(["stripe_balance", "stripe_payout_recon", "bank_csv", "camt053"]),
    help="stripe_balance reads the Stripe API (no FILE).",
)
@click.option("--profile", default=None, help="Mapping profile name (bank_csv).")
@click.option("--currency", default=None, help="Every line must be in this currency.")
def reconcile_import(
    file: str | None, source: str, profile: str | None, currency: str | None
) -> None:
    """Import FILE (all lines or none; lines imported before are skipped)."""
    from ledger.reconciliation.cli import run_import

    run_import(file, source, profile, currency)


@reconcile.command("run")
@click.option("--from", "date_from", required=True, help="First day (UTC), e.g. 2026-11-01.")
@click.option("--to", "date_to", required=True, help="Last day (UTC), inclusive.")
@click.option("--department", default=None, help="Only this department's payments.")
@click.option("--dry-run", is_flag=True, help="Report what it would find; write nothing.")
def reconcile_run(date_from: str, date_to: str, department: str | None, dry_run: bool) -> None:
    """Match the ledger, Stripe and the bank over a range of dates."""
    from ledger.reconciliation.cli import run_reconciliation

    run_reconciliation(date_from, date_to, department, dry_run)


@reconcile.group("profile")
def reconcile_profile() -> None:
    """Banks' CSV mapping profiles."""


@reconcile_profile.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def reconcile_profile_add(file: str) -> None:
    """Save the mapping profile in FILE (JSON, the fields of POST .../profiles)."""
    from ledger.reconciliation.cli import add_profile

    add_profile(file)


@reconcile_profile.command("list")
def reconcile_profile_list() -> None:
    """The saved mapping profiles."""
    from ledger.reconciliation.cli import list_profiles

    list_profiles()


# --- the settlement report (finance helper F3, issue 10) -------------------------------


@main.group()
def report() -> None:
    """Finance reports."""


@report.command("settlement")
@click.option("--department", required=True, help="Department code, e.g. PSB.")
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "date_to", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option(
    "--format",
    "fmt",
    default="table",
    show_default=True,
    type=click.Choice(["table", "json", "csv", "xlsx", "pdf"]),
)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write to FILE.")
@click.option("--currency", default=None, help="When the department holds several.")
def report_settlement(
    department: str,
    date_from: Any,
    date_to: Any,
    fmt: str,
    out: str | None,
    currency: str | None,
) -> None:
    """A department's settlement over local dates FROM..TO (inclusive)."""
    from ledger.reports.cli import run_settlement

    run_settlement(department, date_from.date(), date_to.date(), fmt, out, currency)


if __name__ == "__main__":
    main()
