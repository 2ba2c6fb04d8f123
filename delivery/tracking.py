"""Tracking: courier partners' events applied to their dispatches, and what they see.

The rules of API.md, under the dispatch's row lock (so concurrent events of one parcel
are applied one after the other):

- a repeated `event_id` changes nothing (the first answer's state is returned);
- an event older than the latest applied one is kept in the history, never applied (a
  late `in_transit` cannot move a delivered parcel back);
- a newer event from a final state (`delivered`, `returned`) is a 409;
- an unknown status is a 422; `delivered` needs `recipient_name` (proof of delivery);
- the third `failed_attempt` returns the parcel; `delivered` delivers the licence,
  `returned` returns it (so the department can redispatch or offer pickup).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.events import dispatch_event, license_event
from delivery.models import Dispatch, DispatchEvent, License
from delivery.schemas import CourierEventIn, DispatchEventOut, DispatchOut
from delivery.states import (
    COURIER_STATUSES,
    D_DELIVERED,
    D_RETURNED,
    DISPATCH_FINAL,
    DISPATCH_MACHINE,
    DISPATCHED,
    FAILED_ATTEMPT,
    LICENSE_MACHINE,
)
from onetrip import states
from onetrip.clock import in_utc, utcnow
from onetrip.errors import NotFound, ValidationFailed
from onetrip.pagination import page

#: the failed attempt that sends a parcel back
RETURN_AFTER_FAILED_ATTEMPTS = 3


def _not_found(dispatch_id: str) -> NotFound:
    return NotFound(f"no dispatch {dispatch_id}", code="dispatch_not_found")


async def partner_dispatch(session: AsyncSession, partner: str, dispatch_id: str) -> Dispatch:
    """The partner's own dispatch; another partner's is as absent as a missing one."""
    dispatch = await session.get(Dispatch, dispatch_id)
    if dispatch is None or dispatch.partner != partner:
        raise _not_found(dispatch_id)
    return dispatch


def _check(data: CourierEventIn) -> datetime:
    errors = []
    if data.status not in COURIER_STATUSES:
        errors.append(
            {"field": "status", "message": f"must be one of {', '.join(COURIER_STATUSES)}"}
        )
    occurred_at = in_utc(data.occurred_at)
    if occurred_at is None:
        errors.append({"field": "occurred_at", "message": "must be a time with a UTC offset"})
    if data.status == D_DELIVERED and not (data.recipient_name or "").strip():
        errors.append(
            {"field": "recipient_name", "message": "a delivery needs the name of who took it"}
        )
    if errors:
        raise ValidationFailed(
            f"the event is not valid: {errors[0]['field']}: {errors[0]['message']}",
            code="invalid_courier_event",
            errors=errors,
        )
    assert occurred_at is not None
    return occurred_at


async def record_event(
    session: AsyncSession, partner: str, dispatch_id: str, data: CourierEventIn
) -> Dispatch:
    """Apply (or keep) one courier event of the partner's own dispatch; returns it."""
    occurred_at = _check(data)
    dispatch = await partner_dispatch(session, partner, dispatch_id)
    dispatch = await states.lock(session, DISPATCH_MACHINE, dispatch.id)
    seen = await session.execute(
        select(DispatchEvent.id).where(
            DispatchEvent.dispatch_id == dispatch.id, DispatchEvent.event_id == data.event_id
        )
    )
    if seen.first() is not None:
        return dispatch
    last = await states.last_applied_at(session, DISPATCH_MACHINE, dispatch.id)
    late = last is not None and occurred_at < last
    if data.status == FAILED_ATTEMPT and not late and dispatch.status not in DISPATCH_FINAL:
        dispatch.failed_attempts += 1

    async def effect(row: Dispatch, transition: states.Transition[Dispatch]) -> Any:
        if row.status == D_DELIVERED:
            row.recipient_name = data.recipient_name
            row.delivered_at = occurred_at
        return dispatch_event(
            row,
            previous_status=transition.previous,
            occurred_at=occurred_at,
            location=data.location,
            recipient_name=data.recipient_name,
        )

    # raises 409 (InvalidTransition) for a newer event from a final state
    moved = await states.apply(
        session, DISPATCH_MACHINE, dispatch, data.status, effect, occurred_at=occurred_at
    )
    session.add(
        DispatchEvent(
            dispatch_id=dispatch.id,
            event_id=data.event_id,
            status=data.status,
            occurred_at=occurred_at,
            location=data.location,
            note=data.note,
            recipient_name=data.recipient_name,
            applied=moved.outcome != "stale",
            received_at=utcnow(),
        )
    )
    if (
        data.status == FAILED_ATTEMPT
        and moved.outcome != "stale"
        and dispatch.failed_attempts >= RETURN_AFTER_FAILED_ATTEMPTS
    ):
        moved = await states.apply(
            session, DISPATCH_MACHINE, dispatch, D_RETURNED, effect, occurred_at=occurred_at
        )
    if moved.changed and dispatch.status in DISPATCH_FINAL:
        await _finish_license(session, dispatch)
    await session.flush()
    return dispatch


async def _finish_license(session: AsyncSession, dispatch: Dispatch) -> None:
    """Deliver or return the licence of a parcel that reached a final state, if this
    parcel is still the one carrying it (a revoked licence stays revoked)."""
    license = await states.lock(session, LICENSE_MACHINE, dispatch.license_id)
    if license.status != DISPATCHED:
        return
    event = "deliver" if dispatch.status == D_DELIVERED else "return"

    async def effect(row: License, transition: states.Transition[License]) -> Any:
        return license_event(row, previous_status=transition.previous, dispatch=dispatch)

    await states.apply(session, LICENSE_MACHINE, license, event, effect)


# --- reading -----------------------------------------------------------------------------


def _event_view(row: DispatchEvent) -> DispatchEventOut:
    return DispatchEventOut(
        event_id=row.event_id,
        status=row.status,
        occurred_at=row.occurred_at,
        location=row.location,
        note=row.note,
        recipient_name=row.recipient_name,
        applied=row.applied,
        received_at=row.received_at,
    )


def dispatch_view(dispatch: Dispatch, events: list[DispatchEvent] | None = None) -> DispatchOut:
    return DispatchOut(
        id=dispatch.id,
        license_id=dispatch.license_id,
        payment_id=dispatch.payment_id,
        partner=dispatch.partner,
        tracking_number=dispatch.tracking_number,
        status=dispatch.status,
        address=dispatch.address,
        handover_date=dispatch.handover_date,
        failed_attempts=dispatch.failed_attempts,
        recipient_name=dispatch.recipient_name,
        delivered_at=dispatch.delivered_at,
        created_at=dispatch.created_at,
        updated_at=dispatch.updated_at,
        events=[_event_view(e) for e in events or []],
    )


async def dispatch_events(session: AsyncSession, dispatch_id: str) -> list[DispatchEvent]:
    """A parcel's events in the order they occurred (late ones in their place)."""
    stmt = (
        select(DispatchEvent)
        .where(DispatchEvent.dispatch_id == dispatch_id)
        .order_by(DispatchEvent.occurred_at, DispatchEvent.id)
    )
    return list((await session.execute(stmt)).scalars())


async def full_view(session: AsyncSession, dispatch: Dispatch) -> DispatchOut:
    return dispatch_view(dispatch, await dispatch_events(session, dispatch.id))


async def list_dispatches(
    session: AsyncSession,
    partner: str,
    *,
    status: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> list[Dispatch]:
    """The partner's dispatches, newest first (one more than `limit`: see pagination)."""
    if status is not None and status not in ("created", *COURIER_STATUSES):
        raise ValidationFailed(
            f"unknown status {status!r}",
            code="invalid_status",
            errors=[{"field": "status", "message": "is not a dispatch status"}],
        )
    stmt = select(Dispatch).where(Dispatch.partner == partner)
    if status is not None:
        stmt = stmt.where(Dispatch.status == status)
    return list((await session.execute(page(stmt, Dispatch.id, cursor, limit))).scalars())


async def dispatches_for_day(session: AsyncSession, partner: str, day: Any) -> list[Dispatch]:
    """The partner's hand-over list for its local day `day`, in the order created."""
    stmt = (
        select(Dispatch)
        .where(Dispatch.partner == partner, Dispatch.handover_date == day)
        .order_by(Dispatch.id)
    )
    return list((await session.execute(stmt)).scalars())
