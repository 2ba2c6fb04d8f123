"""Stripe money movement in the books: fees, disputes, payouts, payout failures and
adjustments, booked from the stored records of a Stripe import, set-based, in the
import's transaction (imports.import_file calls book_stripe_records).

What is booked, per Stripe balance transaction (a record of source `stripe_balance` or
`stripe_payout_recon`; amounts signed as Stripe gives them, + into the Stripe balance):

- its fee, when not zero: Cr platform:stripe_clearing; Dr platform:stripe_fees, or —
  for each department whose settings say it bears Stripe's fees
  (`stripe_fees_borne_by = "department"`) — Dr dept:X:fees_payable for X's part of the
  payment's fee split as payments booked it (`payment:{id}:succeeded`; largest
  remainder per fee, so the parts add up to it). A fee whose payment the ledger does
  not know (or that waits in review) is the platform's. Fees are summed into one
  transaction per hour (UTC), currency, department and matter (`stripe:fees:{import}:
  {n}`, kind "stripe_fees", metadata `movements` = how many): a transaction per fee
  would cost minutes at a million charges (docs/adr/013-stripe-booking.md).
- its gross, unless payments books it (charges, refunds and their failures: those are
  what reconciliation matches), against clearing, one transaction each
  (`stripe:{txn}`): disputes and their reversals vs platform:stripe_disputes, payout
  failures/reversals vs platform:bank_in_transit (the payout back in the Stripe
  balance), Stripe's own fee lines vs platform:stripe_fees, everything else vs
  platform:stripe_adjustments.
- a payout (`stripe:{po_…}`): Dr platform:bank_in_transit / Cr clearing — from the
  payout's balance transaction (API), or, in the itemized payout reconciliation report,
  which lists what a payout is made of rather than the payout, from the sum of the nets
  of its lines (`automatic_payout_id`), effective `automatic_payout_effective_at`.
  `book_payout_arrival` then moves it from in transit to platform:bank.

Each movement is booked once. An import is booked once (ledger_stripe_bookings); a
movement with a transaction of its own is keyed by its Stripe id, the same in both
sources; a fee is not booked again when its balance transaction was imported before
through the other source (that import booked it). So importing the same transactions
again — the same file, an overlapping API pull, the report after the API — books
nothing new. external_ref is the Stripe id (the payout id for payouts and payout
failures; none for summed fees), external_source "stripe"; metadata carries kind,
stripe_id, category, payment_id, payout_id, the payment's department and matter_code,
movements and import_id.

How: a few INSERT … SELECT statements over the import's records through two temporary
tables (the transactions to write, their legs), then one UPDATE of the cached balances
for the few accounts touched — never one posting per round trip. On PostgreSQL the
deferred balance check (0001's triggers) is run before the accounts are locked, and
the accounts are locked in id order like every other writer's, for the last statement.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import column, func, select, table, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ledger import periods
from ledger.accounts import (
    BANK,
    BANK_IN_TRANSIT,
    STRIPE_ADJUSTMENTS,
    STRIPE_CLEARING,
    STRIPE_DISPUTES,
    STRIPE_FEES,
    SUSPENSE,
    ensure_platform_accounts,
)
from ledger.journal import post_transaction
from ledger.models import (
    external_records,
    imports,
    ledger_departments,
    stripe_bookings,
    transactions,
)
from ledger.queries import load_transaction
from ledger.types import LedgerTransaction, Line
from onetrip.clock import utcnow
from onetrip.db import insert_ignoring_conflicts
from onetrip.errors import Conflict, NotFound, ValidationFailed
from onetrip.ids import new_id

STRIPE_SOURCES = ("stripe_balance", "stripe_payout_recon")
BANK_SOURCES = ("bank_csv", "camt053")
EXTERNAL_SOURCE = "stripe"

#: reporting categories (or API types) whose gross payments books: not booked here
BOOKED_BY_PAYMENTS = (
    "charge",
    "payment",
    "refund",
    "payment_refund",
    "refund_failure",
    "payment_failure_refund",
    "partial_capture_reversal",
)
PAYOUT = "payout"
PAYOUT_FAILURES = ("payout_reversal", "payout_cancel", "payout_failure")
DISPUTES = ("dispute", "dispute_reversal")
#: Stripe's own fee lines (not a fee on a charge): the gross is the fee
FEE_LINES = ("fee", "stripe_fee", "tax", "network_cost")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


@dataclass(frozen=True)
class BookingSummary:
    """What one booking wrote: the Stripe movements booked, per kind (stripe_fee,
    stripe_payout, stripe_payout_failure, stripe_dispute, stripe_fee_line,
    stripe_adjustment), and the ledger transactions holding them."""

    movements: int
    by_kind: dict[str, int]
    postings: int


class _Dialect:
    """The few expressions PostgreSQL and SQLite write differently."""

    def __init__(self, name: str) -> None:
        self.pg = name == "postgresql"

    def json_text(self, column_sql: str, key: str) -> str:
        if self.pg:
            return f"({column_sql}->>'{key}')"
        return f"json_extract({column_sql}, '$.{key}')"

    def timestamp_of_text(self, value: str) -> str:
        """A Stripe report timestamp (ISO 8601; naive is UTC: the session's time zone is
        UTC while booking) as a stored timestamp."""
        if self.pg:
            return f"CAST({value} AS timestamptz)"
        return f"(datetime({value}) || '.000000')"

    def timestamp_of_date(self, value: str) -> str:
        if self.pg:
            return f"CAST({value} AS timestamptz)"
        return f"({value} || ' 00:00:00.000000')"

    def hour_of(self, value: str) -> str:
        if self.pg:
            return f"date_trunc('hour', {value})"
        return f"strftime('%Y-%m-%d %H:00:00.000000', {value})"

    def hour_text(self, value: str) -> str:
        if self.pg:
            return f"to_char({value}, 'YYYY-MM-DD HH24:00')"
        return f"(substr({value}, 1, 13) || '\\:00')"

    @property
    def json_object(self) -> str:
        return "json_build_object" if self.pg else "json_object"

    @property
    def identity(self) -> str:
        return (
            "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY" if self.pg else "INTEGER PRIMARY KEY"
        )

    @property
    def temp(self) -> str:
        return "TEMPORARY" if self.pg else "TEMP"

    @property
    def on_commit(self) -> str:
        return "ON COMMIT DROP" if self.pg else ""

    @property
    def timestamp_type(self) -> str:
        return "timestamptz" if self.pg else "TEXT"


# The work tables, private to the booking's connection and gone at its end.
_WRITES = "stripe_booking_writes"  # one row per ledger transaction to write
_LEGS = "stripe_booking_legs"  # the entries of those transactions
_FEES = "stripe_booking_fees"  # the import's fees not booked yet, one row each
_WORK_TABLES = (_WRITES, _LEGS, _FEES)


def _created(d: _Dialect, r: str = "r") -> str:
    """When the record's balance transaction happened (its `created`), else its day."""
    return f"coalesce({r}.created_at, {d.timestamp_of_date(f'{r}.booked_on')})"


def _id_expression(n: str) -> str:
    """`txn_…` ids made in SQL: a fresh time-and-random head from Python, and the
    posting's number counted up from a random base in the last six characters."""
    value = f"(CAST(:id_base AS bigint) + {n})"
    chars = [
        f"substr(CAST(:alphabet AS text), CAST((({value} >> {shift}) & 31) AS integer) + 1, 1)"
        for shift in (25, 20, 15, 10, 5, 0)
    ]
    return "(CAST(:id_head AS text) || " + " || ".join(chars) + ")"


_PAYMENT_KEY = "'payment:' || r.payment_id || '\\:succeeded'"


def _fee_rows_sql(d: _Dialect, where: str, other_source: bool) -> str:
    """The import's fees not booked yet, one row each: when, in which hour, and the
    payment's posting (department, matter) when payments booked it. A fee whose balance
    transaction came before through the other Stripe source was booked by that import."""
    once = ""
    if other_source:
        once = """
       AND NOT EXISTS (SELECT 1 FROM reconciliation_external_records o
                        WHERE o.source = CASE WHEN r.source = 'stripe_balance'
                                              THEN 'stripe_payout_recon'
                                              ELSE 'stripe_balance' END
                          AND o.namespace = r.namespace AND o.external_id = r.external_id)"""
    return f"""
SELECT t.*, {d.hour_of("t.created")} AS bucket
  FROM (SELECT r.id AS record_id, r.currency, r.fee, {_created(d)} AS created,
               pt.id AS payment_txn_id,
               substr({d.json_text("pt.metadata", "department")}, 1, 32) AS department,
               substr({d.json_text("pt.metadata", "matter_code")}, 1, 64) AS matter_code
          FROM reconciliation_external_records r
          LEFT JOIN ledger_transactions pt
                 ON r.payment_id IS NOT NULL AND pt.idempotency_key = {_PAYMENT_KEY}
         WHERE {where} AND r.fee IS NOT NULL AND r.fee <> 0{once}) AS t
"""


#: a fee row belongs to the fee write of its hour, currency, department and matter
_SAME_GROUP = (
    "g.kind = 'stripe_fees' AND g.currency = f.currency AND g.bucket = f.bucket"
    " AND g.group_department = coalesce(f.department, '')"
    " AND g.group_matter = coalesce(f.matter_code, '')"
)


def _movements_sql(d: _Dialect, where: str, where_x: str, recon: bool) -> str:
    """The import's other movements, one ledger transaction each: disputes, payout
    failures, adjustments, Stripe's fee lines, payouts (their own balance transactions,
    or — in the payout reconciliation report — the sum of a payout's lines)."""
    kind = (
        f"CASE WHEN r.category = '{PAYOUT}' THEN 'stripe_payout'"
        f" WHEN r.category IN {_in(PAYOUT_FAILURES)} THEN 'stripe_payout_failure'"
        f" WHEN r.category IN {_in(DISPUTES)} THEN 'stripe_dispute'"
        f" WHEN r.category IN {_in(FEE_LINES)} THEN 'stripe_fee_line'"
        " ELSE 'stripe_adjustment' END"
    )
    counter = (
        f"CASE WHEN r.category IN ('{PAYOUT}', {_in(PAYOUT_FAILURES)[1:-1]})"
        f" THEN '{BANK_IN_TRANSIT}'"
        f" WHEN r.category IN {_in(DISPUTES)} THEN '{STRIPE_DISPUTES}'"
        f" WHEN r.category IN {_in(FEE_LINES)} THEN '{STRIPE_FEES}'"
        f" ELSE '{STRIPE_ADJUSTMENTS}' END"
    )
    payout_id = "coalesce(r.source_id, r.external_id)"
    is_payout = f"r.category = '{PAYOUT}'"
    by_payout = f"r.category IN ('{PAYOUT}', {_in(PAYOUT_FAILURES)[1:-1]})"
    rows = f"""
    SELECT CASE WHEN {is_payout} THEN 'stripe:' || {payout_id}
                ELSE 'stripe:' || r.external_id END AS posting_key,
           {kind} AS kind,
           CASE WHEN {is_payout} THEN {payout_id} ELSE r.external_id END AS stripe_id,
           r.category, r.payment_id,
           CASE WHEN {is_payout} THEN {payout_id} ELSE r.payout_id END AS payout_id,
           r.currency, r.amount AS clearing_amount, {counter} AS counter_account,
           {_created(d)} AS effective_at,
           CASE WHEN {by_payout} THEN {payout_id} ELSE r.external_id END AS external_ref,
           CASE WHEN {is_payout} THEN 'Stripe payout ' || {payout_id}
                ELSE 'Stripe ' || coalesce(r.category, 'movement') || ' ' || r.external_id
                     || coalesce(' (' || r.source_id || ')', '') END AS description
      FROM reconciliation_external_records r
     WHERE {where} AND r.amount <> 0
       AND coalesce(r.category, '') NOT IN {_in(BOOKED_BY_PAYMENTS)}"""
    if recon:
        payout_effective = d.timestamp_of_text(
            f"nullif(max({d.json_text('r.raw', 'automatic_payout_effective_at')}), '')"
        )
        rows += f"""
    UNION ALL
    SELECT 'stripe:' || r.payout_id, 'stripe_payout', r.payout_id, '{PAYOUT}', NULL,
           r.payout_id, r.currency, -sum(r.net), '{BANK_IN_TRANSIT}',
           coalesce({payout_effective}, max({_created(d)})), r.payout_id,
           'Stripe payout ' || r.payout_id
      FROM reconciliation_external_records r
     WHERE {where} AND r.payout_id IS NOT NULL AND coalesce(r.category, '') <> '{PAYOUT}'
       AND r.payout_id NOT IN (SELECT x.source_id FROM reconciliation_external_records x
                                WHERE {where_x} AND x.category = '{PAYOUT}'
                                  AND x.source_id IS NOT NULL)
     GROUP BY r.payout_id, r.currency
    HAVING sum(r.net) <> 0"""
    return f"""
INSERT INTO {_WRITES} (posting_key, kind, stripe_id, category, payment_id, payout_id, currency,
                       clearing_amount, counter_account, effective_at, external_ref,
                       description, movements)
SELECT c.posting_key, c.kind, c.stripe_id, c.category, c.payment_id, c.payout_id, c.currency,
       c.clearing_amount, c.counter_account, c.effective_at, c.external_ref,
       substr(c.description, 1, 500), 1
  FROM ({rows}) AS c
"""


def _movements_known_sql(d: _Dialect) -> list[str]:
    """After _movements_sql (and ANALYZE, so these are index lookups for the few
    movements rather than hash joins over the whole ledger): drop those booked before,
    and name the department and matter of the payment each is about."""
    payment_key = f"'payment:' || {_WRITES}.payment_id || '\\:succeeded'"
    return [
        f"""
DELETE FROM {_WRITES}
 WHERE kind <> 'stripe_fees'
   AND EXISTS (SELECT 1 FROM ledger_transactions t
                WHERE t.idempotency_key = {_WRITES}.posting_key)""",
        f"""
UPDATE {_WRITES}
   SET department = substr({d.json_text("pt.metadata", "department")}, 1, 32),
       matter_code = substr({d.json_text("pt.metadata", "matter_code")}, 1, 64)
  FROM ledger_transactions pt
 WHERE {_WRITES}.kind <> 'stripe_fees' AND {_WRITES}.payment_id IS NOT NULL
   AND pt.idempotency_key = {payment_key}""",
    ]


#: the memory of each sort and hash of the bulk statements (PostgreSQL; this booking's and
#: a reconciliation run's). A million lines' hash tables and sorts take 100–220 MB: with
#: less they spill to disk in batches (64MB: the fee rows' join and the run's pairing
#: each wrote ~1 GB of temporary files). Batch jobs of one connection, not requests.
BULK_WORK_MEM = "256MB"

_SESSION_SETTINGS = {"TimeZone": "UTC", "work_mem": BULK_WORK_MEM}


async def book_stripe_records(session: AsyncSession, import_id: str) -> BookingSummary:
    """Book the Stripe movements of one import's records, in the caller's unit of work
    (the import's); never commits.

    Books each import once (a second call books nothing) and each movement once, across
    imports and sources. Raises PeriodClosed (409) when a movement falls in a closed
    period of a department it touches — the caller's unit of work then rolls back
    whole. On PostgreSQL concurrent bookings wait for each other (a transaction-level
    advisory lock), so each sees what the one before it booked.
    """
    conn = await session.connection()
    d = _Dialect(conn.dialect.name)
    source = (
        await conn.execute(select(imports.c.source).where(imports.c.id == import_id))
    ).scalar_one_or_none()
    if source not in STRIPE_SOURCES:
        return BookingSummary(movements=0, by_kind={}, postings=0)
    saved: dict[str, str] = {}
    if d.pg:
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('onetrip.stripe_booking'))"))
    claimed = await conn.execute(
        insert_ignoring_conflicts(session, stripe_bookings, ["import_id"]).values(
            import_id=import_id, booked_at=utcnow(), movements=0, postings=0, by_kind={}
        )
    )
    if not claimed.rowcount:
        return BookingSummary(movements=0, by_kind={}, postings=0)
    if d.pg:
        # Naive report timestamps are UTC; the bulk statements' sorts stay in memory.
        # Both settings are put back before returning.
        for name, value in _SESSION_SETTINGS.items():
            saved[name] = (
                await conn.execute(text("SELECT current_setting(:name)"), {"name": name})
            ).scalar_one()
            await conn.execute(
                text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
            )
    # On a refusal the caller's unit of work rolls back, and with it the work tables
    # and the settings (both belong to this transaction): nothing to undo here then.
    await _create_work_tables(conn, d)
    summary = await _book(session, conn, d, import_id, source)
    await _drop_work_tables(conn)
    for name, value in saved.items():
        await conn.execute(
            text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
        )
    await conn.execute(
        update(stripe_bookings)
        .where(stripe_bookings.c.import_id == import_id)
        .values(movements=summary.movements, postings=summary.postings, by_kind=summary.by_kind)
    )
    return summary


async def _create_work_tables(conn: AsyncConnection, d: _Dialect) -> None:
    await _drop_work_tables(conn)
    ts = d.timestamp_type
    for statement in (
        f"""CREATE {d.temp} TABLE {_WRITES} (
    w {d.identity}, txn_id varchar(40), posting_key varchar(255), kind varchar(32) NOT NULL,
    stripe_id varchar(255), category varchar(64), payment_id varchar(100),
    payout_id varchar(100), currency varchar(3) NOT NULL, clearing_amount bigint NOT NULL,
    counter_account varchar(100), effective_at {ts} NOT NULL, external_ref varchar(255),
    description varchar(500), department varchar(32), matter_code varchar(64),
    movements bigint NOT NULL, bucket {ts}, group_department varchar(32),
    group_matter varchar(64)
) {d.on_commit}""",
        f"""CREATE {d.temp} TABLE {_LEGS} (
    w bigint NOT NULL, account_id varchar(40) NOT NULL, amount bigint NOT NULL
) {d.on_commit}""",
        f"""CREATE {d.temp} TABLE {_FEES} (
    record_id varchar(40) NOT NULL, currency varchar(3) NOT NULL, fee bigint NOT NULL,
    created {ts} NOT NULL, payment_txn_id varchar(40), department varchar(32),
    matter_code varchar(64), bucket {ts} NOT NULL
) {d.on_commit}""",
    ):
        await conn.execute(text(statement))


async def _drop_work_tables(conn: AsyncConnection) -> None:
    for name in _WORK_TABLES:
        await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


async def _book(
    session: AsyncSession, conn: AsyncConnection, d: _Dialect, import_id: str, source: str
) -> BookingSummary:
    params = {"import_id": import_id}
    where = "r.import_id = :import_id"
    where_x = "x.import_id = :import_id"
    other = "stripe_payout_recon" if source == "stripe_balance" else "stripe_balance"
    other_source = (
        await conn.execute(
            select(external_records.c.id)
            .where(external_records.c.source == other, external_records.c.namespace == "stripe")
            .limit(1)
        )
    ).first() is not None
    # 1. The fees, one row each (read once: the groups and the split both use them),
    #    then summed per hour, currency, department and matter.
    await conn.execute(
        text(
            f"""
INSERT INTO {_FEES} (record_id, currency, fee, created, payment_txn_id, department,
                     matter_code, bucket)
SELECT f.record_id, f.currency, f.fee, f.created, f.payment_txn_id, f.department,
       f.matter_code, f.bucket
  FROM ({_fee_rows_sql(d, where, other_source)}) AS f
"""
        ),
        params,
    )
    if d.pg:
        # Temporary tables have no statistics until analysed (autovacuum never sees
        # them): without, every join below is planned for one row.
        await conn.execute(text(f"ANALYZE {_FEES}"))
    await conn.execute(
        text(
            f"""
INSERT INTO {_WRITES} (kind, currency, clearing_amount, effective_at, bucket, department,
                       matter_code, group_department, group_matter, movements)
SELECT 'stripe_fees', f.currency, -sum(f.fee), min(f.created), f.bucket, max(f.department),
       max(f.matter_code), coalesce(f.department, ''), coalesce(f.matter_code, ''), count(*)
  FROM {_FEES} f
 GROUP BY f.currency, f.bucket, coalesce(f.department, ''), coalesce(f.matter_code, '')
"""
        )
    )
    # 2. Every other movement not booked yet, on its own.
    await conn.execute(
        text(_movements_sql(d, where, where_x, source == "stripe_payout_recon")), params
    )
    if d.pg:
        # A temporary table has no statistics until analysed; without them the planner
        # takes the writes for one row and repeats the fee split once per fee group.
        await conn.execute(text(f"ANALYZE {_WRITES}"))
    for statement in _movements_known_sql(d):
        await conn.execute(text(statement))
    kinds = await conn.execute(text(f"SELECT kind, sum(movements) FROM {_WRITES} GROUP BY kind"))
    by_kind = {("stripe_fee" if kind == "stripe_fees" else kind): int(n) for kind, n in kinds}
    if not by_kind:
        return BookingSummary(movements=0, by_kind={}, postings=0)
    currencies = (await conn.execute(text(f"SELECT DISTINCT currency FROM {_WRITES}"))).scalars()
    for currency in sorted(currencies):
        await ensure_platform_accounts(session, currency)
    await conn.execute(
        text(
            f"""
UPDATE {_WRITES}
   SET txn_id = {_id_expression("w")},
       posting_key = coalesce(posting_key,
                              'stripe:fees:' || CAST(:import_id AS text) || ':' || w),
       description = coalesce(description,
           'Stripe fees on ' || movements || ' movement(s), ' || {d.hour_text("bucket")}
           || ' UTC' || coalesce(', ' || department, '') || coalesce(' ' || matter_code, ''))
"""
        ),
        {**new_id_head(), **params},
    )
    # 3. The legs. Clearing takes every write's amount, the counter account its
    #    opposite — except for fees: the parts of the departments that bear them, by
    #    each payment's booked split (largest remainder, so they add up to the fee),
    #    and the rest the platform's.
    await conn.execute(text(_LEGS_SQL))
    bearing = await conn.execute(
        select(func.count())
        .select_from(ledger_departments)
        .where(ledger_departments.c.stripe_fees_borne_by == "department")
    )
    if bearing.scalar_one():
        await conn.execute(text(_PARTS_SQL))
    if d.pg:
        await conn.execute(text(f"ANALYZE {_LEGS}"))
    await conn.execute(text(_PLATFORM_FEES_SQL))
    if d.pg:
        await conn.execute(text(f"ANALYZE {_LEGS}"))  # joined to the writes next
    # 4. The transactions and their entries, then the period check over them.
    metadata = (
        f"{d.json_object}('kind', g.kind, 'stripe_id', g.stripe_id, 'category', g.category,"
        " 'payment_id', g.payment_id, 'payout_id', g.payout_id, 'department', g.department,"
        " 'matter_code', g.matter_code, 'movements', g.movements,"
        " 'import_id', CAST(:import_id AS text))"
    )
    written = await conn.execute(
        text(
            f"""
INSERT INTO ledger_transactions
       (id, idempotency_key, description, effective_at, recorded_at, metadata, reverses_id,
        external_ref, external_source)
SELECT g.txn_id, g.posting_key, g.description, g.effective_at, :recorded_at, {metadata}, NULL,
       g.external_ref, CASE WHEN g.external_ref IS NULL THEN NULL ELSE '{EXTERNAL_SOURCE}' END
  FROM {_WRITES} g
 ORDER BY g.posting_key
"""
        ),
        {"recorded_at": _stored_now(d), **params},
    )
    await conn.execute(
        text(
            f"""
INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, effective_at)
SELECT g.txn_id, l.account_id, l.amount, g.currency, g.effective_at
  FROM {_LEGS} l JOIN {_WRITES} g ON g.w = l.w
 ORDER BY l.w, l.account_id
"""
        )
    )
    await periods.refuse_closed_transactions(
        session, select(table(_WRITES, column("txn_id")).c.txn_id)
    )
    if d.pg:
        # Check now that every transaction balances (the deferred trigger would at
        # commit), before the accounts are locked: the hot clearing account is then
        # held only for the balance update and the commit.
        await conn.execute(text("SET CONSTRAINTS ledger_transactions_balanced IMMEDIATE"))
        await conn.execute(text("SET CONSTRAINTS ledger_transactions_balanced DEFERRED"))
    else:
        await _check_balanced_portable(conn)
    # 5. The cached balances: each account touched once, locked in id order.
    await conn.execute(text(_BALANCES_PG if d.pg else _BALANCES_PORTABLE))
    return BookingSummary(
        movements=sum(by_kind.values()), by_kind=by_kind, postings=written.rowcount
    )


_LEGS_SQL = f"""
INSERT INTO {_LEGS} (w, account_id, amount)
SELECT g.w, a.id, g.clearing_amount
  FROM {_WRITES} g JOIN ledger_accounts a
    ON a.code = '{STRIPE_CLEARING}' AND a.currency = g.currency
UNION ALL
SELECT g.w, a.id, -g.clearing_amount
  FROM {_WRITES} g JOIN ledger_accounts a
    ON a.code = g.counter_account AND a.currency = g.currency
 WHERE g.kind <> 'stripe_fees'
"""


#: the bearing departments' parts of each fee group (see _book, step 3). A payment booked
#: to one department (nearly all) gives it the whole fee; only the fees of joint payments
#: are split share by share, so only those are ranked (a second sort of a million rows
#: otherwise: benchmarks/RESULTS.md).
_PARTS_SQL = f"""
WITH v AS (
    SELECT f.record_id, f.currency, f.bucket, f.department, f.matter_code, abs(f.fee) AS fee,
           CASE WHEN f.fee > 0 THEN 1 ELSE -1 END AS sign, e.account_id,
           a.department AS share_department, -e.amount AS share,
           count(*) OVER (PARTITION BY f.record_id) AS shares,
           sum(-e.amount) OVER (PARTITION BY f.record_id) AS total
      FROM {_FEES} f
      JOIN ledger_entries e
        ON e.transaction_id = f.payment_txn_id AND e.currency = f.currency AND e.amount < 0
      JOIN ledger_accounts a ON a.id = e.account_id AND a.department IS NOT NULL
)
INSERT INTO {_LEGS} (w, account_id, amount)
SELECT g.w, s.account_id, sum(s.part)
  FROM (SELECT v.currency, v.bucket, v.department, v.matter_code, v.account_id,
               v.share_department, v.sign * v.fee AS part
          FROM v
         WHERE v.shares = 1
        UNION ALL
        SELECT q.currency, q.bucket, q.department, q.matter_code, q.account_id,
               q.share_department,
               q.sign * (q.floor_part + CASE WHEN q.place <= q.fee - q.floors THEN 1 ELSE 0 END)
          FROM (SELECT p.*, sum(p.floor_part) OVER (PARTITION BY p.record_id) AS floors,
                       row_number() OVER (PARTITION BY p.record_id
                                          ORDER BY p.rest DESC, p.account_id) AS place
                  FROM (SELECT v.*, (v.fee * v.share) / v.total AS floor_part,
                               (v.fee * v.share) % v.total AS rest
                          FROM v
                         WHERE v.shares > 1) AS p) AS q) AS s
  JOIN ledger_departments dep
    ON dep.code = s.share_department AND dep.stripe_fees_borne_by = 'department'
  JOIN {_WRITES} g ON {_SAME_GROUP.replace("f.", "s.")}
 GROUP BY g.w, s.account_id
HAVING sum(s.part) <> 0
"""


#: the platform's part of each fee group: what the departments' parts leave
_PLATFORM_FEES_SQL = f"""
INSERT INTO {_LEGS} (w, account_id, amount)
SELECT g.w, a.id, -g.clearing_amount - coalesce(parts.amount, 0)
  FROM {_WRITES} g
  JOIN ledger_accounts a ON a.code = '{STRIPE_FEES}' AND a.currency = g.currency
  LEFT JOIN (SELECT l.w, sum(l.amount) AS amount FROM {_LEGS} l
               JOIN ledger_accounts la ON la.id = l.account_id
              WHERE la.code <> '{STRIPE_CLEARING}' GROUP BY l.w) AS parts
         ON parts.w = g.w
 WHERE g.kind = 'stripe_fees' AND -g.clearing_amount - coalesce(parts.amount, 0) <> 0
"""

_DELTAS = f"SELECT account_id, sum(amount) AS amount FROM {_LEGS} GROUP BY account_id"
_BALANCES_PG = f"""
WITH delta AS MATERIALIZED ({_DELTAS}),
locked AS MATERIALIZED (
    SELECT a.id FROM ledger_accounts a WHERE a.id IN (SELECT account_id FROM delta)
     ORDER BY a.id FOR NO KEY UPDATE
)
UPDATE ledger_accounts a SET balance = a.balance + x.amount
  FROM (SELECT delta.account_id, delta.amount
          FROM delta JOIN locked ON locked.id = delta.account_id) AS x
 WHERE a.id = x.account_id
"""
_BALANCES_PORTABLE = f"""
UPDATE ledger_accounts SET balance = balance + x.amount
  FROM ({_DELTAS}) AS x
 WHERE ledger_accounts.id = x.account_id
"""


async def _check_balanced_portable(conn: AsyncConnection) -> None:
    """SQLite has no balance trigger: refuse here what PostgreSQL's would."""
    bad = (
        await conn.execute(
            text(
                f"""
SELECT g.posting_key FROM {_WRITES} g
  LEFT JOIN (SELECT w, count(*) AS legs, sum(amount) AS total FROM {_LEGS} GROUP BY w) AS l
         ON l.w = g.w
 WHERE coalesce(l.legs, 0) < 2 OR l.total <> 0
 LIMIT 1
"""
            )
        )
    ).scalar_one_or_none()
    if bad is not None:
        raise AssertionError(f"the Stripe booking of {bad} does not balance")


#: the characters of onetrip.ids' ids (Crockford base32, lower case)
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rest = divmod(value, 32)
        chars.append(ID_ALPHABET[rest])
    return "".join(reversed(chars))


def new_id_head() -> dict[str, Any]:
    """The parameters of `_id_expression`: the prefix and time of a fresh `new_id`,
    ten characters of fresh randomness (never one a process counts up from), and a
    random base for the last six."""
    time_part = new_id("txn")[4:14]
    return {
        "id_head": f"txn_{time_part}{_base32(secrets.randbits(50), 10)}",
        "id_base": secrets.randbits(29),
        "alphabet": ID_ALPHABET,
    }


def _stored_now(d: _Dialect) -> Any:
    now = utcnow()
    # SQLite keeps timestamps as SQLAlchemy writes them: naive UTC text.
    return now if d.pg else now.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


# --- a payout reaches the bank ----------------------------------------------------------


async def book_payout_arrival(
    session: AsyncSession, payout_id: str, bank_record_id: str
) -> LedgerTransaction:
    """Dr platform:bank / Cr platform:bank_in_transit: the Stripe payout `payout_id`
    (booked from a Stripe import) arrived as the bank statement line `bank_record_id`
    (an external record of a bank source). Books once: calling again with the same line
    returns the same transaction; with another line raises Conflict
    (payout_already_arrived). The bank's amount is what reached the bank; when it
    differs from the payout's (a match within a tolerance), the difference goes to
    platform:suspense, to be resolved there. Effective the line's value date (else its
    booking date), at 00:00 UTC. Never commits.
    """
    key = f"stripe:{payout_id}:arrived"
    earlier = await load_transaction(session, transactions.c.idempotency_key == key)
    if earlier is not None:
        if earlier.metadata.get("bank_record_id") != bank_record_id:
            raise Conflict(
                f"payout {payout_id} has already arrived, as bank line"
                f" {earlier.metadata.get('bank_record_id')}",
                code="payout_already_arrived",
            )
        return earlier
    payout = await load_transaction(
        session, transactions.c.idempotency_key == f"stripe:{payout_id}"
    )
    if payout is None:
        raise NotFound(
            f"Stripe payout {payout_id} is not booked (import Stripe's records first)",
            code="payout_not_booked",
        )
    in_transit = [e for e in payout.entries if e.account_code == BANK_IN_TRANSIT]
    assert len(in_transit) == 1, f"payout posting {payout.id} has no single in-transit leg"
    amount, currency = in_transit[0].amount, in_transit[0].currency
    record = (
        await session.execute(
            select(external_records).where(external_records.c.id == bank_record_id)
        )
    ).first()
    if record is None or record.source not in BANK_SOURCES:
        raise NotFound(f"no bank statement line {bank_record_id}", code="bank_record_not_found")
    if record.currency != currency:
        raise ValidationFailed(
            f"bank line {bank_record_id} is in {record.currency}, payout {payout_id} in {currency}",
            code="payout_currency_differs",
        )
    if record.amount == 0 or (record.amount > 0) != (amount > 0):
        raise ValidationFailed(
            f"bank line {bank_record_id} ({record.amount}) cannot be payout {payout_id} ({amount})",
            code="payout_amount_differs",
        )
    lines = [Line(BANK, record.amount, currency), Line(BANK_IN_TRANSIT, -amount, currency)]
    if record.amount != amount:
        await ensure_platform_accounts(session, currency)
        lines.append(Line(SUSPENSE, amount - record.amount, currency))
    day = record.value_on or record.booked_on
    return await post_transaction(
        session,
        idempotency_key=key,
        description=f"Stripe payout {payout_id} arrived at the bank ({record.external_id})",
        lines=lines,
        effective_at=datetime.combine(day, time(0), tzinfo=UTC),
        metadata={
            "kind": "stripe_payout_arrival",
            "payout_id": payout_id,
            "bank_record_id": bank_record_id,
            "payout_transaction_id": payout.id,
            "difference": amount - record.amount,
        },
        external_ref=record.external_id,
        external_source=record.namespace,
    )
