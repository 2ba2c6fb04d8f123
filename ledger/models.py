"""The double-entry journal: accounts, transactions and their entries.

Amounts are signed integer minor units: a debit is positive, a credit negative, so the
entries of every transaction sum to zero per currency and an account's balance is
simply the sum of its entries (debits − credits). The database enforces what it can on
its own: entries carry their account's currency (a composite foreign key), are never
zero, and — on PostgreSQL — every transaction balances at commit and nothing already
written can be changed or deleted (triggers created by the migrations, see
onetrip/migrations/versions/0001_initial_schema.py).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from onetrip.db import Base, BigIntPK, UTCDateTime

ACCOUNT_KINDS = ("asset", "liability", "income", "expense", "equity")


class Account(Base):
    __tablename__ = "ledger_accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    code: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    # The department code owning the account; null for the platform's own accounts.
    department: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(16))
    # Cached sum of the account's entries; updated in the same transaction as them.
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # Cached sums of the account's debit entries and (as a positive number) its credit
    # entries, for the trial balance without reading the entries (issue 10, F4). Kept
    # by a database trigger on ledger_entries (migration 0016), whoever writes them.
    debits: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    credits: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("code", "currency", name="uq_ledger_accounts_code_currency"),
        # The target of the entries' composite foreign key (entry currency = account's).
        UniqueConstraint("id", "currency", name="uq_ledger_accounts_id_currency"),
        CheckConstraint(f"kind IN {ACCOUNT_KINDS!r}", name="kind"),
        CheckConstraint("length(currency) = 3", name="currency"),
        Index("ix_ledger_accounts_department", "department", "id"),
    )


class Transaction(Base):
    __tablename__ = "ledger_transactions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(500))
    # When the money moved (what reports and `as_of` use) vs when we wrote it down.
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # A transaction is reversed at most once (a correction is one reversing entry).
    reverses_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("ledger_transactions.id"), unique=True
    )
    # The outside record this transaction books (a Stripe balance transaction or payout
    # id, a bank end-to-end id), for reconciliation to match on; and the system whose
    # namespace that id lives in ("stripe", "bank:ICBC"), since bank end-to-end ids are
    # chosen by whoever sent the money and repeat across banks. Not unique: one Stripe
    # payout settles many of our transactions.
    external_ref: Mapped[str | None] = mapped_column(String(255))
    external_source: Mapped[str | None] = mapped_column(String(64))
    # The transaction this one corrects (posted in an open period because the corrected
    # one lies in a closed period, or a reconciliation adjustment); several may correct
    # one, unlike reverses_id.
    corrects_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("ledger_transactions.id")
    )

    __table_args__ = (
        # The ref first: reconciliation looks a ref up with or without its source.
        Index("ix_ledger_transactions_external_ref", "external_ref", "external_source"),
        Index("ix_ledger_transactions_corrects", "corrects_id"),
    )


class Entry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(40), ForeignKey("ledger_transactions.id"))
    account_id: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Copied from the transaction so balances `as_of` a time need no join.
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "currency"],
            ["ledger_accounts.id", "ledger_accounts.currency"],
            name="fk_ledger_entries_account_currency",
        ),
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_ledger_entries_transaction", "transaction_id"),
        Index("ix_ledger_entries_account", "account_id", "id"),
        Index("ix_ledger_entries_account_effective", "account_id", "effective_at"),
    )


# --- reconciliation: what Stripe and the banks say happened (issue 10) ----------------

IMPORT_SOURCES = ("stripe_balance", "stripe_payout_recon", "bank_csv", "camt053")


class ReconciliationImport(Base):
    """One import of external records (a file, or a pull from the Stripe API): who,
    when, what, and how many of its lines were new. Written in the same transaction as
    its records, so a refused import leaves neither behind."""

    __tablename__ = "reconciliation_imports"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    # Whose id space the records' external ids live in: "stripe", "bank:ICBC", …
    namespace: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64))
    profile: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str | None] = mapped_column(String(3))
    # The API key id, or "cli:<operator>" for `onetrip reconcile import`.
    imported_by: Mapped[str] = mapped_column(String(100))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lines: Mapped[int] = mapped_column(Integer)
    new_records: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)
    # {currency: {"lines": n, "amount": minor units}} over every line of the import.
    totals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        CheckConstraint(f"source IN {IMPORT_SOURCES!r}", name="source"),
        Index("ix_reconciliation_imports_sha256", "sha256"),
    )


class ExternalRecord(Base):
    """One line of a Stripe report, a Stripe balance transaction or a bank statement,
    stored once: (source, namespace, external_id) is unique, so importing the same
    line again changes nothing."""

    __tablename__ = "reconciliation_external_records"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Its import (reconciliation_imports.id), checked by triggers once per statement rather
    # than by a foreign key once per row (migration 0020).
    import_id: Mapped[str] = mapped_column(String(40))
    line_no: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32))
    namespace: Mapped[str] = mapped_column(String(64))
    # Stripe balance transaction id, the bank's entry reference, or "sha256:…" of the
    # line when the bank gives no id of its own.
    external_id: Mapped[str] = mapped_column(String(255))
    booked_on: Mapped[date] = mapped_column(Date)
    value_on: Mapped[date | None] = mapped_column(Date)
    # Signed minor units: money in (credit to our account / Stripe gross) is positive.
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int | None] = mapped_column(BigInteger)
    net: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    counterparty: Mapped[str | None] = mapped_column(String(300))
    reference: Mapped[str | None] = mapped_column(String(500))
    end_to_end_id: Mapped[str | None] = mapped_column(String(100))
    payout_id: Mapped[str | None] = mapped_column(String(100))
    payment_id: Mapped[str | None] = mapped_column(String(100))
    # Stripe: the charge/refund/payout the balance transaction is about, and its
    # reporting category (charge, refund, fee, payout, …); bank: null.
    source_id: Mapped[str | None] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(64))
    # Stripe: when the balance transaction happened (its `created`); bank: null.
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint(
            "source",
            "namespace",
            "external_id",
            name="uq_reconciliation_external_records_source_external_id",
        ),
        CheckConstraint("length(currency) = 3", name="currency"),
        Index("ix_reconciliation_external_records_import", "import_id", "line_no"),
        Index("ix_reconciliation_external_records_payment", "payment_id"),
        Index("ix_reconciliation_external_records_payout", "payout_id"),
        Index("ix_reconciliation_external_records_booked", "currency", "booked_on"),
    )


class BankProfile(Base):
    """How to read one bank's CSV statement: which column holds what, and how dates,
    amounts, signs and the text encoding are written."""

    __tablename__ = "reconciliation_profiles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    bank: Mapped[str] = mapped_column(String(32))
    encoding: Mapped[str] = mapped_column(String(32))
    delimiter: Mapped[str] = mapped_column(String(4))
    date_format: Mapped[str] = mapped_column(String(32))
    decimal_separator: Mapped[str] = mapped_column(String(1))
    thousands_separator: Mapped[str | None] = mapped_column(String(1))
    # "signed": one amount column (+ money in); "debit_credit": two columns.
    sign_convention: Mapped[str] = mapped_column(String(16))
    # Our field -> the header of the bank's column.
    columns: Mapped[dict[str, Any]] = mapped_column(JSON)
    currency: Mapped[str | None] = mapped_column(String(3))
    skip_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("sign_convention IN ('signed', 'debit_credit')", name="sign_convention"),
    )


# --- closed periods (issue 10, F3) ----------------------------------------------------

PERIOD_KINDS = ("month", "day")


class LedgerPeriod(Base):
    """A department's closed day or month: postings effective in [starts_at, ends_at)
    on any of its accounts are refused. The bounds are the period's midnights in the
    department's own timezone at the time of closing, stored in UTC."""

    __tablename__ = "ledger_periods"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    department: Mapped[str] = mapped_column(String(32))
    # "2026-11" (a month) or "2026-11-30" (a day), in the department's calendar.
    period: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The API key id ("key:…") or "cli:<operator>".
    closed_by: Mapped[str] = mapped_column(String(100))
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("department", "period", name="uq_ledger_periods_department_period"),
        CheckConstraint(f"kind IN {PERIOD_KINDS!r}", name="kind"),
        CheckConstraint("starts_at < ends_at", name="bounds"),
        Index("ix_ledger_periods_department_starts", "department", "starts_at"),
    )


# --- departments as the ledger knows them (issue 10, F1) --------------------------------

FEES_BORNE_BY = ("platform", "department")


class LedgerDepartment(Base):
    """The ledger's own copy of a department's settings (the ledger never reads
    payments): its time zone, for period cut-offs, and who bears Stripe's fees. Written
    by open_department_accounts when payments creates the department."""

    __tablename__ = "ledger_departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # "platform": Stripe's fee on the department's payments is the platform's expense;
    # "department": it is taken from what the department is owed (fees payable).
    stripe_fees_borne_by: Mapped[str] = mapped_column(String(16), default="platform")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(f"stripe_fees_borne_by IN {FEES_BORNE_BY!r}", name="stripe_fees_borne_by"),
    )


class StripeBooking(Base):
    """A Stripe import whose movements the ledger has booked (once: the booking claims
    its import here first), and what it booked: movements per kind, transactions."""

    __tablename__ = "ledger_stripe_bookings"

    import_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    booked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    movements: Mapped[int] = mapped_column(Integer)
    postings: Mapped[int] = mapped_column(Integer)
    by_kind: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- reconciliation runs, matches and the exceptions queue (issue 10, F2) -------------

RUN_STATUSES = ("running", "completed", "failed")
EXCEPTION_REASONS = (
    "missing_in_bank",
    "missing_in_ledger",
    "missing_in_stripe",
    "amount_differs",
    "outside_date_window",
    "duplicate",
    "ambiguous",
)
EXCEPTION_STATUSES = ("open", "resolved")


class ReconciliationRun(Base):
    """One reconciliation run: who started it, over which dates (and department), with
    which rules, and what it found. A dry run is recorded too (`dry_run`), with the
    counts it would have produced; it writes no match and no exception."""

    __tablename__ = "reconciliation_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    department: Mapped[str | None] = mapped_column(String(32))
    date_from: Mapped[date] = mapped_column(Date)
    date_to: Mapped[date] = mapped_column(Date)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # The rules as applied: [{name, tolerance, window_days, score}], so a run can be
    # explained later even when the defaults change.
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))
    # Over the run's range after the run: pairs matched, our items nobody else has,
    # their items we do not have, and pairs that disagree (amount, date, duplicates…).
    matched: Mapped[int] = mapped_column(Integer, default=0)
    unmatched_ledger: Mapped[int] = mapped_column(Integer, default=0)
    unmatched_external: Mapped[int] = mapped_column(Integer, default=0)
    discrepancies: Mapped[int] = mapped_column(Integer, default=0)
    # What this run itself added.
    new_matches: Mapped[int] = mapped_column(Integer, default=0)
    new_exceptions: Mapped[int] = mapped_column(Integer, default=0)
    # {"by_reason": {...}, "payouts": [{payout_id, gross, fees, refunds, ...}], ...}
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The API key id ("key:…") or "cli:<operator>".
    started_by: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        CheckConstraint("date_from <= date_to", name="dates"),
    )


class ReconciliationMatch(Base):
    """Our side of a money movement paired with theirs: a ledger transaction (or a
    Stripe payout) and the external record that shows it. Each left item is matched
    once (unique); a right item is matched once too, except a bank line that settles
    several payouts at once (many-to-one)."""

    __tablename__ = "reconciliation_matches"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # The run that made it (null when staff matched it by hand, see exception_id).
    run_id: Mapped[str | None] = mapped_column(String(40))
    exception_id: Mapped[str | None] = mapped_column(String(40))
    rule: Mapped[str] = mapped_column(String(32))
    score: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(300))
    # "ledger" (a transaction id) or "payout" (a Stripe payout id).
    left_kind: Mapped[str] = mapped_column(String(16))
    left_id: Mapped[str] = mapped_column(String(100))
    # An external record id (reconciliation_external_records.id).
    right_id: Mapped[str] = mapped_column(String(40))
    department: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    expected_amount: Mapped[int] = mapped_column(BigInteger)
    actual_amount: Mapped[int] = mapped_column(BigInteger)
    # The date of the left item (what a run's date range selects on).
    on_date: Mapped[date] = mapped_column(Date)
    matched_by: Mapped[str] = mapped_column(String(100))
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("left_id", name="uq_reconciliation_matches_left_id"),
        Index("ix_reconciliation_matches_right", "right_id"),
        Index("ix_reconciliation_matches_date", "on_date", "department"),
    )


class ReconciliationException(Base):
    """An item a run could not match, with the reason, the candidates it considered and,
    once staff resolve it, who did what and why. (item_id, reason) is unique: running
    again over the same dates finds the same exception, never a second one."""

    __tablename__ = "reconciliation_exceptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    # "ledger" (transaction id), "stripe" / "bank" (external record id), "payout".
    item_kind: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[str] = mapped_column(String(100))
    department: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    # The item's amount and, for amount_differs, what the other side shows.
    amount: Mapped[int] = mapped_column(BigInteger)
    counterpart_amount: Mapped[int | None] = mapped_column(BigInteger)
    on_date: Mapped[date] = mapped_column(Date)
    detail: Mapped[str] = mapped_column(String(500))
    # [{kind, id, amount, on_date, score, reason}], best first.
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolution_reason: Mapped[str | None] = mapped_column(String(500))
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The correcting transaction an `adjust` posted through platform:suspense.
    adjustment_id: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (
        UniqueConstraint("item_id", "reason", name="uq_reconciliation_exceptions_item_reason"),
        CheckConstraint(f"reason IN {EXCEPTION_REASONS!r}", name="reason"),
        CheckConstraint(f"status IN {EXCEPTION_STATUSES!r}", name="status"),
        Index("ix_reconciliation_exceptions_status", "status", "department", "id"),
        Index("ix_reconciliation_exceptions_run", "run_id", "id"),
    )


# --- finance reads at a province's scale (issue 10, F4) --------------------------------


class BalanceSnapshot(Base):
    """Every account's debit and credit totals over the entries effective before
    `cut_off` (a UTC midnight), so a trial balance `as_of` a past moment reads one row
    per account plus the entries since (ledger/snapshots.py). Derived data: a snapshot
    that a back-dated posting has made stale is ignored, then rebuilt."""

    __tablename__ = "ledger_balance_snapshots"

    cut_off: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    debits: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[int] = mapped_column(BigInteger)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SnapshotInvalidation(Base):
    """Written by the database (a trigger on ledger_entries) when entries arrive
    effective before a snapshot's cut-off could have seen them: snapshots cut off after
    `earliest` are stale until the snapshot job rebuilds them. Insert-only, so
    concurrent back-dated postings never wait for one another here."""

    __tablename__ = "ledger_snapshot_invalidations"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    earliest: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_ledger_snapshot_invalidations_earliest", "earliest"),)


accounts = Account.__table__
transactions = Transaction.__table__
entries = Entry.__table__
imports = ReconciliationImport.__table__
external_records = ExternalRecord.__table__
profiles = BankProfile.__table__
periods = LedgerPeriod.__table__
ledger_departments = LedgerDepartment.__table__
runs = ReconciliationRun.__table__
matches = ReconciliationMatch.__table__
exceptions = ReconciliationException.__table__
balance_snapshots = BalanceSnapshot.__table__
snapshot_invalidations = SnapshotInvalidation.__table__
stripe_bookings = StripeBooking.__table__
