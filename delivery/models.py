"""Licences, their documents, print runs, courier partners, dispatches and tracking.

A licence moves on `delivery.states.LICENSE_MACHINE`, a dispatch on `DISPATCH_MACHINE`;
both record every move in the kernel's `state_transitions`, which is the timeline.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from onetrip.db import Base, BigIntPK, UTCDateTime


class CourierPartner(Base):
    __tablename__ = "courier_partners"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # [{"province": "浙江省", "city": "杭州市", "district": null}, ...]
    service_areas: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # Kept to sign outgoing webhooks (HMAC needs the secret itself); shown once.
    webhook_secret: Mapped[str] = mapped_column(String(100))
    # Dispatches a partner takes per local day (None: no limit), and the local time after
    # which a new dispatch counts towards the next day's hand-over.
    daily_capacity: Mapped[int | None] = mapped_column(Integer)
    cutoff_time: Mapped[str] = mapped_column(String(5), default="17:00")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class License(Base):
    """A licence issued for a paid matter, on its way to the holder."""

    __tablename__ = "licenses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    department: Mapped[str] = mapped_column(String(32))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    matter_code: Mapped[str] = mapped_column(String(64))
    license_no: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    holder_name: Mapped[str] = mapped_column(String(200))
    fields: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    # "courier" or "pickup", and the address it goes to (a redispatch may correct it)
    delivery_method: Mapped[str] = mapped_column(String(8))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The print station whose runs print it (a department's window, or "default")
    print_station: Mapped[str] = mapped_column(String(64), default="default")
    # The signed verification code printed in the QR code, and the key that signed it
    verify_code: Mapped[str | None] = mapped_column(String(400))
    signing_kid: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_reason: Mapped[str | None] = mapped_column(String(500))
    collected_by: Mapped[str | None] = mapped_column(String(200))
    collected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("department", "license_no", name="uq_licenses_department_license_no"),
        Index("ix_licenses_payment", "payment_id"),
        Index("ix_licenses_department_id", "department", "id"),
        Index("ix_licenses_status_station", "status", "print_station"),
    )


class LicenseDocument(Base):
    """A rendered PDF of a licence: the licence itself, or its cover sheet.

    Rendering again for the same licence content produces the same bytes, so a re-run
    replaces nothing; a new version comes only when the content changed (a corrected
    address on the cover sheet).
    """

    __tablename__ = "license_documents"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"))
    kind: Mapped[str] = mapped_column(String(16))  # "license" | "cover"
    version: Mapped[int] = mapped_column(Integer, default=1)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    pages: Mapped[int] = mapped_column(Integer)
    # the font the Chinese text was drawn with (a fallback means: render again later)
    font: Mapped[str | None] = mapped_column(String(200))
    rendered_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("license_id", "kind", "version", name="uq_license_documents_version"),
    )


class SigningKey(Base):
    """An Ed25519 public key that signs (or signed) verification codes.

    The private key lives in a file (`ONETRIP_SIGNING_KEY`), never in the database; the
    public halves stay here after rotation so old codes still verify (served as JWKS).
    """

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16), default="EdDSA")
    public_key: Mapped[str] = mapped_column(String(100))  # base64url, raw 32 bytes
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PrintRun(Base):
    """One cut-off's worth of rendered licences of one print station, sent as one PDF."""

    __tablename__ = "print_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    # "pending" (gathered, not yet sent) → "sent" | "failed"
    status: Mapped[str] = mapped_column(String(16))
    printer: Mapped[str] = mapped_column(String(500))  # where it went: spool:/path or ipp://…
    document: Mapped[bytes | None] = mapped_column(LargeBinary)
    sha256: Mapped[str | None] = mapped_column(String(64))
    pages: Mapped[int] = mapped_column(Integer, default=0)
    license_count: Mapped[int] = mapped_column(Integer, default=0)
    printer_job_id: Mapped[str | None] = mapped_column(String(100))
    printer_state: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # when a process took the run to send it ("sending"): one sender at a time, and a
    # sender that died is replaced once this is old (delivery/printing.py)
    send_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_print_runs_station_id", "station", "id"),)


class PrintRunItem(Base):
    """A licence's place in a print run; the primary key makes it one run per licence
    print (a reprint after a corrected address is a new `print_no`)."""

    __tablename__ = "print_run_items"

    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"), primary_key=True)
    print_no: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    print_run_id: Mapped[str] = mapped_column(ForeignKey("print_runs.id"))
    position: Mapped[int] = mapped_column(Integer)
    # the licence document printed (sha256, pages), then its cover sheet
    sha256: Mapped[str] = mapped_column(String(64))
    pages: Mapped[int] = mapped_column(Integer)
    cover_sha256: Mapped[str | None] = mapped_column(String(64))
    cover_pages: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_print_run_items_run", "print_run_id", "position"),)


class Dispatch(Base):
    """A parcel with one licence, handed to one courier partner."""

    __tablename__ = "dispatches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"))
    payment_id: Mapped[str] = mapped_column(String(40))
    department: Mapped[str] = mapped_column(String(32))
    partner: Mapped[str] = mapped_column(ForeignKey("courier_partners.code"))
    tracking_number: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    address: Mapped[dict[str, Any]] = mapped_column(JSON)
    # the partner's local day whose hand-over (manifest, capacity) it belongs to
    handover_date: Mapped[date] = mapped_column(Date)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_dispatches_license", "license_id"),
        Index("ix_dispatches_partner_status", "partner", "status", "id"),
        Index("ix_dispatches_partner_handover", "partner", "handover_date"),
    )


class DispatchEvent(Base):
    """A tracking event a courier partner reported, applied or kept as history."""

    __tablename__ = "dispatch_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dispatch_id: Mapped[str] = mapped_column(ForeignKey("dispatches.id"))
    event_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    location: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500))
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    # False: late (older than the latest applied one), kept in the history only
    applied: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("dispatch_id", "event_id", name="uq_dispatch_events_event"),
        Index("ix_dispatch_events_dispatch", "dispatch_id", "occurred_at"),
    )


class SatisfactionRating(Base):
    """What an applicant said of the service once the licence reached them: a score
    1..5 and an optional comment, one per payment (the unique payment_id is what makes a
    second rating a conflict, however two requests race)."""

    __tablename__ = "satisfaction_ratings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    department: Mapped[str] = mapped_column(String(32))
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("payment_id", name="uq_satisfaction_ratings_payment"),
        CheckConstraint("score BETWEEN 1 AND 5", name="score_range"),
        # the department's satisfaction over a period
        Index("ix_satisfaction_ratings_department_created", "department", "created_at"),
    )
