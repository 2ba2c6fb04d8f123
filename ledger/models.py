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

    __table_args__ = (
        # The ref first: reconciliation looks a ref up with or without its source.
        Index("ix_ledger_transactions_external_ref", "external_ref", "external_source"),
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
    import_id: Mapped[str] = mapped_column(String(40), ForeignKey("reconciliation_imports.id"))
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
        Index("ix_reconciliation_external_records_end_to_end", "end_to_end_id"),
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


accounts = Account.__table__
transactions = Transaction.__table__
entries = Entry.__table__
imports = ReconciliationImport.__table__
external_records = ExternalRecord.__table__
profiles = BankProfile.__table__
