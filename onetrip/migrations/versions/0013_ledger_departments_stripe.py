"""The ledger's departments and Stripe money movement booking (issue 10).

The ledger keeps its own copy of each department's settings (time zone, who bears
Stripe's fees), filled here from the departments that exist already. Stripe movements
are booked into ordinary ledger transactions when their import is;
ledger_stripe_bookings records each import booked (once) and what it booked. The
platform accounts they need are opened on first use (ensure_platform_accounts).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 16:30:00
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_departments",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("stripe_fees_borne_by", sa.String(length=16), nullable=False),
        sa.Column("updated_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "stripe_fees_borne_by IN ('platform', 'department')",
            name=op.f("ck_ledger_departments_stripe_fees_borne_by"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_ledger_departments")),
    )
    op.execute(
        """
        INSERT INTO ledger_departments (code, name, timezone, stripe_fees_borne_by, updated_at)
        SELECT code, name, coalesce(timezone, 'Asia/Shanghai'),
               coalesce(stripe_fees_borne_by, 'platform'), created_at
          FROM departments
        """
    )
    op.create_table(
        "ledger_stripe_bookings",
        sa.Column("import_id", sa.String(length=40), nullable=False),
        sa.Column("booked_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("movements", sa.Integer(), nullable=False),
        sa.Column("postings", sa.Integer(), nullable=False),
        sa.Column("by_kind", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("import_id", name=op.f("pk_ledger_stripe_bookings")),
    )


def downgrade() -> None:
    op.drop_table("ledger_stripe_bookings")
    op.drop_table("ledger_departments")
