"""The double-entry journal: accounts, transactions and their entries.

Amounts are signed integer minor units: a debit is positive, a credit negative, so the
entries of every transaction sum to zero per currency and an account's balance is
simply the sum of its entries (debits − credits). The database enforces what it can on
its own: entries carry their account's currency (a composite foreign key), are never
zero, and — on PostgreSQL — every transaction balances at commit and nothing already
written can be changed or deleted (see POSTGRES_DDL and SQLITE_DDL below).
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


# PostgreSQL: run by the initial migration after the tables exist.
POSTGRES_DDL: list[str] = [
    # One check, used at commit for every new transaction (and for entries added later
    # to an existing one, below): a transaction has at least two entries and they sum
    # to zero in each currency.
    """
    CREATE OR REPLACE FUNCTION ledger_assert_balanced(txn_id text) RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE
        entry_count bigint;
        unbalanced boolean;
    BEGIN
        SELECT coalesce(sum(per_currency.entries), 0),
               coalesce(bool_or(per_currency.total <> 0), false)
          INTO entry_count, unbalanced
          FROM (SELECT count(*) AS entries, sum(amount) AS total
                  FROM ledger_entries
                 WHERE transaction_id = txn_id
                 GROUP BY currency) AS per_currency;
        IF entry_count < 2 THEN
            RAISE EXCEPTION 'ledger transaction % has % entries; at least 2 are required',
                txn_id, entry_count
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transaction_balanced';
        END IF;
        IF unbalanced THEN
            RAISE EXCEPTION 'ledger transaction % does not sum to zero in every currency', txn_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transaction_balanced';
        END IF;
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION ledger_transaction_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM ledger_assert_balanced(NEW.id);
        RETURN NULL;
    END
    $$
    """,
    # Entries added to a transaction of an earlier database transaction (which no
    # ledger code does: it writes a transaction and its entries in one statement) are
    # checked once per statement, through its transition table. Entries of a
    # transaction created in this database transaction are left to that transaction's
    # deferred check at commit: one check per transaction, however many entries
    # (benchmarks/RESULTS.md, L3). xmin is the creating transaction's id; a row
    # created in a savepoint carries the savepoint's, and is checked here too, at the
    # end of the statement (stricter, never looser). The function keeps its old name,
    # which the initial migration's downgrade drops.
    """
    CREATE OR REPLACE FUNCTION ledger_entry_inserted() RETURNS trigger
    LANGUAGE plpgsql
    -- The plan below is cached per connection; planned while ledger_transactions was
    -- still empty it would otherwise scan the whole table on every statement forever
    -- after (measured: batches 3x slower within a minute). Index lookups only.
    SET enable_seqscan = off
    AS $$
    DECLARE
        txn_id text;
    BEGIN
        FOR txn_id IN
            SELECT t.id
              FROM ledger_transactions t
             WHERE t.id = ANY(ARRAY(SELECT DISTINCT transaction_id FROM new_entries))
               AND t.xmin <> pg_current_xact_id()::xid
        LOOP
            PERFORM ledger_assert_balanced(txn_id);
        END LOOP;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_transactions_balanced
        AFTER INSERT ON ledger_transactions
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ledger_transaction_inserted()
    """,
    """
    CREATE TRIGGER ledger_entries_balanced
        AFTER INSERT ON ledger_entries
        REFERENCING NEW TABLE AS new_entries
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_inserted()
    """,
    # Append-only: corrections are reversing transactions, never edits.
    """
    CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused (post a reversing transaction instead)',
            TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER ledger_entries_append_only
        BEFORE UPDATE OR DELETE ON ledger_entries
        FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
    """,
    """
    CREATE TRIGGER ledger_transactions_append_only
        BEFORE UPDATE OR DELETE ON ledger_transactions
        FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
    """,
]

# SQLite has no deferred checks; it still refuses edits to the journal.
SQLITE_DDL: list[str] = [
    f"""
    CREATE TRIGGER {table}_no_{op.lower()}
    BEFORE {op} ON {table}
    BEGIN
        SELECT RAISE(ABORT, '{table} is append-only: {op} refused');
    END
    """
    for table in ("ledger_entries", "ledger_transactions")
    for op in ("UPDATE", "DELETE")
]
