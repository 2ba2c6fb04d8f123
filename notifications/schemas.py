"""What the notifications API returns (the message bodies are never in it)."""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct


class NotificationAttemptView(Struct):
    """One attempt to hand the notification to its provider."""

    number: int
    started_at: datetime
    duration_ms: int
    outcome: str  # sent | retry | failed
    provider: str | None
    error: str | None


class NotificationView(Struct):
    """A notification to the applicant: `event` is the type of the event that caused it,
    `kind` what it said; `status` pending | sent | failed | skipped."""

    id: str
    channel: str  # email | sms | none (skipped: nobody to send it to)
    recipient: str
    event: str | None
    event_id: str
    kind: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    attempts: list[NotificationAttemptView]


class NotificationPage(Struct):
    data: list[NotificationView]
    next_cursor: str | None


NOTIFICATION_PAGE_EXAMPLE = {
    "data": [
        {
            "id": "ntf_01hq3v8k2m4n5p6q7r8s9t0vwx",
            "channel": "email",
            "recipient": "zhang.wei@example.cn",
            "event": "payment.succeeded",
            "event_id": "evt_01hq3v8k2a4n5p6q7r8s9t0vwx",
            "kind": "payment_succeeded",
            "status": "sent",
            "created_at": "2026-12-01T08:00:01Z",
            "sent_at": "2026-12-01T08:00:02Z",
            "last_error": None,
            "attempts": [
                {
                    "number": 1,
                    "started_at": "2026-12-01T08:00:02Z",
                    "duration_ms": 84,
                    "outcome": "sent",
                    "provider": "smtp:mail.example.cn",
                    "error": None,
                }
            ],
        }
    ],
    "next_cursor": None,
}
