"""A department's webhook endpoints: where its own systems want which events sent.

The deliveries themselves (one per endpoint and event, with their attempt log) are the
kernel's `webhook_deliveries`, under the target `endpoint:{id}` (`service.target_of`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from onetrip.db import Base, UTCDateTime


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    department: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2000))
    # The event types it wants (service.EVENT_TYPES), sorted, without repeats.
    events: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean)
    # Why it was disabled: "gone" (it answered 410), "failing" (3 days) or "by_request".
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Kept because HMAC needs the secret itself (like CourierPartner.webhook_secret).
    secret: Mapped[str] = mapped_column(String(100))
    # After a rotation the old secret signs beside the new one until `previous_secret_until`.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first failed attempt since the last delivered one (None: not failing).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # When the department's contact was warned about the current failing period.
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        # A department lists its endpoints newest first; the fan-out reads them by department.
        Index("ix_webhook_endpoints_department", "department", "id"),
        # The periodic pass: failing endpoints, and rotations whose old secret expires.
        Index("ix_webhook_endpoints_failing", "failing_since"),
        Index("ix_webhook_endpoints_previous_secret", "previous_secret_until"),
    )
