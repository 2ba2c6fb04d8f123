"""`onetrip reconcile import FILE --source S [--profile P]` and `onetrip reconcile
profile add|list`: a progress bar (rich) while a file is read, a summary table at the
end, and a non-zero exit with the line and the problem when the file is refused."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger.reconciliation import imports, profiles
from ledger.reconciliation.csvfiles import Profile
from onetrip.db import get_database, unit_of_work
from onetrip.errors import OneTripError
from onetrip.migrate import upgrade_async
from onetrip.money import Money, format_amount
from onetrip.settings import get_settings


def operator() -> str:
    """Who runs the command, as the import records it: `cli:<login>`."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = os.environ.get("USER") or "unknown"
    return f"cli:{name}"[:100]


async def _in_unit_of_work(work: Any) -> Any:
    try:
        if get_settings().is_sqlite:
            await upgrade_async()
        async with unit_of_work() as session:
            return await work(session)
    finally:
        await get_database().dispose()


def _fail(console: Console, exc: OneTripError) -> None:
    console.print(f"[bold red]refused:[/] {exc.detail}", highlight=False)
    for error in (exc.errors or [])[1:20]:
        console.print(f"  {error['field']}: {error['message']}", highlight=False)
    raise SystemExit(1)


def run_import(path: str | None, source: str, profile: str | None, currency: str | None) -> None:
    console = Console(stderr=True)
    out = Console()
    if path is None and source != "stripe_balance":
        raise click.UsageError(f"--source {source} needs a FILE")
    size = Path(path).stat().st_size if path else None
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn() if size else TextColumn("{task.completed} lines"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )

    handle = open(path, "rb") if path else None  # noqa: SIM115 (closed below)
    lines = 0

    async def work(session: Any) -> imports.ImportSummary:
        task = bar.add_task(Path(path).name if path else "Stripe", total=size)

        def progress(batch: int) -> None:
            nonlocal lines
            lines += batch
            done = handle.tell() if handle is not None else lines
            bar.update(task, completed=done, description=f"{lines:,} lines")

        return await imports.import_file(
            session,
            source=source,
            file=handle,
            file_name=Path(path).name if path else None,
            imported_by=operator(),
            profile=profile,
            currency=currency,
            progress=progress,
        )

    try:
        with bar:
            summary = asyncio.run(_in_unit_of_work(work))
    except OneTripError as exc:
        _fail(console, exc)
        return
    finally:
        if handle is not None:
            handle.close()
    table = Table(title=f"import {summary.id} ({summary.source})")
    for column in ("currency", "lines", "new", "already imported", "amount", "new amount"):
        table.add_column(column, justify="left" if column == "currency" else "right")
    for code, total in sorted(summary.totals.items()):
        table.add_row(
            code,
            f"{total['lines']:,}",
            f"{total['new_lines']:,}",
            f"{total['lines'] - total['new_lines']:,}",
            format_amount(Money(total["amount"], code)),
            format_amount(Money(total["new_amount"], code)),
        )
    out.print(table)
    out.print(f"{summary.new_records} new, {summary.duplicates} already imported", highlight=False)


def add_profile(path: str) -> None:
    console = Console(stderr=True)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        profile = Profile(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise click.ClickException(f"{path}: not a mapping profile: {exc}") from exc

    async def work(session: Any) -> Profile:
        return await profiles.create_profile(session, profile, operator())

    try:
        saved = asyncio.run(_in_unit_of_work(work))
    except OneTripError as exc:
        _fail(console, exc)
        return
    click.echo(f"profile {saved.name} saved (bank {saved.bank})")


def list_profiles() -> None:
    async def work(session: Any) -> list[Profile]:
        return await profiles.list_profiles(session)

    table = Table(title="mapping profiles")
    for column in ("name", "bank", "encoding", "sign", "currency", "columns"):
        table.add_column(column)
    for p in asyncio.run(_in_unit_of_work(work)):
        columns = "\n".join(f"{k}={v}" for k, v in (p.columns or {}).items())
        table.add_row(p.name, p.bank, p.encoding, p.sign_convention, p.currency or "-", columns)
    Console().print(table)
