"""Courier partners (dispatches, licences and tracking come with the delivery issue)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from onetrip.db import Base, UTCDateTime


class CourierPartner(Base):
    __tablename__ = "courier_partners"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # [{"province": "浙江省", "city": "杭州市", "district": null}, ...]
    service_areas: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # Kept to sign outgoing webhooks (HMAC needs the secret itself); shown once.
    webhook_secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
