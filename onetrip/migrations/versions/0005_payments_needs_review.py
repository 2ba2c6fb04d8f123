"""Payments: the money received, for payments that need review.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db  # noqa: F401

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("amount_received", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("received_currency", sa.String(length=3), nullable=True))
    # Every payment that succeeded so far was booked as its full fee.
    op.execute(
        "UPDATE payments SET amount_received = amount, received_currency = currency "
        "WHERE status = 'succeeded'"
    )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("received_currency")
        batch_op.drop_column("amount_received")
