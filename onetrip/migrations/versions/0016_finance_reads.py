"""Finance reads at a province's scale: indexes and daily balance snapshots (issue 10).

- payments: indexes matching the list's filters in its cursor order (status, id),
  (department, status, id) and (reference, id);
- ledger_accounts.debits / credits: cached debit and credit totals, kept by a trigger on
  ledger_entries (so every writer keeps them: single postings, batches, bulk booking);
- ledger_balance_snapshots: daily per-account totals (ledger/snapshots.py);
- ledger_snapshot_invalidations: written by the same trigger when entries arrive
  effective before a snapshot's cut-off could have seen them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 16:30:00
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# The trigger as it was when this revision was written (a migration must not change when
# ledger/snapshots.py does). The 10 minutes are snapshots.LATE_MARGIN: an entry effective
# more than that before it is written is "back-dated" and invalidates what it could.
POSTGRES_DDL = [
    """
    CREATE OR REPLACE FUNCTION ledger_entries_totals() RETURNS trigger
    LANGUAGE plpgsql
    -- Plans are cached per connection: index lookups only, whatever the tables' sizes
    -- were when it was first planned (see ledger_entry_inserted in 0001).
    SET enable_seqscan = off
    AS $$
    DECLARE
        earliest timestamptz;
    BEGIN
        -- Lock the accounts in id order, as every posting does, before updating them: a
        -- writer that inserts entries before touching the accounts (bulk booking) would
        -- otherwise lock them in the join's order and could deadlock with a posting.
        PERFORM 1
           FROM ledger_accounts
          WHERE id = ANY(ARRAY(SELECT DISTINCT account_id FROM new_entries))
          ORDER BY id
            FOR NO KEY UPDATE;
        UPDATE ledger_accounts a
           SET debits = a.debits + t.debits,
               credits = a.credits + t.credits
          FROM (SELECT account_id,
                       coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS debits,
                       coalesce(-sum(amount) FILTER (WHERE amount < 0), 0) AS credits
                  FROM new_entries
                 GROUP BY account_id) t
         WHERE a.id = t.account_id;
        SELECT min(effective_at) INTO earliest FROM new_entries;
        IF earliest < clock_timestamp() - interval '10 minutes'
           OR earliest < (SELECT max(cut_off) FROM ledger_balance_snapshots) THEN
            -- Takes ROW EXCLUSIVE on the table: the snapshot job's SHARE ROW EXCLUSIVE
            -- waits for this transaction, or this one for the job (snapshots.py).
            INSERT INTO ledger_snapshot_invalidations (earliest) VALUES (earliest);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER ledger_entries_totals
        AFTER INSERT ON ledger_entries
        REFERENCING NEW TABLE AS new_entries
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_totals()
    """,
]

SQLITE_DDL = [
    """
    CREATE TRIGGER ledger_entries_totals
    AFTER INSERT ON ledger_entries
    BEGIN
        UPDATE ledger_accounts
           SET debits = debits + (CASE WHEN NEW.amount > 0 THEN NEW.amount ELSE 0 END),
               credits = credits + (CASE WHEN NEW.amount < 0 THEN -NEW.amount ELSE 0 END)
         WHERE id = NEW.account_id;
        INSERT INTO ledger_snapshot_invalidations (earliest)
        SELECT NEW.effective_at
         WHERE EXISTS (SELECT 1 FROM ledger_balance_snapshots WHERE cut_off > NEW.effective_at);
    END
    """,
]

_PAYMENT_INDEXES = (
    ("ix_payments_status_id", ["status", "id"]),
    ("ix_payments_department_status_id", ["department", "status", "id"]),
    ("ix_payments_reference_id", ["reference", "id"]),
)


def upgrade() -> None:
    for name, columns in _PAYMENT_INDEXES:
        op.create_index(name, "payments", columns, unique=False)
    # Plain ADD COLUMN, never batch mode (a batch copies the table; see 0003).
    op.add_column(
        "ledger_accounts",
        sa.Column("debits", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "ledger_accounts",
        sa.Column("credits", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_table(
        "ledger_balance_snapshots",
        sa.Column("cut_off", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("debits", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("taken_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cut_off", "account_id", name=op.f("pk_ledger_balance_snapshots")),
    )
    op.create_table(
        "ledger_snapshot_invalidations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("earliest", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_snapshot_invalidations")),
    )
    op.create_index(
        "ix_ledger_snapshot_invalidations_earliest",
        "ledger_snapshot_invalidations",
        ["earliest"],
        unique=False,
    )
    # The totals of the entries written before this revision.
    op.execute(
        """
        UPDATE ledger_accounts
           SET debits = coalesce((SELECT sum(e.amount) FROM ledger_entries e
                                   WHERE e.account_id = ledger_accounts.id
                                     AND e.amount > 0), 0),
               credits = coalesce((SELECT -sum(e.amount) FROM ledger_entries e
                                    WHERE e.account_id = ledger_accounts.id
                                      AND e.amount < 0), 0)
        """
    )
    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_DDL if dialect == "postgresql" else SQLITE_DDL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_totals ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_entries_totals()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_totals")
    op.drop_index(
        "ix_ledger_snapshot_invalidations_earliest", table_name="ledger_snapshot_invalidations"
    )
    op.drop_table("ledger_snapshot_invalidations")
    op.drop_table("ledger_balance_snapshots")
    op.drop_column("ledger_accounts", "credits")
    op.drop_column("ledger_accounts", "debits")
    for name, _ in reversed(_PAYMENT_INDEXES):
        op.drop_index(name, table_name="payments")
