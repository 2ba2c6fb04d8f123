"""Reconciliation runs: match the ledger against Stripe and Stripe against the bank over a
range of dates, record the matches and the exceptions, and say what was found.

A run, in the caller's unit of work (never commits):

1. charges ↔ payments, by our payment id in the charge's metadata — set-based: one
   statement pairs every charge whose payment id is unique among the charges with the
   payment's posting (`payment:{id}:succeeded`) when the amounts are equal and the
   dates within the rule's window, inserts the matches and (PostgreSQL) returns the
   ids of what it left, refunds included, so each side is read once. What that leaves
   (few) is loaded by id and judged by the pure rules (matching.py): amounts that
   differ, dates outside the window, duplicate charges, and what either side lacks;
2. refunds ↔ refund postings, by the refunded payment's id and the amount;
3. without a department: each Stripe payout's control totals (gross − fees − refunds −
   disputes = net = the payout), then bank lines ↔ payouts — by the payout id in the
   line's reference or end-to-end id, then by amount within a tolerance and a date
   window, then several payouts adding up to one line. A matched payout is booked as
   arrived (booking.book_payout_arrival: platform:bank_in_transit → platform:bank);
4. open exceptions whose item this run matched are resolved (`matched`): a probe per
   open exception, skipped when none is open.

Items are read over the range widened by the largest window, so a pair straddling the
range's edge is still found; only items dated inside the range are reported missing.
Re-running over the same range is idempotent: matched items are never matched again
(a left item is matched once: unique), and an exception is (item, reason) unique.

A dry run does all of it inside a savepoint that is rolled back, so its counts are
exactly what a real run would produce; only the run record (dry_run = true) is kept.
Who ran it, when, over which dates and with which rules is on every run record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, and_, bindparam, exists, func, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ledger.accounts import BANK, BANK_IN_TRANSIT, STRIPE_CLEARING
from ledger.journal import post_transaction
from ledger.models import (
    ReconciliationRun,
    accounts,
    entries,
    exceptions,
    external_records,
    matches,
    runs,
    transactions,
)
from ledger.periods import check_day
from ledger.queries import require_department
from ledger.reconciliation import matching
from ledger.reconciliation.booking import (
    BANK_SOURCES,
    BULK_WORK_MEM,
    STRIPE_SOURCES,
    book_payout_arrival,
)
from ledger.reconciliation.matching import Finding, Item, Outcome, Pairing, Rule
from ledger.types import Line
from onetrip.clock import utcnow
from onetrip.db import UTCDateTime, insert_ignoring_conflicts
from onetrip.errors import NotFound, ValidationFailed
from onetrip.ids import new_id
from onetrip.pagination import page

#: a run covers at most this many days (a year and a day: a leap year's statement)
MAX_RANGE_DAYS = 366
#: ids are looked up this many at a time (well under SQLite's bound-parameter limit)
CHUNK = 500
#: … and this many on PostgreSQL (asyncpg's limit is 32,767 parameters a statement)
PG_CHUNK = 10_000
RUN_PREFIX = "recrun"
EXCEPTION_PREFIX = "recexc"

Progress = Callable[[str, int, int], None]

STEPS = ("charges", "refunds", "payouts", "bank", "exceptions", "counts")


# --- the run's view ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunView:
    id: str
    department: str | None
    date_from: date
    date_to: date
    dry_run: bool
    status: str
    rules: list[dict[str, Any]]
    matched: int
    unmatched_ledger: int
    unmatched_external: int
    discrepancies: int
    new_matches: int
    new_exceptions: int
    by_reason: dict[str, int]
    payouts: list[dict[str, Any]]
    started_by: str
    started_at: datetime
    finished_at: datetime | None


def view_of(row: Any) -> RunView:
    summary = dict(row.summary or {})
    return RunView(
        id=row.id,
        department=row.department,
        date_from=row.date_from,
        date_to=row.date_to,
        dry_run=bool(row.dry_run),
        status=row.status,
        rules=list(row.rules or []),
        matched=row.matched,
        unmatched_ledger=row.unmatched_ledger,
        unmatched_external=row.unmatched_external,
        discrepancies=row.discrepancies,
        new_matches=row.new_matches,
        new_exceptions=row.new_exceptions,
        by_reason=dict(summary.get("by_reason", {})),
        payouts=list(summary.get("payouts", [])),
        started_by=row.started_by,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class RunNotFound(NotFound):
    code = "run_not_found"
    title = "No such reconciliation run"


def _invalid(message: str, field_name: str, *, code: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[{"field": field_name, "message": message}])


def check_range(date_from: date, date_to: date) -> None:
    check_day(date_from, "date_from")
    check_day(date_to, "date_to")
    if date_from > date_to:
        raise _invalid(
            "date_from must not be after date_to", "date_from", code="invalid_date_range"
        )
    if (date_to - date_from).days >= MAX_RANGE_DAYS:
        raise _invalid(
            f"a run covers at most {MAX_RANGE_DAYS} days", "date_to", code="invalid_date_range"
        )


# --- running ----------------------------------------------------------------------------


@dataclass
class _Context:
    session: AsyncSession
    conn: AsyncConnection
    run_id: str
    department: str | None
    date_from: date
    date_to: date
    rules: dict[str, Rule]
    started_by: str
    now: datetime
    new_matches: int = 0
    new_exceptions: int = 0
    payouts: list[dict[str, Any]] = field(default_factory=list)
    # PostgreSQL: the unmatched refund postings (in the range) and Stripe refunds (in
    # the widened range) the charges' statement saw: (ledger ids, record ids)
    refund_ids: tuple[list[str], list[str]] | None = None

    @property
    def margin(self) -> int:
        return max(rule.window_days for rule in self.rules.values())

    @property
    def low(self) -> date:
        return self.date_from - timedelta(days=self.margin)

    @property
    def high(self) -> date:
        return self.date_to + timedelta(days=self.margin)

    def in_range(self, day: date) -> bool:
        return self.date_from <= day <= self.date_to

    @property
    def pg(self) -> bool:
        return self.conn.dialect.name == "postgresql"

    @property
    def id_chunk(self) -> int:
        """Ids per lookup: PostgreSQL takes many more bound parameters than SQLite."""
        return PG_CHUNK if self.pg else CHUNK


async def run(
    session: AsyncSession,
    *,
    date_from: date,
    date_to: date,
    started_by: str,
    department: str | None = None,
    dry_run: bool = False,
    rules: Sequence[Rule] = matching.DEFAULT_RULES,
    progress: Progress | None = None,
) -> RunView:
    """Reconcile [date_from, date_to] (UTC days; of one department's payments and
    refunds, or — without one — everything, payouts and bank lines included) and
    record the run. Never commits. See the module docstring for what it does."""
    check_range(date_from, date_to)
    if department is not None:
        await require_department(session, department)
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        # One run at a time: two would each see the other's items as unmatched.
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('reconciliation_run'))"))
    ctx = _Context(
        session=session,
        conn=conn,
        run_id=new_id(RUN_PREFIX),
        department=department,
        date_from=date_from,
        date_to=date_to,
        rules={rule.name: rule for rule in rules},
        started_by=started_by,
        now=utcnow(),
    )
    if dry_run:
        savepoint = await session.begin_nested()
        try:
            # The savepoint's connection: statements sent on the one fetched before it
            # began would not be inside it (the session emits SAVEPOINT lazily).
            ctx.conn = await session.connection()
            counts = await _reconcile(ctx, progress)
        finally:
            await savepoint.rollback()
    else:
        counts = await _reconcile(ctx, progress)
    row = ReconciliationRun(
        id=ctx.run_id,
        department=department,
        date_from=date_from,
        date_to=date_to,
        dry_run=dry_run,
        rules=[rule.as_dict() for rule in rules],
        status="completed",
        matched=counts["matched"],
        unmatched_ledger=counts["unmatched_ledger"],
        unmatched_external=counts["unmatched_external"],
        discrepancies=counts["discrepancies"],
        new_matches=ctx.new_matches,
        new_exceptions=ctx.new_exceptions,
        summary={"by_reason": counts["by_reason"], "payouts": ctx.payouts},
        started_by=started_by,
        started_at=ctx.now,
        finished_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return view_of(row)


async def _reconcile(ctx: _Context, progress: Progress | None) -> dict[str, Any]:
    def step(name: str) -> None:
        if progress is not None:
            progress(name, STEPS.index(name) + 1, len(STEPS))

    await _charges(ctx)
    step("charges")
    await _refunds(ctx)
    step("refunds")
    if ctx.department is None:
        payouts = await _payouts(ctx)
        step("payouts")
        await _bank(ctx, payouts)
        step("bank")
    await _resolve_matched(ctx)
    step("exceptions")
    counts = await _counts(ctx)
    step("counts")
    return counts


# --- SQL that differs between the dialects -----------------------------------------------


def _json_text(ctx: _Context, column_sql: str, key: str) -> str:
    if ctx.pg:
        return f"({column_sql}->>'{key}')"
    return f"json_extract({column_sql}, '$.{key}')"


def _day_of(ctx: _Context, column_sql: str) -> str:
    """The UTC calendar day of a stored timestamp."""
    if ctx.pg:
        return f"CAST(({column_sql} AT TIME ZONE 'UTC') AS date)"
    return f"date({column_sql})"


def _days_between(ctx: _Context, a: str, b: str) -> str:
    if ctx.pg:
        return f"abs({a} - {b})"
    return f"abs(CAST(julianday({a}) - julianday({b}) AS INTEGER))"


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


# --- 1. charges ↔ payments ----------------------------------------------------------------

_CHARGES = tuple(sorted(matching.CHARGE_CATEGORIES))
_REFUNDS = ("payment_refund", "refund")


def _sql_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


async def _charges(ctx: _Context) -> None:
    rule = ctx.rules[matching.PAYMENT_ID.name]
    if ctx.pg:
        left_ids, right_ids = await _charges_set_based_pg(ctx, rule)
        # Only what the set-based step left is loaded (none, usually): by id, with the
        # same filters as below, so it is exactly what those would read.
        lefts = await _ledger_items(ctx, "payment:%", rule, ids=left_ids)
        rights = await _stripe_items(ctx, _CHARGES, ids=right_ids)
    else:
        await _charges_set_based(ctx, rule)
        lefts = await _ledger_items(ctx, "payment:%", rule)
        rights = await _stripe_items(ctx, _CHARGES)
    # Counterparts outside the widened range (or matched before) of the rights' keys.
    have = {left.key for left in lefts}
    wanted = sorted({r.key for r in rights if r.key is not None and r.key not in have})
    extra, taken = await _payments_by_id(ctx, wanted)
    outcome = matching.pair_by_key([*lefts, *extra], rights, rule, taken=taken)
    await _store(ctx, outcome)
    await _missing(ctx, outcome.lefts, matching.MISSING_IN_STRIPE, "no Stripe charge shows it")
    await _missing(
        ctx, outcome.rights, matching.MISSING_IN_LEDGER, "the ledger has no payment for it"
    )


#: after a statement matching this many, the matches' statistics are refreshed (PostgreSQL)
ANALYZE_AFTER = 10_000
#: the planner settings of the set-based pairing statement (PostgreSQL), reset after it
_BULK_SETTINGS = (
    ("enable_nestloop", "off"),
    ("enable_mergejoin", "off"),
    ("work_mem", f"'{BULK_WORK_MEM}'"),
)


def _match_columns(rule: Rule) -> tuple[str, str]:
    """The reconciliation_matches columns a set-based pairing inserts, and the SELECT
    list that fills them from pairs `p` (txn_id, rec_id, department, currency, amount,
    on_date, days) — the same score and reason as matching.pair_by_key would give."""
    columns = (
        "(run_id, exception_id, rule, score, reason, left_kind, left_id, right_id, department,"
        " currency, expected_amount, actual_amount, on_date, matched_by, matched_at)"
    )
    values = f"""
SELECT :run_id, NULL, '{rule.name}',
       CASE WHEN {rule.score} - 5 * p.days < 1 THEN 1 ELSE {rule.score} - 5 * p.days END,
       '{rule.name}: amounts equal, ' || CAST(p.days AS VARCHAR(12)) || ' day(s) apart',
       'ledger', p.txn_id, p.rec_id, p.department, p.currency, p.amount, p.amount,
       p.on_date, :matched_by, :matched_at"""
    return columns, values


def _match_params(ctx: _Context) -> dict[str, Any]:
    return {"run_id": ctx.run_id, "matched_by": ctx.started_by, "matched_at": ctx.now}


async def _analyze_matches(ctx: _Context, inserted: int) -> None:
    ctx.new_matches += inserted
    if ctx.pg and inserted >= ANALYZE_AFTER:
        # The statements after this one (and the next run) anti-join against the
        # matches: plan them with the table's real size.
        await ctx.conn.execute(text("ANALYZE reconciliation_matches"))


async def _charges_set_based_pg(ctx: _Context, rule: Rule) -> tuple[list[str], list[str]]:
    """PostgreSQL: every charge with a payment id no other charge has, equal in amount
    and within the window to the payment's posting, matched — in ONE statement that
    reads each side once and also returns the ids of what it left: the unmatched
    payment postings dated in the range and the unmatched charges (what `_ledger_items`
    and `_stripe_items` would read after it; few, usually none).

    Its reads see the database as it was before the statement (one snapshot), so the
    pairs it inserts do not feed back into its own anti-joins."""
    department = "t.metadata->>'department'"
    charges = _sql_list(_CHARGES)
    charges_and_refunds = _sql_list((*_CHARGES, *_REFUNDS))
    sources = _sql_list(STRIPE_SOURCES)
    ledger_department = f"AND {department} = :department" if ctx.department else ""
    stripe_department = (
        """AND EXISTS (SELECT 1 FROM ledger_transactions pt
                    WHERE pt.idempotency_key IN ('payment:' || r.payment_id || '\\:succeeded',
                                                 'payment:' || r.payment_id || '\\:received')
                      AND pt.metadata->>'department' = :department)"""
        if ctx.department
        else ""
    )
    columns, values = _match_columns(rule)
    statement = text(
        f"""
WITH l AS MATERIALIZED (
    SELECT t.id, t.idempotency_key AS key, e.amount, e.currency,
           CAST((t.effective_at AT TIME ZONE 'UTC') AS date) AS on_date,
           substr({department}, 1, 32) AS department,
           (e.effective_at >= :in_from AND e.effective_at < :in_to) AS in_range
      FROM ledger_entries e
      JOIN ledger_transactions t ON t.id = e.transaction_id
      JOIN ledger_accounts a ON a.id = e.account_id
     WHERE a.code = '{STRIPE_CLEARING}'
       AND e.effective_at >= :wide_from AND e.effective_at < :wide_to
       AND ((t.idempotency_key LIKE 'payment:%'
             AND t.idempotency_key NOT LIKE 'payment:%\\:accepted')
            OR (t.idempotency_key LIKE 'refund:%' AND t.idempotency_key NOT LIKE 'refund:%\\:%'
                AND e.effective_at >= :in_from AND e.effective_at < :in_to))
       AND NOT EXISTS (SELECT 1 FROM reconciliation_matches m WHERE m.left_id = t.id)
       {ledger_department}
), r AS MATERIALIZED (
    SELECT r.id, r.payment_id, r.amount, r.currency, r.booked_on,
           r.category IN {charges} AS is_charge
      FROM reconciliation_external_records r
     WHERE r.source IN {sources} AND r.category IN {charges_and_refunds}
       AND r.booked_on BETWEEN :low AND :high
       AND NOT EXISTS (SELECT 1 FROM reconciliation_matches m WHERE m.right_id = r.id)
       {stripe_department}
), p AS MATERIALIZED (
    SELECT l.id AS txn_id, r.id AS rec_id, l.department, r.currency, r.amount, l.on_date,
           abs(l.on_date - r.booked_on) AS days
      FROM r
      JOIN l ON l.key = 'payment:' || r.payment_id || '\\:succeeded'
     WHERE r.is_charge AND r.payment_id IS NOT NULL
       AND l.amount > 0 AND l.amount = r.amount AND l.currency = r.currency
       AND abs(l.on_date - r.booked_on) <= :window
       AND NOT EXISTS (
           SELECT 1 FROM reconciliation_external_records d
            WHERE d.payment_id = r.payment_id AND d.id <> r.id
              AND d.source IN {sources} AND d.category IN {charges})
), inserted AS (
    INSERT INTO reconciliation_matches {columns}
    {values}
      FROM p
    RETURNING 1
)
SELECT 'inserted' AS side, CAST(count(*) AS varchar) AS id FROM inserted
UNION ALL
SELECT CASE WHEN l.key LIKE 'refund:%' THEN 'ledger_refund' ELSE 'ledger' END, l.id FROM l
 WHERE l.in_range AND NOT EXISTS (SELECT 1 FROM p WHERE p.txn_id = l.id)
UNION ALL
SELECT CASE WHEN r.is_charge THEN 'stripe' ELSE 'stripe_refund' END, r.id FROM r
 WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.rec_id = r.id)
"""
    ).bindparams(
        bindparam("low", type_=Date),
        bindparam("high", type_=Date),
        bindparam("matched_at", type_=UTCDateTime()),
    )
    params: dict[str, Any] = {
        "low": ctx.low,
        "high": ctx.high,
        "window": rule.window_days,
        "in_from": _start_of(ctx.low),
        "in_to": _start_of(ctx.high + timedelta(days=1)),
        # a posting paired with a charge is within the window of the charge's day
        "wide_from": _start_of(ctx.low - timedelta(days=rule.window_days)),
        "wide_to": _start_of(ctx.high + timedelta(days=rule.window_days + 1)),
        **_match_params(ctx),
    }
    if ctx.department:
        params["department"] = ctx.department
    # A bulk join: hash joins over the whole month, not an index probe per row (nor
    # sorts for a merge join), whatever the statistics of a table this very run is
    # filling say — or the planner's guess of a CTE's size; and memory enough for the
    # hash tables of a month of payments not to spill to disk in batches.
    for setting in _BULK_SETTINGS:
        await ctx.conn.execute(text(f"SET LOCAL {setting[0]} = {setting[1]}"))
    rows = (await ctx.conn.execute(statement, params)).all()
    for setting in _BULK_SETTINGS:
        await ctx.conn.execute(text(f"SET LOCAL {setting[0]} = DEFAULT"))
    inserted = next(int(row.id) for row in rows if row.side == "inserted")
    await _analyze_matches(ctx, inserted)
    # The refunds' step (next) reads its unmatched items by these ids too.
    ctx.refund_ids = (
        [row.id for row in rows if row.side == "ledger_refund"],
        [row.id for row in rows if row.side == "stripe_refund"],
    )
    return (
        [row.id for row in rows if row.side == "ledger"],
        [row.id for row in rows if row.side == "stripe"],
    )


async def _charges_set_based(ctx: _Context, rule: Rule) -> None:
    """SQLite (the tests' scale): every charge with a payment id no other charge has,
    equal in amount and within the window to the payment's posting, matched in one
    INSERT … SELECT (SQLite materializes a SELECT that reads the table it fills)."""
    department = _json_text(ctx, "t.metadata", "department")
    day = _day_of(ctx, "t.effective_at")
    days = _days_between(ctx, day, "r.booked_on")
    charges = _sql_list(_CHARGES)
    sources = _sql_list(STRIPE_SOURCES)
    only_department = f"AND {department} = :department" if ctx.department else ""
    columns, values = _match_columns(rule)
    insert_matches = text(
        f"""
INSERT INTO reconciliation_matches {columns}
{values}
  FROM (SELECT t.id AS txn_id, r.id AS rec_id, substr({department}, 1, 32) AS department,
               r.currency, r.amount, {day} AS on_date, {days} AS days
          FROM reconciliation_external_records r
          JOIN ledger_transactions t
            ON t.idempotency_key = 'payment:' || r.payment_id || '\\:succeeded'
          JOIN ledger_entries e ON e.transaction_id = t.id AND e.amount > 0
          JOIN ledger_accounts a ON a.id = e.account_id AND a.code = '{STRIPE_CLEARING}'
         WHERE r.source IN {sources} AND r.category IN {charges}
           AND r.payment_id IS NOT NULL
           AND r.booked_on BETWEEN :low AND :high
           AND e.amount = r.amount AND e.currency = r.currency
           {only_department}
           AND NOT EXISTS (SELECT 1 FROM reconciliation_matches m WHERE m.left_id = t.id)
           AND NOT EXISTS (SELECT 1 FROM reconciliation_matches m WHERE m.right_id = r.id)
           AND NOT EXISTS (
               SELECT 1 FROM reconciliation_external_records d
                WHERE d.payment_id = r.payment_id AND d.id <> r.id
                  AND d.source IN {sources} AND d.category IN {charges})
       ) AS p
 WHERE p.days <= :window
"""
    ).bindparams(
        bindparam("low", type_=Date),
        bindparam("high", type_=Date),
        bindparam("matched_at", type_=UTCDateTime()),
    )
    params: dict[str, Any] = {
        "low": ctx.low,
        "high": ctx.high,
        "window": rule.window_days,
        **_match_params(ctx),
    }
    if ctx.department:
        params["department"] = ctx.department
    result = await ctx.conn.execute(insert_matches, params)
    await _analyze_matches(ctx, max(result.rowcount or 0, 0))


def _unmatched_left() -> Any:
    return ~exists().where(matches.c.left_id == transactions.c.id)


def day_of(value: Any) -> date:
    """The UTC day of a stored timestamp or date (SQLite may hand back text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value  # type: ignore[no-any-return]


def _ledger_item(row: Any) -> Item:
    metadata = row.metadata or {}
    return Item(
        kind="ledger",
        id=row.id,
        amount=int(row.amount),
        currency=row.currency,
        on=day_of(row.effective_at),
        key=metadata.get("payment_id"),
        department=metadata.get("department"),
    )


def _clearing_postings() -> Any:
    return (
        select(
            transactions.c.id,
            transactions.c.idempotency_key,
            transactions.c.metadata,
            transactions.c.effective_at,
            entries.c.amount,
            entries.c.currency,
        )
        .select_from(
            entries.join(transactions, transactions.c.id == entries.c.transaction_id).join(
                accounts, accounts.c.id == entries.c.account_id
            )
        )
        .where(accounts.c.code == STRIPE_CLEARING)
    )


async def _ledger_items(
    ctx: _Context, key_pattern: str, rule: Rule, *, ids: Sequence[str] | None = None
) -> list[Item]:
    """Unmatched payment (or refund) postings on Stripe clearing in the widened range
    (only those of these transaction ids, when given)."""
    if ids is not None:
        items: list[Item] = []
        for start in range(0, len(ids), ctx.id_chunk):
            chunk = ids[start : start + ctx.id_chunk]
            items += await _ledger_items_where(ctx, key_pattern, transactions.c.id.in_(chunk))
        return items
    return await _ledger_items_where(ctx, key_pattern, None)


async def _ledger_items_where(ctx: _Context, key_pattern: str, only: Any) -> list[Item]:
    stmt = _clearing_postings().where(
        entries.c.effective_at >= _start_of(ctx.low),
        entries.c.effective_at < _start_of(ctx.high + timedelta(days=1)),
        transactions.c.idempotency_key.like(key_pattern),
        # refund:{id} only: not the reversal of a refund that failed (refund:{id}:failed)
        ~transactions.c.idempotency_key.like("refund:%:%"),
        ~transactions.c.idempotency_key.like("payment:%:accepted"),
        _unmatched_left(),
    )
    if ctx.department is not None:
        stmt = stmt.where(transactions.c.metadata["department"].as_string() == ctx.department)
    if only is not None:
        stmt = stmt.where(only)
    rows = (await ctx.conn.execute(stmt)).all()
    return [_ledger_item(row) for row in rows]


async def _payments_by_id(ctx: _Context, payment_ids: list[str]) -> tuple[list[Item], list[Item]]:
    """The payment postings of these payment ids: (unmatched ones, matched ones)."""
    unmatched: list[Item] = []
    taken: list[Item] = []
    for start in range(0, len(payment_ids), CHUNK):
        keys = [f"payment:{pid}:succeeded" for pid in payment_ids[start : start + CHUNK]]
        keys += [f"payment:{pid}:received" for pid in payment_ids[start : start + CHUNK]]
        stmt = _clearing_postings().add_columns(
            exists().where(matches.c.left_id == transactions.c.id).label("is_matched")
        )
        stmt = stmt.where(transactions.c.idempotency_key.in_(keys))
        for row in (await ctx.conn.execute(stmt)).all():
            (taken if row.is_matched else unmatched).append(_ledger_item(row))
    return unmatched, taken


def _stripe_item(row: Any) -> Item:
    raw = row.raw or {}
    department = raw.get("payment_metadata[department]") or None
    return Item(
        kind="stripe",
        id=row.id,
        amount=int(row.amount),
        currency=row.currency,
        on=day_of(row.booked_on),
        key=row.payment_id,
        text=row.external_id,
        department=department if isinstance(department, str) else None,
    )


async def _stripe_items(
    ctx: _Context, categories: Sequence[str], *, ids: Sequence[str] | None = None
) -> list[Item]:
    """Unmatched Stripe records of these categories in the widened range (only those
    of these record ids, when given)."""
    if ids is not None:
        items: list[Item] = []
        for start in range(0, len(ids), ctx.id_chunk):
            chunk = ids[start : start + ctx.id_chunk]
            items += await _stripe_items_where(ctx, categories, external_records.c.id.in_(chunk))
        return items
    return await _stripe_items_where(ctx, categories, None)


async def _stripe_items_where(ctx: _Context, categories: Sequence[str], only: Any) -> list[Item]:
    r = external_records
    stmt = select(
        r.c.id, r.c.amount, r.c.currency, r.c.booked_on, r.c.payment_id, r.c.external_id, r.c.raw
    ).where(
        r.c.source.in_(STRIPE_SOURCES),
        r.c.category.in_(list(categories)),
        r.c.booked_on >= ctx.low,
        r.c.booked_on <= ctx.high,
        ~exists().where(matches.c.right_id == r.c.id),
    )
    if ctx.department is not None:
        # Only records of the department's payments (a record whose payment the ledger
        # does not know belongs to no department: platform-wide runs report it).
        payment = transactions.alias("payment")
        stmt = stmt.where(
            exists().where(
                payment.c.idempotency_key.in_(
                    [
                        literal("payment:") + r.c.payment_id + literal(":succeeded"),
                        literal("payment:") + r.c.payment_id + literal(":received"),
                    ]
                ),
                payment.c.metadata["department"].as_string() == ctx.department,
            )
        )
    if only is not None:
        stmt = stmt.where(only)
    return [_stripe_item(row) for row in (await ctx.conn.execute(stmt)).all()]


# --- 2. refunds ------------------------------------------------------------------------------


async def _refunds(ctx: _Context) -> None:
    rule = ctx.rules[matching.REFUND.name]
    left_ids, right_ids = ctx.refund_ids or (None, None)
    lefts = await _ledger_items(ctx, "refund:%", rule, ids=left_ids)
    rights = await _stripe_items(ctx, _REFUNDS, ids=right_ids)
    outcome = matching.pair_by_key(lefts, rights, rule)
    await _store(ctx, outcome)
    await _missing(ctx, outcome.lefts, matching.MISSING_IN_STRIPE, "no Stripe refund shows it")
    await _missing(
        ctx, outcome.rights, matching.MISSING_IN_LEDGER, "the ledger has no refund for it"
    )


# --- 3. payouts and the bank -------------------------------------------------------------------


@dataclass(frozen=True)
class _Payouts:
    unmatched: list[Item]
    matched: list[Item]


async def _payouts(ctx: _Context) -> _Payouts:
    """The payouts booked in the widened range (their in-transit leg: our side of what the
    bank should show), and each one's control totals from its Stripe records."""
    stmt = (
        select(
            transactions.c.external_ref,
            transactions.c.effective_at,
            entries.c.amount,
            entries.c.currency,
            exists().where(matches.c.left_id == transactions.c.external_ref).label("is_matched"),
        )
        .select_from(
            entries.join(transactions, transactions.c.id == entries.c.transaction_id).join(
                accounts, accounts.c.id == entries.c.account_id
            )
        )
        .where(
            accounts.c.code == BANK_IN_TRANSIT,
            entries.c.amount > 0,
            entries.c.effective_at >= _start_of(ctx.low),
            entries.c.effective_at < _start_of(ctx.high + timedelta(days=1)),
            transactions.c.idempotency_key.like("stripe:po_%"),
            ~transactions.c.idempotency_key.like("stripe:po_%:%"),
        )
    )
    unmatched: list[Item] = []
    matched: list[Item] = []
    for row in (await ctx.conn.execute(stmt)).all():
        item = Item(
            kind="payout",
            id=row.external_ref,
            amount=int(row.amount),
            currency=row.currency,
            on=day_of(row.effective_at),
            key=row.external_ref,
        )
        (matched if row.is_matched else unmatched).append(item)
    in_range = [p for p in (*unmatched, *matched) if ctx.in_range(p.on)]
    totals = await _control_totals(ctx, in_range)
    ctx.payouts = [t.as_dict() for t in totals]
    findings = []
    by_id = {p.id: p for p in in_range}
    for total in totals:
        payout = by_id[total.payout_id]
        if not total.balanced or total.net != payout.amount:
            findings.append(
                Finding(
                    matching.AMOUNT_DIFFERS,
                    payout,
                    f"control totals: gross {total.gross} − fees {total.fees} − refunds "
                    f"{total.refunds} − disputes {total.disputes} + other {total.other} = "
                    f"net {total.net}; the payout is {total.payout_amount}, booked "
                    f"{payout.amount}",
                    counterpart_amount=total.net,
                )
            )
    await _store(ctx, Outcome(findings=findings))
    return _Payouts(unmatched, matched)


async def _control_totals(ctx: _Context, payouts: list[Item]) -> list[matching.ControlTotals]:
    r = external_records
    rows_by_payout: dict[str, list[tuple[str | None, int, int, int, int]]] = {}
    ids = [p.id for p in payouts]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        payout_of = func.coalesce(r.c.payout_id, r.c.source_id)
        stmt = (
            select(
                payout_of.label("payout"),
                r.c.category,
                func.sum(r.c.amount),
                func.sum(func.coalesce(r.c.fee, 0)),
                func.sum(func.coalesce(r.c.net, r.c.amount)),
                func.count(),
            )
            .where(
                r.c.source.in_(STRIPE_SOURCES),
                or_(
                    r.c.payout_id.in_(chunk),
                    and_(r.c.category == "payout", r.c.source_id.in_(chunk)),
                ),
            )
            .group_by(payout_of, r.c.category)
        )
        for payout, category, amount, fee, net, n in (await ctx.conn.execute(stmt)).all():
            rows_by_payout.setdefault(payout, []).append(
                (category, int(amount), int(fee), int(net), int(n))
            )
    return [
        matching.control_totals(p.id, p.currency, rows_by_payout.get(p.id, []))
        for p in sorted(payouts, key=Item.sort_key)
    ]


async def _bank_items(ctx: _Context, matched: bool) -> list[Item]:
    r = external_records
    is_matched = exists().where(matches.c.right_id == r.c.id)
    stmt = select(
        r.c.id,
        r.c.amount,
        r.c.currency,
        r.c.booked_on,
        r.c.value_on,
        r.c.reference,
        r.c.end_to_end_id,
        r.c.counterparty,
    ).where(
        r.c.source.in_(BANK_SOURCES),
        r.c.booked_on >= ctx.low,
        r.c.booked_on <= ctx.high,
        is_matched if matched else ~is_matched,
    )
    items = []
    for row in (await ctx.conn.execute(stmt)).all():
        words = [row.reference or "", row.end_to_end_id or "", row.counterparty or ""]
        items.append(
            Item(
                kind="bank",
                id=row.id,
                amount=int(row.amount),
                currency=row.currency,
                on=day_of(row.booked_on),
                text=" | ".join(words),
            )
        )
    return items


async def _bank(ctx: _Context, payouts: _Payouts) -> None:
    reference_rule = ctx.rules[matching.BANK_REFERENCE.name]
    amount_rule = ctx.rules[matching.BANK_AMOUNT.name]
    sum_rule = ctx.rules[matching.BANK_SUM.name]
    lines = await _bank_items(ctx, matched=False)
    known = [p.id for p in (*payouts.unmatched, *payouts.matched)]
    keyed = [replace(line, key=matching.payout_key_in(line.text, known)) for line in lines]
    # 1. the payout id in the line
    first = matching.pair_by_key(payouts.unmatched, keyed, reference_rule, taken=payouts.matched)
    await _store(ctx, first)
    # 2. a line alike one matched already is the bank listing it twice
    paired = [*await _bank_items(ctx, matched=True)]
    second = matching.duplicates_of(first.rights, paired, amount_rule)
    await _store(ctx, second)
    # 3. one payout of about the line's amount, 4. several adding up to it
    third = matching.match_by_amount(first.lefts, second.rights, amount_rule)
    await _store(ctx, third)
    fourth = matching.match_by_sum(third.lefts, third.rights, sum_rule)
    await _store(ctx, fourth)
    await _missing(ctx, fourth.lefts, matching.MISSING_IN_BANK, "no bank line shows it")
    await _missing(
        ctx, fourth.rights, matching.MISSING_IN_LEDGER, "no payout or ledger entry explains it"
    )


# --- storing what the rules decided ---------------------------------------------------------------


def _department_of(finding: Finding) -> str | None:
    if finding.item.department:
        return finding.item.department
    return next((c.item.department for c in finding.candidates if c.item.department), None)


def _ours(ctx: _Context, department: str | None) -> bool:
    return ctx.department is None or department == ctx.department


async def _store(ctx: _Context, outcome: Outcome) -> None:
    rows: list[dict[str, Any]] = []
    for pairing in outcome.matches:
        department = next((left.department for left in pairing.lefts if left.department), None)
        department = department or pairing.right.department
        if _ours(ctx, department):
            rows += match_rows(pairing, department=department, run_id=ctx.run_id,
                               matched_by=ctx.started_by, at=ctx.now)  # fmt: skip
            await _book_arrival(ctx.session, pairing)
    # All of a rule's pairs in one executemany (refunds can be thousands a month).
    for start in range(0, len(rows), CHUNK):
        await ctx.session.execute(matches.insert(), rows[start : start + CHUNK])
    ctx.new_matches += len(rows)
    exception_rows = []
    for finding in outcome.findings:
        department = _department_of(finding)
        relevant = ctx.in_range(finding.item.on) or any(
            ctx.in_range(c.item.on) for c in finding.candidates
        )
        if relevant and _ours(ctx, department):
            exception_rows.append(_exception_row(ctx, finding, department))
    await _insert_exceptions(ctx, exception_rows)


async def _missing(ctx: _Context, items: Iterable[Item], reason: str, detail: str) -> None:
    rows = [
        _exception_row(ctx, Finding(reason, item, detail), item.department)
        for item in items
        if ctx.in_range(item.on) and _ours(ctx, item.department)
    ]
    await _insert_exceptions(ctx, rows)


def _exception_row(ctx: _Context, finding: Finding, department: str | None) -> dict[str, Any]:
    return {
        "id": new_id(EXCEPTION_PREFIX),
        "run_id": ctx.run_id,
        "reason": finding.reason,
        "status": "open",
        "item_kind": finding.item.kind,
        "item_id": finding.item.id,
        "department": department,
        "currency": finding.item.currency,
        "amount": finding.item.amount,
        "counterpart_amount": finding.counterpart_amount,
        "on_date": finding.item.on,
        "detail": finding.detail[:500],
        "candidates": [c.as_dict() for c in finding.candidates],
        "created_at": ctx.now,
        "resolution": None,
        "resolution_reason": None,
        "resolved_by": None,
        "resolved_at": None,
        "adjustment_id": None,
    }


async def _insert_exceptions(ctx: _Context, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        statement = insert_ignoring_conflicts(
            ctx.session, exceptions, ["item_id", "reason"]
        ).returning(exceptions.c.id)
        written = (await ctx.session.execute(statement, rows[start : start + CHUNK])).all()
        ctx.new_exceptions += len(written)


async def save_match(
    session: AsyncSession,
    pairing: Pairing,
    *,
    department: str | None,
    run_id: str | None,
    matched_by: str,
    at: datetime,
    exception_id: str | None = None,
) -> None:
    """Record a pairing (one row per left); a payout matched to a bank line is booked as
    arrived (once: booking's idempotency key `stripe:{payout}:arrived`)."""
    rows = match_rows(pairing, department=department, run_id=run_id, matched_by=matched_by,
                      at=at, exception_id=exception_id)  # fmt: skip
    await session.execute(matches.insert(), rows)
    await _book_arrival(session, pairing)


def match_rows(
    pairing: Pairing,
    *,
    department: str | None,
    run_id: str | None,
    matched_by: str,
    at: datetime,
    exception_id: str | None = None,
) -> list[dict[str, Any]]:
    """The reconciliation_matches rows of a pairing, one per left item."""
    right = pairing.right
    return [
        {
            "run_id": run_id,
            "exception_id": exception_id,
            "rule": pairing.rule.name,
            "score": pairing.score,
            "reason": pairing.reason[:300],
            "left_kind": "payout" if left.kind == "payout" else "ledger",
            "left_id": left.id,
            "right_id": right.id,
            "department": department,
            "currency": right.currency,
            "expected_amount": left.amount,
            "actual_amount": right.amount,
            "on_date": left.on,
            "matched_by": matched_by,
            "matched_at": at,
        }
        for left in pairing.lefts
    ]


async def _book_arrival(session: AsyncSession, pairing: Pairing) -> None:
    right = pairing.right
    payouts = [left for left in pairing.lefts if left.kind == "payout"]
    if right.kind == "bank" and len(payouts) == 1:
        await book_payout_arrival(session, payouts[0].id, right.id)
    elif right.kind == "bank" and payouts:
        await _book_arrivals_together(session, payouts, right.id)


async def _book_arrivals_together(
    session: AsyncSession, payouts: list[Item], bank_record_id: str
) -> None:
    """Several payouts in one bank line (their sum is the line, exactly): each arrives
    with its own amount, in booking's shape, so each is still booked once."""
    for payout in payouts:
        await post_transaction(
            session,
            idempotency_key=f"stripe:{payout.id}:arrived",
            description=f"Stripe payout {payout.id} arrived at the bank (with others, "
            f"{bank_record_id})",
            lines=[
                Line(BANK, payout.amount, payout.currency),
                Line(BANK_IN_TRANSIT, -payout.amount, payout.currency),
            ],
            effective_at=_start_of(payout.on),
            metadata={
                "kind": "stripe_payout_arrival",
                "payout_id": payout.id,
                "bank_record_id": bank_record_id,
                "difference": 0,
            },
        )


# --- 4. exceptions this run matched; the counts --------------------------------------------------


async def _resolve_matched(ctx: _Context) -> None:
    """Open exceptions whose item this run matched are resolved (`matched`). Driven by
    the open exceptions (few): one probe of the matches' unique indexes each, never a
    join of every match; nothing at all when none is open."""
    reasons = [
        matching.MISSING_IN_BANK,
        matching.MISSING_IN_LEDGER,
        matching.MISSING_IN_STRIPE,
        matching.AMBIGUOUS,
        matching.OUTSIDE_DATE_WINDOW,
    ]
    open_ones = and_(exceptions.c.status == "open", exceptions.c.reason.in_(reasons))
    if await ctx.session.scalar(select(exceptions.c.id).where(open_ones).limit(1)) is None:
        return
    matched_left = exists().where(
        matches.c.left_id == exceptions.c.item_id, matches.c.run_id == ctx.run_id
    )
    matched_right = exists().where(
        matches.c.right_id == exceptions.c.item_id, matches.c.run_id == ctx.run_id
    )
    await ctx.session.execute(
        update(exceptions)
        .where(open_ones, or_(matched_left, matched_right))
        .values(
            status="resolved",
            resolution="matched",
            resolution_reason=f"matched by run {ctx.run_id}",
            resolved_by=ctx.started_by,
            resolved_at=ctx.now,
        )
    )


async def _counts(ctx: _Context) -> dict[str, Any]:
    in_range = and_(matches.c.on_date >= ctx.date_from, matches.c.on_date <= ctx.date_to)
    if ctx.department is not None:
        in_range = and_(in_range, matches.c.department == ctx.department)
    matched = await ctx.session.scalar(select(func.count()).select_from(matches).where(in_range))
    where = and_(
        exceptions.c.status == "open",
        exceptions.c.on_date >= ctx.date_from,
        exceptions.c.on_date <= ctx.date_to,
    )
    if ctx.department is not None:
        where = and_(where, exceptions.c.department == ctx.department)
    by_reason = {
        reason: int(n)
        for reason, n in (
            await ctx.session.execute(
                select(exceptions.c.reason, func.count()).where(where).group_by(exceptions.c.reason)
            )
        ).all()
    }

    def total(reasons: Iterable[str]) -> int:
        return sum(by_reason.get(reason, 0) for reason in reasons)

    return {
        "matched": int(matched or 0),
        "unmatched_ledger": total(matching.UNMATCHED_LEDGER_REASONS),
        "unmatched_external": total(matching.UNMATCHED_EXTERNAL_REASONS),
        "discrepancies": total(matching.DISCREPANCY_REASONS),
        "by_reason": dict(sorted(by_reason.items())),
    }


# --- reading runs ---------------------------------------------------------------------------------


async def get_run(
    session: AsyncSession, run_id: str, *, scope: Sequence[str] | None = None
) -> RunView:
    """The run, or RunNotFound — also for a key that does not see its department (a
    run without one, platform-wide, needs a key for all departments)."""
    row = await session.get(ReconciliationRun, run_id)
    if row is None or not _visible(row.department, scope):
        raise RunNotFound(f"no reconciliation run {run_id}")
    return view_of(row)


def _visible(department: str | None, scope: Sequence[str] | None) -> bool:
    return scope is None or (department is not None and department in scope)


async def list_runs(
    session: AsyncSession,
    *,
    scope: Sequence[str] | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> list[RunView]:
    stmt = select(ReconciliationRun)
    if scope is not None:
        stmt = stmt.where(ReconciliationRun.department.in_(list(scope)))
    stmt = page(stmt, ReconciliationRun.id, cursor, limit, prefix=RUN_PREFIX)
    return [view_of(row) for row in (await session.scalars(stmt)).all()]


__all__ = [
    "RunNotFound",
    "RunView",
    "day_of",
    "get_run",
    "list_runs",
    "match_rows",
    "run",
    "runs",
    "save_match",
]
