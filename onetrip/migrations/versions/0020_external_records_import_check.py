"""Reconciliation: a record's import checked once per statement, not once per line (issue 10).

The foreign key from reconciliation_external_records.import_id to its import ran one
lookup a row: 3.9 s of a million-line import's 22 s on PostgreSQL (benchmarks/RESULTS.md),
for a reference that one code path writes, in the transaction that creates the import.
The same rule now holds by triggers instead:

- PostgreSQL: after each INSERT or UPDATE statement on the records, their distinct
  import ids (one, for an import) are looked up and locked (FOR KEY SHARE, as the
  foreign key would), in the statement's transition table; an import that records
  refer to cannot be deleted or change its id.
- SQLite (embedded, small files): the same checks, row by row, before each change.

Either way a missing import raises, and the statement (the whole import) fails. One
difference from the foreign key: TRUNCATE of reconciliation_imports alone is no longer
refused (row triggers do not see it; the tests' cleanup truncates it beside others).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 14:40:00
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_RECORDS = "reconciliation_external_records"
_FK = {
    "postgresql": "fk_reconciliation_external_records_import_id_reconcilia_2f2d",
    "sqlite": "fk_reconciliation_external_records_import_id_reconciliation_imports",
}

PG_DDL = [
    """
    CREATE FUNCTION reconciliation_records_import_check() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        missing text;
    BEGIN
        -- Lock the imports referred to, as a foreign key would: an import cannot be
        -- deleted while a transaction that stores its records is open.
        PERFORM 1 FROM reconciliation_imports i
          WHERE i.id IN (SELECT DISTINCT n.import_id FROM new_records n)
          ORDER BY i.id FOR KEY SHARE OF i;
        SELECT n.import_id INTO missing
          FROM (SELECT DISTINCT import_id FROM new_records) n
         WHERE NOT EXISTS (SELECT 1 FROM reconciliation_imports i WHERE i.id = n.import_id)
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'reconciliation_external_records: no import %', missing
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER reconciliation_records_import_inserted
        AFTER INSERT ON reconciliation_external_records
        REFERENCING NEW TABLE AS new_records
        FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_records_import_check()
    """,
    """
    CREATE TRIGGER reconciliation_records_import_updated
        AFTER UPDATE ON reconciliation_external_records
        REFERENCING NEW TABLE AS new_records
        FOR EACH STATEMENT EXECUTE FUNCTION reconciliation_records_import_check()
    """,
    """
    CREATE FUNCTION reconciliation_import_held() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF (TG_OP = 'DELETE' OR NEW.id <> OLD.id) AND EXISTS (
            SELECT 1 FROM reconciliation_external_records r WHERE r.import_id = OLD.id
        ) THEN
            RAISE EXCEPTION 'reconciliation_imports: import % has records: % refused',
                OLD.id, TG_OP
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER reconciliation_imports_held
        BEFORE UPDATE OF id OR DELETE ON reconciliation_imports
        FOR EACH ROW EXECUTE FUNCTION reconciliation_import_held()
    """,
]
PG_DROP = [
    "DROP TRIGGER reconciliation_imports_held ON reconciliation_imports",
    "DROP FUNCTION reconciliation_import_held()",
    f"DROP TRIGGER reconciliation_records_import_updated ON {_RECORDS}",
    f"DROP TRIGGER reconciliation_records_import_inserted ON {_RECORDS}",
    "DROP FUNCTION reconciliation_records_import_check()",
]

_MISSING = "NOT EXISTS (SELECT 1 FROM reconciliation_imports i WHERE i.id = NEW.import_id)"
_HELD = f"EXISTS (SELECT 1 FROM {_RECORDS} r WHERE r.import_id = OLD.id)"
SQLITE_DDL = [
    f"""
    CREATE TRIGGER reconciliation_records_import_inserted
    BEFORE INSERT ON {_RECORDS} WHEN {_MISSING}
    BEGIN
        SELECT RAISE(ABORT, 'reconciliation_external_records: no such import');
    END
    """,
    f"""
    CREATE TRIGGER reconciliation_records_import_updated
    BEFORE UPDATE OF import_id ON {_RECORDS} WHEN {_MISSING}
    BEGIN
        SELECT RAISE(ABORT, 'reconciliation_external_records: no such import');
    END
    """,
    f"""
    CREATE TRIGGER reconciliation_imports_held_delete
    BEFORE DELETE ON reconciliation_imports WHEN {_HELD}
    BEGIN
        SELECT RAISE(ABORT, 'reconciliation_imports: the import has records: DELETE refused');
    END
    """,
    f"""
    CREATE TRIGGER reconciliation_imports_held_update
    BEFORE UPDATE OF id ON reconciliation_imports WHEN NEW.id <> OLD.id AND {_HELD}
    BEGIN
        SELECT RAISE(ABORT, 'reconciliation_imports: the import has records: UPDATE refused');
    END
    """,
]
SQLITE_DROP = [
    "DROP TRIGGER reconciliation_imports_held_update",
    "DROP TRIGGER reconciliation_imports_held_delete",
    "DROP TRIGGER reconciliation_records_import_updated",
    "DROP TRIGGER reconciliation_records_import_inserted",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table(_RECORDS) as batch:
        batch.drop_constraint(_FK[dialect], type_="foreignkey")
    for statement in PG_DDL if dialect == "postgresql" else SQLITE_DDL:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in PG_DROP if dialect == "postgresql" else SQLITE_DROP:
        op.execute(statement)
    with op.batch_alter_table(_RECORDS) as batch:
        batch.create_foreign_key(_FK[dialect], "reconciliation_imports", ["import_id"], ["id"])
