"""Notifications to applicants and departments, and every attempt to send one.

One row per (event, channel, recipient): the unique constraint is what makes a
notification exactly-once however often its event arrives. The row keeps what was
rendered (subject, text, html) so what was sent can be shown later, and its sending
state (`attempts`, `next_attempt_at` as a lease while an attempt runs, like the kernel's
webhook deliveries).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from onetrip.db import Base, BigIntPK, UTCDateTime


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at (or being attempted)
    SENT = "sent"  # a provider accepted it
    FAILED = "failed"  # refused for good, or still failing 24 h after it was created
    # nobody to send it to (no email, no phone, no contact), or a licence step out of
    # date by send time (a later step's message was sent first); last_error says which
    SKIPPED = "skipped"


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    NONE = "none"  # the row of a skipped notification: no channel to send it on


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # The outbox event that caused it, or the caller's key (`queue_department_email`).
    event_id: Mapped[str] = mapped_column(String(200))
    # The event's type ("payment.succeeded"), or None for a department email.
    event_type: Mapped[str | None] = mapped_column(String(64))
    # The message kind (notifications.messages.KINDS): what the template says.
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    # An email address or a phone number; "" for channel "none" (so the unique
    # constraint still holds: NULLs would never conflict).
    recipient: Mapped[str] = mapped_column(String(254))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    department: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    # What was (or will be) sent, as rendered when the notification was created.
    subject: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    # An attachment resolved when sending: "receipt" (the payment's current receipt).
    attachment: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer)
    # When it is due; moved ahead while an attempt runs (a lease); NULL once final.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the sweep last handed it to a worker: not handed out again meanwhile.
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Sent, failed or skipped: when it became final.
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    provider: Mapped[str | None] = mapped_column(String(64))
    provider_ref: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint(
            "event_id", "channel", "recipient", name="uq_notifications_event_channel_recipient"
        ),
        CheckConstraint("channel IN ('email', 'sms', 'none')", name="channel"),
        CheckConstraint("status IN ('pending', 'sent', 'failed', 'skipped')", name="status"),
        # The sweep: pending ones due now.
        Index("ix_notifications_due", "status", "next_attempt_at"),
        # A payment's notifications, in order (GET /payments/{id}/notifications).
        Index("ix_notifications_payment", "payment_id", "id"),
    )


class NotificationAttempt(Base):
    """One attempt to hand a notification to its channel's provider."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(String(40), ForeignKey("notifications.id"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    # sent | retry | failed: what it meant for the notification
    outcome: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        UniqueConstraint(
            "notification_id", "number", name="uq_notification_attempts_notification_number"
        ),
    )
