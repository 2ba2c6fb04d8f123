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

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
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


accounts = Account.__table__
transactions = Transaction.__table__
entries = Entry.__table__
