"""The kernel's webhook tables: one delivery per (target, event) and its attempt log."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from onetrip.db import Base, BigIntPK, UTCDateTime


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at (or being attempted)
    DELIVERED = "delivered"
    FAILED = "failed"  # a 4xx, a refused address, or 3 days of retryable failures
    DISABLED = "disabled"  # the receiver answered 410 Gone (this or a sibling delivery)


class WebhookDelivery(Base):
    """One event for one target. `target` is opaque to the kernel and names its owner by
    its prefix ("courier:SF", "endpoint:whe_…"); url and secrets are what the owner gave
    (see `update_target`)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    target: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    # Kept because HMAC needs the secrets themselves, like CourierPartner.webhook_secret.
    secrets: Mapped[list[str]] = mapped_column(JSON)
    # The JSON body, serialised once: every retry sends exactly these bytes.
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    # When it is due; moved ahead while an attempt runs (a lease); NULL once final.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the sweep last handed it to a worker: it is not handed out again meanwhile.
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("target", "event_id", name="uq_webhook_deliveries_target_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        # An owner lists a target's deliveries newest first.
        Index("ix_webhook_deliveries_target", "target", "id"),
    )


class WebhookAttempt(Base):
    """One attempt to send a delivery: what was sent where, and what came back."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(40), ForeignKey("webhook_deliveries.id"))
    number: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(2000))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_status: Mapped[int | None] = mapped_column(Integer)
    # The first KiB of the response, decoded leniently; what a support person looks at.
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(500))
    # delivered | retry | gone | failed (schedule.Outcome): what it meant for the delivery
    outcome: Mapped[str] = mapped_column(String(16))
    # When the next attempt was scheduled, for a retried one.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),
    )
