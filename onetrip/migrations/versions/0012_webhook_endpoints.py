"""Department webhook endpoints and per-payment sequence numbers (issue 9).

The sequence number of a delivery is counted from the outbox (its payment's events up
to it, on ix_outbox_events_payment), so it needs no table of its own.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 16:30:00
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=32), nullable=True),
        sa.Column("disabled_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column("previous_secret_until", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failing_since", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("warned_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_endpoints_department", ["department", "id"], unique=False)
        batch_op.create_index("ix_webhook_endpoints_failing", ["failing_since"], unique=False)
        batch_op.create_index(
            "ix_webhook_endpoints_previous_secret", ["previous_secret_until"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_endpoints_previous_secret")
        batch_op.drop_index("ix_webhook_endpoints_failing")
        batch_op.drop_index("ix_webhook_endpoints_department")
    op.drop_table("webhook_endpoints")
