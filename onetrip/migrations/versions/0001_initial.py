"""Initial schema (TEMPORARY: built from the models until the real migration is generated)

Revision ID: 0001
Revises:
"""

from alembic import op

from onetrip.schema import load_models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    load_models().create_all(bind)
    if bind.dialect.name == "postgresql":
        from ledger.models import POSTGRES_DDL

        for statement in POSTGRES_DDL:
            op.execute(statement)
    elif bind.dialect.name == "sqlite":
        from ledger.models import SQLITE_DDL

        for statement in SQLITE_DDL:
            op.execute(statement)


def downgrade() -> None:
    load_models().drop_all(op.get_bind())
