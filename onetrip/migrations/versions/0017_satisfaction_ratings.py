"""Applicants' satisfaction ratings (issue 9).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 16:30:00
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "satisfaction_ratings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.String(length=500), nullable=True),
        sa.Column("created_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "score BETWEEN 1 AND 5", name=op.f("ck_satisfaction_ratings_score_range")
        ),
        sa.ForeignKeyConstraint(
            ["license_id"],
            ["licenses.id"],
            name=op.f("fk_satisfaction_ratings_license_id_licenses"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_satisfaction_ratings_payment_id_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_satisfaction_ratings")),
        sa.UniqueConstraint("payment_id", name="uq_satisfaction_ratings_payment"),
    )
    with op.batch_alter_table("satisfaction_ratings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_satisfaction_ratings_department_created",
            ["department", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("satisfaction_ratings", schema=None) as batch_op:
        batch_op.drop_index("ix_satisfaction_ratings_department_created")
    op.drop_table("satisfaction_ratings")
