"""Payments' actors: thin; `@consumes` applies each event once, the service decides the rest."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from onetrip.consumers import Event, consumes
from onetrip.jobs import actor
from onetrip.scheduler import periodic
from payments import receipts, service


async def _draw_receipt(event: Event) -> receipts.DrawnReceipt | None:
    # Drawing takes milliseconds of CPU: outside the unit of work, so no lock waits on it.
    return await receipts.draw_receipt(event.payment_id) if event.payment_id else None


#: Drawing a receipt goes after the cheap steps the worker has taken at the same time
#: (Dramatiq: a higher number is a lower priority), e.g. delivery's auto-issue, and after
#: the drawing of licences (10): the licence on its way to the door comes first. Before
#: the notifications (20), whose payment email attaches the receipt (and draws it
#: itself if it is still missing, as the API does when asked for it first).
DRAWING_PRIORITY = 15


@consumes(
    "payment.succeeded",
    consumer="payments.receipt",
    queue="payments",
    prepare=_draw_receipt,
    priority=DRAWING_PRIORITY,
)
async def render_payment_receipt(
    session: AsyncSession, event: Event, drawn: receipts.DrawnReceipt | None
) -> None:
    """Keep the receipt PDF once a payment succeeds (served by the API). No PDF: one was
    kept already (asked for before the job ran), or the payment is not succeeded."""
    if drawn is not None:
        await receipts.keep_receipt(session, drawn)


async def _redraw_receipt(event: Event) -> receipts.DrawnReceipt | None:
    return await receipts.redraw_if_stale(event.payment_id) if event.payment_id else None


@consumes(
    "refund.succeeded",
    "refund.failed",
    consumer="payments.receipt_refunds",
    queue="payments",
    prepare=_redraw_receipt,
)
async def reissue_receipt_after_refund(
    session: AsyncSession, event: Event, drawn: receipts.DrawnReceipt | None
) -> None:
    """Re-issue the receipt (same number, next version) once a refund is paid back, or
    undone after that (returned by the bank); a refund that failed before it was ever
    paid changes nothing, so nothing is drawn. Another version kept meanwhile stands."""
    if drawn is not None:
        await receipts.store_receipt(session, drawn)


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
