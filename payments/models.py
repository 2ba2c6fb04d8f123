"""Catalogue (departments, matters, fee versions), payments and refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from onetrip.db import Base, BigIntPK, UTCDateTime


class Department(Base):
    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # Who is told when the department's webhook endpoint keeps failing (issue 9).
    contact_email: Mapped[str | None] = mapped_column(String(254))
    # Who bears Stripe's processing fees: "platform" (an expense of the platform) or
    # "department" (taken from what the department is owed). The ledger keeps its own
    # copy (ledger.open_department_accounts), since the ledger never reads payments.
    stripe_fees_borne_by: Mapped[str] = mapped_column(String(16), default="platform")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(
            "stripe_fees_borne_by IN ('platform', 'department')", name="stripe_fees_borne_by"
        ),
    )


class Matter(Base):
    __tablename__ = "matters"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    deliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_issue: Mapped[bool] = mapped_column(Boolean, default=False)
    required_materials: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MatterFee(Base):
    """One version of a matter's fee; the latest with effective_from <= now applies."""

    __tablename__ = "matter_fees"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    matter_code: Mapped[str] = mapped_column(ForeignKey("matters.code"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # [{"department": "PSB", "share_bps": 6000}, ...], summing to 10000
    fee_split: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_matter_fees_matter_effective", "matter_code", "effective_from"),)


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    department: Mapped[str] = mapped_column(String(32))
    matter_code: Mapped[str] = mapped_column(String(64))
    matter_name: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    fee_split: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    refund_status: Mapped[str] = mapped_column(String(8), default="none")
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    # What the gateway really took, once it took anything (None before): refunds are
    # capped by it, and a payment whose money differs from the fee waits in review.
    amount_received: Mapped[int | None] = mapped_column(BigInteger)
    received_currency: Mapped[str | None] = mapped_column(String(3))
    applicant: Mapped[dict[str, Any]] = mapped_column(JSON)
    delivery: Mapped[dict[str, Any]] = mapped_column(JSON)
    return_url: Mapped[str] = mapped_column(String(2000))
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    gateway: Mapped[str | None] = mapped_column(String(16))
    gateway_ref: Mapped[str | None] = mapped_column(String(100))
    gateway_secret: Mapped[str | None] = mapped_column(String(200))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_payments_department_id", "department", "id"),
        Index("ix_payments_department_reference", "department", "reference"),
        Index("ix_payments_status_expires", "status", "expires_at"),
        Index("ix_payments_gateway_ref", "gateway_ref"),
        # The list's filters in its cursor order (newest id first), so a page of one
        # status reads 51 index entries whatever the table's size (issue 10, F4).
        Index("ix_payments_status_id", "status", "id"),
        Index("ix_payments_department_status_id", "department", "status", "id"),
        Index("ix_payments_reference_id", "reference", "id"),
    )


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    department: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    gateway: Mapped[str] = mapped_column(String(16))
    gateway_ref: Mapped[str | None] = mapped_column(String(100))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Receipt(Base):
    """The current receipt PDF of a succeeded payment: rendered by a job when it
    succeeds, re-issued (same number, next version) when refunds change or when it was
    drawn with a font that was not embedded and an embedded one is available now."""

    __tablename__ = "payment_receipts"

    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    rendered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The Chinese font it was drawn with (`path#index`, or STSong-Light) and whether
    # that was embedded; None for receipts kept before fonts were recorded.
    font: Mapped[str | None] = mapped_column(String(500))
    font_embedded: Mapped[bool | None] = mapped_column(Boolean)
    # Ids of the succeeded refunds it shows, oldest first; None: kept before refunds
    # were listed (then it shows the payment's refunded total when it was drawn).
    refund_ids: Mapped[list[str] | None] = mapped_column(JSON)
