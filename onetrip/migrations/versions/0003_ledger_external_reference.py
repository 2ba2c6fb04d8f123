"""Ledger: an indexed external reference on transactions (reconciliation matches on it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


# Plain ALTER TABLE ADD COLUMN on both dialects, never batch mode: on SQLite a batch
# would copy ledger_transactions into a new table and silently drop its append-only
# triggers (0001). Adding a nullable column without a default rewrites no row, so the
# BEFORE UPDATE triggers do not fire, and on PostgreSQL it only touches the catalogue.
def upgrade() -> None:
    op.add_column(
        "ledger_transactions", sa.Column("external_ref", sa.String(length=255), nullable=True)
    )
    op.add_column(
        "ledger_transactions", sa.Column("external_source", sa.String(length=64), nullable=True)
    )
    # Built inside the migration's transaction, so not CONCURRENTLY: it blocks postings
    # while it builds, which is brief before release (a large table would want
    # op.get_context().autocommit_block() and postgresql_concurrently=True).
    op.create_index(
        "ix_ledger_transactions_external_ref",
        "ledger_transactions",
        ["external_ref", "external_source"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_transactions_external_ref", table_name="ledger_transactions")
    # DROP COLUMN: SQLite ≥ 3.35 does it in place too, keeping the triggers.
    op.drop_column("ledger_transactions", "external_source")
    op.drop_column("ledger_transactions", "external_ref")
