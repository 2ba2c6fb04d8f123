"""Reconciliation runs, matches and exceptions (issue 10).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 16:30:00
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

REASONS = (
    "'missing_in_bank', 'missing_in_ledger', 'missing_in_stripe', 'amount_differs', "
    "'outside_date_window', 'duplicate', 'ambiguous'"
)


def upgrade() -> None:
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=True),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("unmatched_ledger", sa.Integer(), nullable=False),
        sa.Column("unmatched_external", sa.Integer(), nullable=False),
        sa.Column("discrepancies", sa.Integer(), nullable=False),
        sa.Column("new_matches", sa.Integer(), nullable=False),
        sa.Column("new_exceptions", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("started_by", sa.String(length=100), nullable=False),
        sa.Column("started_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')",
            name=op.f("ck_reconciliation_runs_status"),
        ),
        sa.CheckConstraint("date_from <= date_to", name=op.f("ck_reconciliation_runs_dates")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    op.create_table(
        "reconciliation_matches",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("exception_id", sa.String(length=40), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("left_kind", sa.String(length=16), nullable=False),
        sa.Column("left_id", sa.String(length=100), nullable=False),
        sa.Column("right_id", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expected_amount", sa.BigInteger(), nullable=False),
        sa.Column("actual_amount", sa.BigInteger(), nullable=False),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("matched_by", sa.String(length=100), nullable=False),
        sa.Column("matched_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_matches")),
        sa.UniqueConstraint("left_id", name="uq_reconciliation_matches_left_id"),
    )
    op.create_index(
        "ix_reconciliation_matches_right", "reconciliation_matches", ["right_id"], unique=False
    )
    op.create_index(
        "ix_reconciliation_matches_date",
        "reconciliation_matches",
        ["on_date", "department"],
        unique=False,
    )
    op.create_table(
        "reconciliation_exceptions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("item_kind", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=100), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("counterpart_amount", sa.BigInteger(), nullable=True),
        sa.Column("on_date", sa.Date(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("created_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("resolution_reason", sa.String(length=500), nullable=True),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        sa.Column("resolved_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("adjustment_id", sa.String(length=40), nullable=True),
        sa.CheckConstraint(
            f"reason IN ({REASONS})", name=op.f("ck_reconciliation_exceptions_reason")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'resolved')", name=op.f("ck_reconciliation_exceptions_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_exceptions")),
        sa.UniqueConstraint("item_id", "reason", name="uq_reconciliation_exceptions_item_reason"),
    )
    op.create_index(
        "ix_reconciliation_exceptions_status",
        "reconciliation_exceptions",
        ["status", "department", "id"],
        unique=False,
    )
    op.create_index(
        "ix_reconciliation_exceptions_run",
        "reconciliation_exceptions",
        ["run_id", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_reconciliation_exceptions_run", table_name="reconciliation_exceptions")
    op.drop_index("ix_reconciliation_exceptions_status", table_name="reconciliation_exceptions")
    op.drop_table("reconciliation_exceptions")
    op.drop_index("ix_reconciliation_matches_date", table_name="reconciliation_matches")
    op.drop_index("ix_reconciliation_matches_right", table_name="reconciliation_matches")
    op.drop_table("reconciliation_matches")
    op.drop_table("reconciliation_runs")
