"""`onetrip report settlement --department X --from D --to D [--format F] [--out FILE]`:
the settlement report for finance staff. Without --out, JSON goes to standard output
and the table format prints a summary (rich); csv/xlsx/pdf need --out (or go to
standard output when it is not a terminal). Refusals exit non-zero with the reason."""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ledger.reports.formats import render
from ledger.reports.settlement import SettlementReport, build_settlement
from onetrip.db import get_database, unit_of_work
from onetrip.errors import OneTripError
from onetrip.migrate import upgrade_async
from onetrip.money import Money, format_amount
from onetrip.settings import get_settings

FORMATS = ("table", "json", "csv", "xlsx", "pdf")


async def _build(department: str, first: date, last: date, currency: str | None) -> Any:
    try:
        if get_settings().is_sqlite:
            await upgrade_async()
        async with unit_of_work() as session:
            return await build_settlement(
                session, department=department, date_from=first, date_to=last, currency=currency
            )
    finally:
        await get_database().dispose()


def summary_table(report: SettlementReport) -> Table:
    def shown(amount: int) -> str:
        return format_amount(Money(amount, report.currency))

    table = Table(
        title=(
            f"结算报表 Settlement {report.department} {report.department_name}"
            f" {report.date_from} – {report.date_to} ({report.timezone})"
        )
    )
    table.add_column("", style="bold")
    table.add_column(report.currency, justify="right")
    totals = report.totals
    for label, amount in (
        ("收款 Collected", totals.collected),
        ("退款 Refunded", totals.refunded),
        ("手续费 Fees (department)", totals.fees),
        ("争议 Disputes", totals.disputes),
        ("调整 Adjustments", totals.adjustments),
        ("净额 Net", totals.net),
        ("已出款 Paid out", report.paid_out),
        ("在途 In transit", report.in_transit),
        ("平台手续费 Fees (platform)", report.platform_fees),
        ("账簿变动 Ledger movement", report.ledger_check.movement),
    ):
        table.add_row(label, shown(amount))
    table.add_row("笔数 Payments / refunds", f"{totals.payments} / {totals.refunds}")
    table.add_row("未达项 Open items", str(len(report.open_items)))
    table.add_row("已结账 Closed", "yes" if report.closed else "no")
    return table


def run_settlement(
    department: str,
    first: date,
    last: date,
    fmt: str,
    out: str | None,
    currency: str | None,
) -> None:
    errors = Console(stderr=True)
    if fmt in ("csv", "xlsx", "pdf") and out is None and sys.stdout.isatty():
        raise click.UsageError(f"--format {fmt} writes a file: give --out FILE")
    try:
        report = asyncio.run(_build(department, first, last, currency))
    except OneTripError as exc:
        errors.print(f"[bold red]refused:[/] {exc.detail}", highlight=False)
        raise SystemExit(1) from None
    if fmt == "table":
        Console().print(summary_table(report))
        return
    body = render(report, fmt)
    if out is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    Path(out).write_bytes(body)
    errors.print(summary_table(report))
    errors.print(f"wrote {out} ({len(body):,} bytes)", highlight=False)
