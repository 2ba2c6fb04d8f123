"""Departments: a contact email (told of a failing webhook endpoint, issue 9) and who
bears Stripe's processing fees (issue 10).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 16:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_email", sa.String(length=254), nullable=True))
        batch_op.add_column(
            sa.Column(
                "stripe_fees_borne_by",
                sa.String(length=16),
                server_default="platform",
                nullable=False,
            )
        )
        batch_op.create_check_constraint(
            "stripe_fees_borne_by", "stripe_fees_borne_by IN ('platform', 'department')"
        )


def downgrade() -> None:
    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.drop_constraint("ck_departments_stripe_fees_borne_by", type_="check")
        batch_op.drop_column("stripe_fees_borne_by")
        batch_op.drop_column("contact_email")
