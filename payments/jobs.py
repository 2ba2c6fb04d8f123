"""Payments' actors: thin; the service decides what is idempotent and how."""

from __future__ import annotations

from typing import Any

from onetrip.jobs import actor
from onetrip.outbox import subscribe
from onetrip.scheduler import periodic
from payments import service


@subscribe("payment.succeeded")
@actor("payments")
async def render_payment_receipt(event_id: str, event: dict[str, Any]) -> None:
    """Render the receipt PDF once a payment succeeds (kept; served by the API)."""
    await service.render_receipt(event["payment_id"])


@periodic(60)
@actor("payments", max_retries=0)
async def expire_unpaid_payments() -> None:
    await service.expire_due_payments()


@periodic(300)
@actor("payments", max_retries=0)
async def poll_stuck_payments() -> None:
    await service.poll_stuck_payments()


@periodic(120)
@actor("payments", max_retries=0)
async def retry_pending_refunds() -> None:
    await service.retry_pending_refunds()
