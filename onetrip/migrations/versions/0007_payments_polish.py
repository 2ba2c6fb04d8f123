"""Payments polish (issue 7): receipts record their font, refunds and version.

A receipt drawn with the non-embedded fallback font, or showing other refunds than the
payment has now, is re-issued under the same number with the next version.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_receipts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("font", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("font_embedded", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("refund_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_receipts", schema=None) as batch_op:
        batch_op.drop_column("refund_ids")
        batch_op.drop_column("font_embedded")
        batch_op.drop_column("font")
        batch_op.drop_column("version")
