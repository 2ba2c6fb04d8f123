"""Delivery: licences, their documents, signing keys, print runs, dispatches, tracking events;
courier partners gain a daily capacity, a cut-off time and a timezone.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 13:43:53.153191
"""

import sqlalchemy as sa
from alembic import op

import onetrip.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "print_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("printer", sa.String(length=500), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("license_count", sa.Integer(), nullable=False),
        sa.Column("printer_job_id", sa.String(length=100), nullable=True),
        sa.Column("printer_state", sa.String(length=100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("send_started_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_print_runs")),
    )
    with op.batch_alter_table("print_runs", schema=None) as batch_op:
        batch_op.create_index("ix_print_runs_station_id", ["station", "id"], unique=False)

    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=100), nullable=False),
        sa.Column("created_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_table(
        "licenses",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("license_no", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("delivery_method", sa.String(length=8), nullable=False),
        sa.Column("address", sa.JSON(), nullable=True),
        sa.Column("print_station", sa.String(length=64), nullable=False),
        sa.Column("verify_code", sa.String(length=400), nullable=True),
        sa.Column("signing_kid", sa.String(length=64), nullable=True),
        sa.Column("revoked_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.String(length=500), nullable=True),
        sa.Column("collected_by", sa.String(length=200), nullable=True),
        sa.Column("collected_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_licenses_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licenses")),
        sa.UniqueConstraint("department", "license_no", name="uq_licenses_department_license_no"),
    )
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.create_index("ix_licenses_department_id", ["department", "id"], unique=False)
        batch_op.create_index("ix_licenses_payment", ["payment_id"], unique=False)
        batch_op.create_index(
            "ix_licenses_status_station", ["status", "print_station"], unique=False
        )

    op.create_table(
        "dispatches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("tracking_number", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("address", sa.JSON(), nullable=False),
        sa.Column("handover_date", sa.Date(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("recipient_name", sa.String(length=200), nullable=True),
        sa.Column("delivered_at", onetrip.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_dispatches_license_id_licenses")
        ),
        sa.ForeignKeyConstraint(
            ["partner"],
            ["courier_partners.code"],
            name=op.f("fk_dispatches_partner_courier_partners"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatches")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_dispatches_tracking_number")),
    )
    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.create_index("ix_dispatches_license", ["license_id"], unique=False)
        batch_op.create_index(
            "ix_dispatches_partner_handover", ["partner", "handover_date"], unique=False
        )
        batch_op.create_index(
            "ix_dispatches_partner_status", ["partner", "status", "id"], unique=False
        )

    op.create_table(
        "license_documents",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("font", sa.String(length=200), nullable=True),
        sa.Column("rendered_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_license_documents_license_id_licenses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_license_documents")),
        sa.UniqueConstraint("license_id", "kind", "version", name="uq_license_documents_version"),
    )
    op.create_table(
        "print_run_items",
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("print_no", sa.Integer(), nullable=False),
        sa.Column("print_run_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("cover_sha256", sa.String(length=64), nullable=True),
        sa.Column("cover_pages", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_print_run_items_license_id_licenses")
        ),
        sa.ForeignKeyConstraint(
            ["print_run_id"],
            ["print_runs.id"],
            name=op.f("fk_print_run_items_print_run_id_print_runs"),
        ),
        sa.PrimaryKeyConstraint("license_id", "print_no", name=op.f("pk_print_run_items")),
    )
    with op.batch_alter_table("print_run_items", schema=None) as batch_op:
        batch_op.create_index("ix_print_run_items_run", ["print_run_id", "position"], unique=False)

    op.create_table(
        "dispatch_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dispatch_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("occurred_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("recipient_name", sa.String(length=200), nullable=True),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("received_at", onetrip.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispatch_id"],
            ["dispatches.id"],
            name=op.f("fk_dispatch_events_dispatch_id_dispatches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_events")),
        sa.UniqueConstraint("dispatch_id", "event_id", name="uq_dispatch_events_event"),
    )
    with op.batch_alter_table("dispatch_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dispatch_events_dispatch", ["dispatch_id", "occurred_at"], unique=False
        )

    with op.batch_alter_table("courier_partners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("daily_capacity", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("cutoff_time", sa.String(length=5), nullable=False, server_default="17:00")
        )
        batch_op.add_column(
            sa.Column(
                "timezone", sa.String(length=64), nullable=False, server_default="Asia/Shanghai"
            )
        )
    _standard_partner_secrets()


def _standard_partner_secrets() -> None:
    """Partners registered before the kernel's Standard Webhooks format hold `whsec_` +
    URL-safe base64: the same key bytes in standard base64 (delivery.service's
    `standard_secret`, which also converts any left at send time)."""
    import base64
    import binascii

    connection = op.get_bind()
    partners = sa.table("courier_partners", sa.column("code"), sa.column("webhook_secret"))
    for code, secret in connection.execute(sa.select(partners.c.code, partners.c.webhook_secret)):
        body = (secret or "").removeprefix("whsec_")
        try:
            base64.b64decode(body, validate=True)
            continue  # already standard base64
        except (binascii.Error, ValueError):
            pass
        try:
            key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            continue  # left for delivery.service to replace with a new one
        if len(key) >= 24:
            converted = "whsec_" + base64.b64encode(key).decode("ascii")
            connection.execute(
                partners.update().where(partners.c.code == code).values(webhook_secret=converted)
            )


def downgrade() -> None:
    with op.batch_alter_table("courier_partners", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("cutoff_time")
        batch_op.drop_column("daily_capacity")

    with op.batch_alter_table("dispatch_events", schema=None) as batch_op:
        batch_op.drop_index("ix_dispatch_events_dispatch")

    op.drop_table("dispatch_events")
    with op.batch_alter_table("print_run_items", schema=None) as batch_op:
        batch_op.drop_index("ix_print_run_items_run")

    op.drop_table("print_run_items")
    op.drop_table("license_documents")
    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.drop_index("ix_dispatches_partner_status")
        batch_op.drop_index("ix_dispatches_partner_handover")
        batch_op.drop_index("ix_dispatches_license")

    op.drop_table("dispatches")
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.drop_index("ix_licenses_status_station")
        batch_op.drop_index("ix_licenses_payment")
        batch_op.drop_index("ix_licenses_department_id")

    op.drop_table("licenses")
    op.drop_table("signing_keys")
    with op.batch_alter_table("print_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_print_runs_station_id")

    op.drop_table("print_runs")
