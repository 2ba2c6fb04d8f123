"""Balance snapshots: every account's debit and credit totals at each quarter of a UTC
hour (so at every UTC midnight too), so a trial balance `as_of` a past moment reads one
row per account plus at most a quarter of an hour of entries, instead of every entry
ever written. (Daily cut-offs left up to a day of entries to sum: at 1 million payments
a day that was ~1 s; hourly ones up to an hour, 37 ms, benchmarks/RESULTS.md; quarters
cost 96 × accounts small rows a day.)

What callers can rely on: a trial balance is exact whatever the snapshots' state.
Snapshots are derived data, and a snapshot is used only while it is *valid*:

- The database keeps the proof (migration 0016): a trigger on ledger_entries writes a
  row to ledger_snapshot_invalidations whenever entries arrive effective before a
  snapshot's cut-off (`earliest` = the earliest such entry). Readers ignore every
  snapshot cut off after the earliest invalidation; `take_snapshots` deletes those,
  clears the invalidations and rebuilds.
- A snapshot being built must not miss a posting still in flight. On PostgreSQL the
  trigger also writes an invalidation for any entry effective more than LATE_MARGIN
  before it is written (by the database clock), taking ROW EXCLUSIVE on the
  invalidations table; `take_snapshots` first takes SHARE ROW EXCLUSIVE on it, so it
  waits for such postings to commit (and they for it), and it cuts off only up to
  LATE_MARGIN before the oldest transaction still open. Any posting it cannot see is
  then either effective after every cut-off it writes, or invalidates it on commit.
  On SQLite writers are serialised and the trigger's first rule is enough.

Cut-offs are the quarters of UTC hours (:00, :15, :30, :45): a snapshot at T covers
entries effective before T.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, insert, literal, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import accounts, balance_snapshots, entries, snapshot_invalidations
from onetrip.clock import utcnow
from onetrip.db import UTCDateTime, unit_of_work

#: An entry effective more than this before it is written is "back-dated" (the trigger
#: in migration 0016 has the same 10 minutes).
LATE_MARGIN = timedelta(minutes=10)
#: The time between two cut-offs.
EVERY = timedelta(minutes=15)
#: Cut-offs written per call (one transaction): the lock above makes back-dated
#: postings wait while it is held, so keep each call short.
MAX_CUT_OFFS_PER_CALL = 96 * 2
#: Before any entry: the lower bound of "every entry" in a range.
BEGINNING = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SnapshotRun:
    invalidated_from: datetime | None  # snapshots after this were stale and removed
    removed: int  # stale cut-offs removed
    written: list[datetime]  # cut-offs written, oldest first
    more: bool  # cut-offs are still due: call again (in a new transaction)


def cut_off_before(moment: datetime) -> datetime:
    """The cut-off at or before `moment` (a multiple of EVERY since the epoch, which
    divides a day: a UTC midnight is always one)."""
    moment = moment.astimezone(UTC).replace(microsecond=0)
    step = int(EVERY.total_seconds())
    seconds = int(moment.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


def entry_sums(pg: bool, *within: Any) -> tuple[Any, Any, Any]:
    """The debits and credits (positive ints) of the account in the enclosing query over
    its entries meeting `within` (conditions on their effective_at), read by range scans
    of ix_ledger_entries_account_effective: on PostgreSQL one LATERAL subquery (returned
    first, to join on true), elsewhere two correlated scalar subqueries (and None)."""
    mine = entries.c.account_id == accounts.c.id
    if pg:
        amount = entries.c.amount
        sums = (
            select(
                func.coalesce(func.sum(case((amount > 0, amount), else_=0)), 0).label("debits"),
                func.coalesce(func.sum(case((amount < 0, -amount), else_=0)), 0).label("credits"),
            )
            .where(mine, *within)
            .lateral("entry_sums")
        )
        return sums, sums.c.debits, sums.c.credits
    debits = (
        select(func.coalesce(func.sum(entries.c.amount), 0))
        .where(mine, *within, entries.c.amount > 0)
        .scalar_subquery()
    )
    credits = (
        select(func.coalesce(-func.sum(entries.c.amount), 0))
        .where(mine, *within, entries.c.amount < 0)
        .scalar_subquery()
    )
    return None, debits, credits


def joined(from_: Any, sums: Any) -> Any:
    """`from_` joined with entry_sums' LATERAL subquery, if it made one."""
    return from_ if sums is None else from_.join(sums, true())


def valid_until() -> Any:
    """The latest cut-off still valid (a scalar subquery; NULL: every one is)."""
    return select(func.min(snapshot_invalidations.c.earliest)).scalar_subquery()


async def latest_valid_cut_off(session: AsyncSession, as_of: datetime) -> datetime | None:
    """The latest valid snapshot cut off at or before `as_of`, if any."""
    limit = func.coalesce(valid_until(), literal(as_of, UTCDateTime()))
    found = await session.scalar(
        select(func.max(balance_snapshots.c.cut_off)).where(
            balance_snapshots.c.cut_off <= as_of, balance_snapshots.c.cut_off <= limit
        )
    )
    return UTCDateTime().process_result_value(found, None) if found is not None else None


async def _horizon(session: AsyncSession) -> datetime:
    """The latest cut-off that no posting still in flight can land before unseen."""
    conn = await session.connection()
    if conn.dialect.name != "postgresql":
        return utcnow() - LATE_MARGIN
    row = (
        await session.execute(
            text(
                "SELECT clock_timestamp() AS now,"
                " (SELECT min(xact_start) FROM pg_stat_activity"
                "   WHERE datname = current_database() AND pid <> pg_backend_pid()"
                "     AND xact_start IS NOT NULL) AS oldest"
            )
        )
    ).one()
    moment = row.now if row.oldest is None else min(row.now, row.oldest)
    return moment - LATE_MARGIN


async def take_snapshots(
    session: AsyncSession, *, max_cut_offs: int = MAX_CUT_OFFS_PER_CALL
) -> SnapshotRun:
    """Remove stale snapshots, then write the cut-offs that are due (up to
    `max_cut_offs` of them, oldest first); never commits — the caller's unit of work does,
    and calls again while `more` is true. Safe to run concurrently with postings and
    with itself (a second run waits for the first)."""
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        await session.execute(
            text("LOCK TABLE ledger_snapshot_invalidations IN SHARE ROW EXCLUSIVE MODE")
        )
    # Statements from here on see every posting that invalidated before the lock.
    earliest = await session.scalar(select(func.min(snapshot_invalidations.c.earliest)))
    removed = 0
    if earliest is not None:
        earliest = UTCDateTime().process_result_value(earliest, None)
        removed = (
            await session.execute(
                select(func.count(func.distinct(balance_snapshots.c.cut_off))).where(
                    balance_snapshots.c.cut_off > earliest
                )
            )
        ).scalar_one()
        await session.execute(
            delete(balance_snapshots).where(balance_snapshots.c.cut_off > earliest)
        )
        await session.execute(delete(snapshot_invalidations))
    horizon = await _horizon(session)
    previous = await session.scalar(select(func.max(balance_snapshots.c.cut_off)))
    if previous is not None:
        previous = UTCDateTime().process_result_value(previous, None)
        cut_off = previous + EVERY
    else:
        first = await session.scalar(select(func.min(entries.c.effective_at)))
        if first is None:
            return SnapshotRun(earliest, removed, [], False)
        cut_off = cut_off_before(UTCDateTime().process_result_value(first, None)) + EVERY
    written: list[datetime] = []
    taken_at = utcnow()
    while cut_off <= horizon and len(written) < max_cut_offs:
        await _write_cut_off(session, previous, cut_off, taken_at)
        written.append(cut_off)
        previous, cut_off = cut_off, cut_off + EVERY
    return SnapshotRun(earliest, removed, written, cut_off <= horizon)


async def _write_cut_off(
    session: AsyncSession, previous: datetime | None, cut_off: datetime, taken_at: datetime
) -> None:
    """One cut-off for every account: the previous one plus the entries in between."""
    lower = BEGINNING if previous is None else previous
    conn = await session.connection()
    sums, debits, credits = entry_sums(
        conn.dialect.name == "postgresql",
        entries.c.effective_at >= literal(lower, UTCDateTime()),
        entries.c.effective_at < literal(cut_off, UTCDateTime()),
    )
    before = balance_snapshots.alias("before")
    source = select(
        literal(cut_off, UTCDateTime()),
        accounts.c.id,
        func.coalesce(before.c.debits, 0) + debits,
        func.coalesce(before.c.credits, 0) + credits,
        literal(taken_at, UTCDateTime()),
    ).select_from(
        joined(
            accounts.outerjoin(
                before,
                (before.c.account_id == accounts.c.id)
                & (before.c.cut_off == literal(previous or BEGINNING, UTCDateTime())),
            ),
            sums,
        )
    )
    await session.execute(
        insert(balance_snapshots).from_select(
            ["cut_off", "account_id", "debits", "credits", "taken_at"], source
        )
    )


async def bring_up_to_date() -> list[SnapshotRun]:
    """Run `take_snapshots` in as many short units of work as it takes (the job)."""
    runs: list[SnapshotRun] = []
    while True:
        async with unit_of_work() as session:
            run = await take_snapshots(session)
        runs.append(run)
        if not run.more:
            return runs
