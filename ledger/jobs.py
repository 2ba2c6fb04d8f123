"""Ledger actors: thin; the service decides what is wrong, the actor reports it."""

from __future__ import annotations

import logging

from ledger import service, snapshots
from onetrip.db import get_database
from onetrip.jobs import actor
from onetrip.scheduler import periodic

log = logging.getLogger(__name__)


@periodic(3600)
@actor("ledger", max_retries=0)
async def check_ledger_balances() -> None:
    """Hourly: log every account whose cached balance is not the sum of its entries."""
    async with get_database().session() as session:
        mismatches = await service.verify_balances(session)
    for mismatch in mismatches:
        log.error(
            "ledger account %s (%s, %s) caches balance %d but its entries sum to %d",
            mismatch.account_id,
            mismatch.code,
            mismatch.currency,
            mismatch.cached_balance,
            mismatch.sum_of_entries,
        )


@periodic(int(snapshots.EVERY.total_seconds()))
@actor("ledger", max_retries=0)
async def take_balance_snapshots() -> None:
    """Every cut-off interval (a quarter of an hour): rebuild stale balance snapshots
    and write the ones now due."""
    runs = await snapshots.bring_up_to_date()
    written = sum(len(run.written) for run in runs)
    removed = sum(run.removed for run in runs)
    if written or removed:
        log.info("ledger snapshots: %d cut-offs written, %d stale removed", written, removed)
