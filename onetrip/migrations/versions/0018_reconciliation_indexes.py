"""Reconciliation: drop the end-to-end id index of external records (issue 10).

Nothing looks a record up by its end-to-end id (runs read a bank statement's lines by
date and match them in Python), and every stored line paid for the index: one btree
entry less per record at a million Stripe lines an import (benchmarks/RESULTS.md).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 18:00:00
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(
        "ix_reconciliation_external_records_end_to_end",
        table_name="reconciliation_external_records",
    )


def downgrade() -> None:
    op.create_index(
        "ix_reconciliation_external_records_end_to_end",
        "reconciliation_external_records",
        ["end_to_end_id"],
        unique=False,
    )
