"""`onetrip reconcile import FILE --source S [--profile P]`, `onetrip reconcile
profile add|list` and `onetrip reconcile run --from D --to D [--department X]
[--dry-run]`: a progress bar (rich) while the work runs, a summary table at the end,
and a non-zero exit with the problem when it is refused."""

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


# --- onetrip reconcile run ---------------------------------------------------------------


def run_reconciliation(date_from: str, date_to: str, department: str | None, dry_run: bool) -> None:
    """Run a reconciliation over [date_from, date_to] and print what it found; exit 1
    when it is refused (bad dates, an unknown department, a closed period…)."""
    from datetime import date

    from ledger.periods import check_day
    from ledger.queries import require_department
    from ledger.reconciliation import runs

    console = Console(stderr=True)
    out = Console()
    try:
        first, last = date.fromisoformat(date_from), date.fromisoformat(date_to)
    except ValueError as exc:
        raise click.UsageError(f"--from and --to are dates like 2026-11-01: {exc}") from exc
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )

    async def work(session: Any) -> runs.RunView:
        # The checks the HTTP API makes, so both refuse the same input the same way.
        check_day(first, "date_from")
        check_day(last, "date_to")
        if department is not None:
            await require_department(session, department)
        task = bar.add_task("reconciling", total=len(runs.STEPS))

        def progress(step: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{step} done")

        return await runs.run(
            session,
            date_from=first,
            date_to=last,
            department=department,
            dry_run=dry_run,
            started_by=operator(),
            progress=progress,
        )

    try:
        with bar:
            view = asyncio.run(_in_unit_of_work(work))
    except OneTripError as exc:
        _fail(console, exc)
        return
    title = f"run {view.id} {view.date_from}..{view.date_to}"
    title += f" {view.department}" if view.department else " (all departments)"
    table = Table(title=title)
    table.add_column("")
    table.add_column("count", justify="right")
    for label, value in (
        ("matched", view.matched),
        ("  of which new", view.new_matches),
        ("unmatched ledger", view.unmatched_ledger),
        ("unmatched external", view.unmatched_external),
        ("discrepancies", view.discrepancies),
        ("new exceptions", view.new_exceptions),
    ):
        table.add_row(label, f"{value:,}")
    for reason, n in sorted(view.by_reason.items()):
        table.add_row(f"  open: {reason}", f"{n:,}")
    out.print(table)
    if view.payouts:
        payouts = Table(title="payouts (control totals)")
        for column in ("payout", "gross", "fees", "refunds", "disputes", "net", "balanced"):
            payouts.add_column(column, justify="left" if column == "payout" else "right")
        for p in view.payouts:
            code = p["currency"]
            payouts.add_row(
                p["payout_id"],
                *(format_amount(Money(p[k], code)) for k in ("gross", "fees", "refunds",
                                                              "disputes", "net")),
                "yes" if p["balanced"] else "[bold red]NO[/]",
            )  # fmt: skip
        out.print(payouts)
    if view.dry_run:
        out.print("dry run, nothing written (but the run's record)", highlight=False)
    out.print(
        f"{view.matched:,} matched, {sum(view.by_reason.values()):,} open exception(s)",
        highlight=False,
    )
