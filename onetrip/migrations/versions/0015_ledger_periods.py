"""Closed ledger periods and corrections (issue 10).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 16:30:00
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_CORRECTS_FK = "fk_ledger_transactions_corrects_id_ledger_transactions"


def upgrade() -> None:
    op.create_table(
        "ledger_periods",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("starts_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(length=100), nullable=False),
        sa.Column("closed_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('month', 'day')", name=op.f("ck_ledger_periods_kind")),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_ledger_periods_bounds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_periods")),
        sa.UniqueConstraint("department", "period", name="uq_ledger_periods_department_period"),
    )
    op.create_index(
        "ix_ledger_periods_department_starts",
        "ledger_periods",
        ["department", "starts_at"],
        unique=False,
    )
    # Plain ALTER TABLE ADD COLUMN, never batch mode (see 0003: a batch would copy
    # ledger_transactions and drop its append-only triggers on SQLite). SQLite cannot add
    # a constraint to an existing table, but it accepts the reference inline with the new
    # column; PostgreSQL gets the named foreign key the models describe.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE ledger_transactions ADD COLUMN corrects_id VARCHAR(40)"
            f" CONSTRAINT {_CORRECTS_FK} REFERENCES ledger_transactions (id)"
        )
    else:
        op.add_column(
            "ledger_transactions", sa.Column("corrects_id", sa.String(length=40), nullable=True)
        )
        op.create_foreign_key(
            _CORRECTS_FK, "ledger_transactions", "ledger_transactions", ["corrects_id"], ["id"]
        )
    op.create_index(
        "ix_ledger_transactions_corrects", "ledger_transactions", ["corrects_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_transactions_corrects", table_name="ledger_transactions")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite refuses to drop a column that is part of a foreign key, and a batch
        # copy would drop the triggers: the (then unused, nullable) column stays.
        pass
    else:
        op.drop_constraint(_CORRECTS_FK, "ledger_transactions", type_="foreignkey")
        op.drop_column("ledger_transactions", "corrects_id")
    op.drop_index("ix_ledger_periods_department_starts", table_name="ledger_periods")
    op.drop_table("ledger_periods")
