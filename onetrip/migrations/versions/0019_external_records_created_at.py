"""Reconciliation: when a Stripe movement happened, as a column of its record (issue 10).

The booking read it from each record's raw JSON (`created`, or the report's
`created_utc`) — a million JSON texts parsed per import (benchmarks/RESULTS.md). The
importers now store it; records stored before are filled in from their raw JSON here.
Bank lines keep none (a statement gives a day, `booked_on`).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 04:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_STRIPE = "source IN ('stripe_balance', 'stripe_payout_recon')"


def upgrade() -> None:
    op.add_column(
        "reconciliation_external_records",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL TimeZone = 'UTC'")  # a naive report timestamp is UTC
        balance = "to_timestamp(CAST(raw->>'created' AS bigint))"
        report = (
            "CAST(coalesce(nullif(raw->>'created_utc', ''), nullif(raw->>'created', ''))"
            " AS timestamptz)"
        )
    else:
        balance = "datetime(json_extract(raw, '$.created'), 'unixepoch') || '.000000'"
        report = (
            "datetime(coalesce(nullif(json_extract(raw, '$.created_utc'), ''),"
            " nullif(json_extract(raw, '$.created'), ''))) || '.000000'"
        )
    op.execute(
        "UPDATE reconciliation_external_records SET created_at ="
        f" CASE WHEN source = 'stripe_balance' THEN {balance} ELSE {report} END"
        f" WHERE {_STRIPE}"
    )


def downgrade() -> None:
    op.drop_column("reconciliation_external_records", "created_at")
