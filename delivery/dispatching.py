"""Dispatches: a printed licence handed to a courier partner (or put out for pickup).

`dispatch_printed_license` is what the `license.printed` consumer does; `redispatch` is
what a department asks for after a return or when no partner served the address. Both
run in the caller's unit of work under the licence's row lock, so one licence print
makes exactly one dispatch even when the event arrives twice or two workers race.

A new dispatch commits together with its `dispatch.created` outbox event, the partner's
Standard Webhooks delivery (for partners with a webhook URL; sent after commit by the
kernel's sender, retried on failure) and the licence's move to `dispatched`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from delivery import service
from delivery.allocation import BatchAllocator, allocate
from delivery.events import dispatch_event, license_event
from delivery.models import CourierPartner, Dispatch, License, PrintRunItem
from delivery.states import (
    D_CREATED,
    LICENSE_MACHINE,
    NEEDS_ATTENTION,
    PRINTED,
    RETURNED,
)
from onetrip import outbox, states
from onetrip.clock import utcnow
from onetrip.errors import InvalidTransition, NotFound, ValidationFailed
from onetrip.ids import new_id
from onetrip.webhooks import enqueue

log = logging.getLogger(__name__)

ADDRESS_FIELDS = ("recipient", "phone", "province", "city", "district", "line1")
ADDRESS_MAX = 200
TRACKING_PREFIX = "OT"


# --- tracking numbers ------------------------------------------------------------------


def luhn_digit(digits: str) -> str:
    """The Luhn check digit of a string of digits (catches any single wrong digit and
    most swaps of neighbours: what a person misreading a label does)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def new_tracking_number() -> str:
    """`OT` + 11 random digits + a Luhn check digit, e.g. OT482019374651."""
    body = "".join(secrets.choice("0123456789") for _ in range(11))
    return f"{TRACKING_PREFIX}{body}{luhn_digit(body)}"


def valid_tracking_number(value: str) -> bool:
    body = value.removeprefix(TRACKING_PREFIX)
    return (
        value.startswith(TRACKING_PREFIX)
        and len(body) == 12
        and body.isdigit()
        and luhn_digit(body[:-1]) == body[-1]
    )


# --- addresses -------------------------------------------------------------------------


def address_problems(address: Any) -> list[dict[str, str]]:
    """What is missing or wrong in a delivery address, one error per field."""
    if not isinstance(address, Mapping):
        return [{"field": "address", "message": "must be an object"}]
    errors = []
    for name in ADDRESS_FIELDS:
        value = address.get(name)
        if not isinstance(value, str) or not value.strip():
            errors.append({"field": f"address.{name}", "message": "is required"})
        elif len(value) > ADDRESS_MAX:
            errors.append(
                {"field": f"address.{name}", "message": f"at most {ADDRESS_MAX} characters"}
            )
    postal = address.get("postal_code")
    if postal is not None and not isinstance(postal, str):
        errors.append({"field": "address.postal_code", "message": "must be a string"})
    return errors


def checked_address(address: Any) -> dict[str, Any]:
    """A complete delivery address (recipient, phone, province, city, district, line1),
    or ValidationFailed (422) naming each missing field."""
    errors = address_problems(address)
    if errors:
        missing = ", ".join(error["field"] for error in errors)
        raise ValidationFailed(
            f"the delivery address is incomplete: {missing}",
            code="invalid_address",
            errors=errors,
        )
    fields = (*ADDRESS_FIELDS, "postal_code", "line2")
    return {name: address[name].strip() for name in fields if isinstance(address.get(name), str)}


# --- dispatching -----------------------------------------------------------------------


#: At most this many other printed licences of the same print run are handed on in the
#: unit of work of one licence's `license.printed` (one partner lock per batch, not one
#: per licence); their own events, when they come, find them handed on: no-ops.
DISPATCH_BATCH = 50


async def dispatch_printed_license(session: AsyncSession, license_id: str) -> Dispatch | None:
    """Hand a printed licence on: pickup → `pickup_ready`; courier → a dispatch to the
    partner allocation chooses (→ `dispatched`), or `needs_attention` with the reason.
    Then, in the same unit of work, the other licences of its print run that are still
    `printed` and that no one else holds (up to `DISPATCH_BATCH`): the same, each under
    its row lock, so each is handed on once whichever event gets to it first.

    A licence that is no longer `printed` (already handed on, revoked) is left alone, so
    a repeated or late event changes nothing. Returns this licence's new dispatch, if any.
    """
    licenses = License.__table__
    own = (
        await session.execute(select(licenses).where(licenses.c.id == license_id).with_for_update())
    ).first()
    if own is None:
        raise NotFound(f"no license {license_id}", code="license_not_found")
    if own.status != PRINTED:
        return None
    mates = await _printed_run_mates(session, license_id, DISPATCH_BATCH)
    if mates:
        try:
            async with session.begin_nested():  # a batch that fails: this licence alone
                return (await _hand_on_batch(session, [own, *mates]))[0]
        except Exception:
            log.exception("licence %s: its print run's batch failed; handed on alone", own.id)
    return (await _hand_on_batch(session, [own]))[0]


async def _printed_run_mates(session: AsyncSession, license_id: str, limit: int) -> list[Any]:
    """The other `printed` licences of the licence's latest print run, locked (Core
    rows); the ones another transaction holds are skipped (PostgreSQL), never waited
    for, so a batch cannot deadlock with another (nor with a licence's own event)."""
    licenses = License.__table__
    items = PrintRunItem.__table__.c
    run_id = (
        select(items.print_run_id)
        .where(items.license_id == license_id)
        .order_by(items.print_no.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = (
        select(licenses)
        .join(PrintRunItem.__table__, items.license_id == licenses.c.id)
        .where(
            items.print_run_id == run_id,
            licenses.c.id != license_id,
            licenses.c.status == PRINTED,
        )
        .order_by(items.position)
        .limit(limit)
        .with_for_update(skip_locked=True, of=licenses)
    )
    return list((await session.execute(stmt)).all())


async def _hand_on_batch(session: AsyncSession, rows: list[Any]) -> list[Dispatch | None]:
    """Hand on printed licences (locked Core rows, in order) as `dispatch_printed_license`
    promises for each, in a few statements: one partner lock for all of them
    (`BatchAllocator`), one INSERT of their dispatches and one of their `dispatch.created`
    events, and their moves as `onetrip.states.apply` makes them
    (`licenses.move_licenses`). Returns each licence's new dispatch (None: pickup, or
    needs attention)."""
    from delivery.licenses import move_licenses  # delivery.licenses imports this module

    now = utcnow()
    couriers = [row for row in rows if row.delivery_method != "pickup"]
    allocator = BatchAllocator(session, now=now)
    await allocator.lock_for([row.address for row in couriers if not address_problems(row.address)])
    made: dict[str, Dispatch] = {}
    chosen: dict[str, CourierPartner] = {}
    reasons: dict[str, str | None] = {}
    for row in couriers:
        problems = address_problems(row.address)
        if problems:
            missing = ", ".join(p["field"] for p in problems)
            reasons[row.id] = f"the delivery address is incomplete: {missing}"
            continue
        allocation = await allocator.allocate(row.address)
        if allocation.partner is None or allocation.handover_date is None:
            reasons[row.id] = allocation.reason
            continue
        chosen[row.id] = allocation.partner
        made[row.id] = Dispatch(
            id=new_id("dsp"),
            license_id=row.id,
            payment_id=row.payment_id,
            department=row.department,
            partner=allocation.partner.code,
            tracking_number=new_tracking_number(),
            status=D_CREATED,
            address=dict(row.address),
            handover_date=allocation.handover_date,
            failed_attempts=0,
            created_at=now,
            updated_at=now,
        )
    if made:
        columns = [
            c.key
            for c in Dispatch.__table__.columns
            if c.key not in ("recipient_name", "delivered_at")
        ]
        await session.execute(
            insert(Dispatch.__table__),
            [{c: getattr(d, c) for c in columns} for d in made.values()],
        )
        created = []
        for dispatch in made.values():
            data = dispatch_event(dispatch)
            values = outbox.event_values(
                "dispatch.created",
                msgspec.to_builtins(data),
                payment_id=dispatch.payment_id,
                department=dispatch.department,
                subject_id=dispatch.id,
                occurred_at=now,
            )
            created.append((dispatch, data, values))
        await session.execute(insert(outbox.OutboxEvent.__table__), [v for _, _, v in created])
        for dispatch, data, values in created:
            partner = chosen[dispatch.license_id]
            if partner.webhook_url:
                await enqueue(
                    session,
                    target=service.webhook_target(partner.code),
                    url=partner.webhook_url,
                    secrets=[await service.partner_secret(session, partner)],
                    event_id=values["id"],
                    event_type="dispatch.created",
                    created_at=now,
                    data=data,
                )

    def event_data(row: Any, previous: str) -> Any:
        reason = reasons.get(row.id, msgspec.UNSET)
        return license_event(
            row,
            previous_status=previous,
            dispatch=made.get(row.id),
            reason=reason if reason is not None else msgspec.UNSET,
        )

    for event, ids in (
        ("ready_for_pickup", [row.id for row in rows if row.delivery_method == "pickup"]),
        ("no_partner", [row.id for row in couriers if row.id in reasons]),
        ("dispatch", [row.id for row in couriers if row.id in made]),
    ):
        if ids:
            await move_licenses(session, ids, event, event_data)
    return [made.get(row.id) for row in rows]


async def redispatch(
    session: AsyncSession, license: License, address: dict[str, Any] | None
) -> Dispatch | None:
    """A new dispatch for a `returned` or `needs_attention` licence, to `address` when
    given (it replaces the licence's address), else to the licence's own.

    Returns the dispatch; None when still no partner serves the address (the licence is
    then `needs_attention`, with the reason in its events). 409 from any other status,
    422 naming each missing field of an incomplete address.
    """
    license = await states.lock(session, LICENSE_MACHINE, license.id)
    if license.status not in (RETURNED, NEEDS_ATTENTION):
        raise InvalidTransition(
            f"licence {license.id} is {license.status}; only a returned licence or one that "
            "needs attention can be dispatched again",
            code="invalid_state_transition",
        )
    if address is not None:
        license.address = checked_address(address)
        license.delivery_method = "courier"
    else:
        checked_address(license.address)
    return await _dispatch(session, license, "redispatch")


async def _dispatch(session: AsyncSession, license: License, event: str) -> Dispatch | None:
    problems = address_problems(license.address)
    if problems:
        missing = ", ".join(p["field"] for p in problems)
        await _move(
            session, license, "no_partner", reason=f"the delivery address is incomplete: {missing}"
        )
        return None
    address = license.address or {}
    allocation = await allocate(session, address)
    if allocation.partner is None or allocation.handover_date is None:
        await _move(session, license, "no_partner", reason=allocation.reason)
        return None
    partner = allocation.partner
    now = utcnow()
    dispatch = Dispatch(
        id=new_id("dsp"),
        license_id=license.id,
        payment_id=license.payment_id,
        department=license.department,
        partner=partner.code,
        tracking_number=new_tracking_number(),
        status=D_CREATED,
        address=dict(address),
        handover_date=allocation.handover_date,
        failed_attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(dispatch)
    await session.flush()
    data = dispatch_event(dispatch)
    event_id = await outbox.record_event(
        session,
        "dispatch.created",
        msgspec.to_builtins(data),
        payment_id=dispatch.payment_id,
        department=dispatch.department,
        subject_id=dispatch.id,
        occurred_at=now,
    )
    if partner.webhook_url:
        await enqueue(
            session,
            target=service.webhook_target(partner.code),
            url=partner.webhook_url,
            secrets=[await service.partner_secret(session, partner)],
            event_id=event_id,
            event_type="dispatch.created",
            created_at=now,
            data=data,
        )
    await _move(session, license, event, dispatch=dispatch)
    return dispatch


async def _move(
    session: AsyncSession,
    license: License,
    event: str,
    *,
    dispatch: Dispatch | None = None,
    reason: str | None = None,
) -> states.Transition[License]:
    async def effect(row: License, transition: states.Transition[License]) -> Any:
        return license_event(
            row,
            previous_status=transition.previous,
            dispatch=dispatch,
            reason=reason if reason is not None else msgspec.UNSET,
        )

    return await states.apply(session, LICENSE_MACHINE, license, event, effect)
