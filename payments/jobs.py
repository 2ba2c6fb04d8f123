"""Payments' actors: thin; `@consumes` applies each event once, the service decides the rest."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from onetrip.consumers import Event, consumes
from onetrip.jobs import actor
from onetrip.scheduler import periodic
from payments import receipts, service


async def _draw_receipt(event: Event) -> bytes | None:
    # Drawing takes milliseconds of CPU: outside the unit of work, so no lock waits on it.
    return await receipts.draw_receipt(event.payment_id) if event.payment_id else None


@consumes("payment.succeeded", consumer="payments.receipt", queue="payments", prepare=_draw_receipt)
async def render_payment_receipt(session: AsyncSession, event: Event, pdf: bytes | None) -> None:
    """Keep the receipt PDF once a payment succeeds (served by the API). No PDF: one was
    kept already (asked for before the job ran), or the payment is not succeeded."""
    if pdf is not None and event.payment_id:
        await receipts.keep_receipt(session, event.payment_id, pdf)


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
