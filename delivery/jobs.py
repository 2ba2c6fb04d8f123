"""Delivery's actors: thin; `@consumes` applies each event once, the services decide."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from delivery import dispatching, licenses, printing, rendering, simulator
from onetrip.consumers import Event, consumes
from onetrip.jobs import actor
from onetrip.scheduler import periodic
from onetrip.settings import get_settings

# --- licences (helper L): auto-issue on payment -----------------------------------------


async def _auto_issue_many(session: AsyncSession, batch: list[tuple[Event, None]]) -> None:
    await licenses.auto_issue_many(session, [e.payment_id for e, _ in batch if e.payment_id])


@consumes(
    "payment.succeeded",
    consumer="delivery.auto_issue",
    queue="delivery",
    handle_many=_auto_issue_many,
)
async def auto_issue_license(session: AsyncSession, event: Event) -> None:
    """Issue the licence of an `auto_issue` matter once it is paid (a repeat: none)."""
    if event.payment_id:
        await licenses.auto_issue(session, event.payment_id)


# --- dispatches and the simulated courier (helper C) -----------------------------------


@consumes("license.printed", consumer="delivery.dispatch", queue="delivery")
async def dispatch_printed_license(session: AsyncSession, event: Event) -> None:
    """Hand a printed licence to a courier partner (or out for pickup), once."""
    if event.subject_id:
        await dispatching.dispatch_printed_license(session, event.subject_id)


simulate_courier = simulator.simulate_courier  # its periodic actor


# --- rendering (helper DS): an issued licence's PDF and cover sheet -----------------------


async def _draw_license(event: Event) -> rendering.DrawnLicense | None:
    # Drawing takes milliseconds of CPU: outside the unit of work, so no lock waits on it.
    return await rendering.draw_license(event.subject_id) if event.subject_id else None


#: Drawing has a queue of its own, and a lower priority (Dramatiq: a higher number) than
#: the cheap steps: the worker consumes every queue, so an auto-issue, a dispatch or the
#: print cut-off never waits behind a backlog of drawings (issue 8).
DRAWING_QUEUE = "delivery_drawing"
DRAWING_PRIORITY = 10


async def _keep_many(
    session: AsyncSession, batch: list[tuple[Event, rendering.DrawnLicense | None]]
) -> None:
    await rendering.keep_many_documents(session, [drawn for _, drawn in batch if drawn])


@consumes(
    "license.issued",
    consumer="delivery.render",
    queue=DRAWING_QUEUE,
    prepare=_draw_license,
    handle_many=_keep_many,
    priority=DRAWING_PRIORITY,
)
async def render_license(
    session: AsyncSession, event: Event, drawn: rendering.DrawnLicense | None
) -> None:
    """Keep the licence's documents and move it to `rendered` (None: no longer issued)."""
    if drawn is not None:
        await rendering.keep_documents(session, drawn)


# --- print runs (helper PR): the cut-off, every ONETRIP_PRINT_INTERVAL seconds ------------


@periodic(get_settings().print_interval)
@actor("delivery", max_retries=0)
async def print_rendered_licences() -> None:
    """Gather each station's rendered licences into a run and send the unsent runs (a
    failed send stays for the next tick, so a retry by Dramatiq would only repeat it)."""
    await printing.print_due_licences()
