"""Ledger reconciliation: imports of external records (Stripe, bank statements), the
records themselves, and the banks' CSV mapping profiles.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 14:30:00
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_imports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("profile", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("imported_by", sa.String(length=100), nullable=False),
        sa.Column("imported_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("new_records", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "source IN ('stripe_balance', 'stripe_payout_recon', 'bank_csv', 'camt053')",
            name=op.f("ck_reconciliation_imports_source"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_imports")),
    )
    op.create_index(
        "ix_reconciliation_imports_sha256", "reconciliation_imports", ["sha256"], unique=False
    )
    op.create_table(
        "reconciliation_external_records",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("import_id", sa.String(length=40), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("value_on", sa.Date(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("net", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("counterparty", sa.String(length=300), nullable=True),
        sa.Column("reference", sa.String(length=500), nullable=True),
        sa.Column("end_to_end_id", sa.String(length=100), nullable=True),
        sa.Column("payout_id", sa.String(length=100), nullable=True),
        sa.Column("payment_id", sa.String(length=100), nullable=True),
        sa.Column("source_id", sa.String(length=100), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "length(currency) = 3", name=op.f("ck_reconciliation_external_records_currency")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["reconciliation_imports.id"],
            name=op.f("fk_reconciliation_external_records_import_id_reconciliation_imports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_external_records")),
        sa.UniqueConstraint(
            "source",
            "namespace",
            "external_id",
            name="uq_reconciliation_external_records_source_external_id",
        ),
    )
    for name, columns in (
        ("ix_reconciliation_external_records_import", ["import_id", "line_no"]),
        ("ix_reconciliation_external_records_payment", ["payment_id"]),
        ("ix_reconciliation_external_records_end_to_end", ["end_to_end_id"]),
        ("ix_reconciliation_external_records_payout", ["payout_id"]),
        ("ix_reconciliation_external_records_booked", ["currency", "booked_on"]),
    ):
        op.create_index(name, "reconciliation_external_records", columns, unique=False)
    op.create_table(
        "reconciliation_profiles",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("bank", sa.String(length=32), nullable=False),
        sa.Column("encoding", sa.String(length=32), nullable=False),
        sa.Column("delimiter", sa.String(length=4), nullable=False),
        sa.Column("date_format", sa.String(length=32), nullable=False),
        sa.Column("decimal_separator", sa.String(length=1), nullable=False),
        sa.Column("thousands_separator", sa.String(length=1), nullable=True),
        sa.Column("sign_convention", sa.String(length=16), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("skip_rows", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "sign_convention IN ('signed', 'debit_credit')",
            name=op.f("ck_reconciliation_profiles_sign_convention"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_profiles")),
        sa.UniqueConstraint("name", name=op.f("uq_reconciliation_profiles_name")),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_profiles")
    for name in (
        "ix_reconciliation_external_records_booked",
        "ix_reconciliation_external_records_payout",
        "ix_reconciliation_external_records_end_to_end",
        "ix_reconciliation_external_records_payment",
        "ix_reconciliation_external_records_import",
    ):
        op.drop_index(name, table_name="reconciliation_external_records")
    op.drop_table("reconciliation_external_records")
    op.drop_index("ix_reconciliation_imports_sha256", table_name="reconciliation_imports")
    op.drop_table("reconciliation_imports")
