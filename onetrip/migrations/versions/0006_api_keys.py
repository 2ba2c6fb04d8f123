"""API keys: a name (was `label`), when the key was last used, an optional expiry.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column(
            "label",
            new_column_name="name",
            existing_type=sa.String(length=200),
            existing_nullable=True,
        )
        batch_op.add_column(
            sa.Column("last_used_at", onetrip.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("expires_at", onetrip.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("last_used_at")
        batch_op.alter_column(
            "name",
            new_column_name="label",
            existing_type=sa.String(length=200),
            existing_nullable=True,
        )
