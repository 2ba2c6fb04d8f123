"""Licences: issued for a paid matter (by its department, or on payment for `auto_issue`
matters), read with their timeline, revoked, collected at the window, redispatched.

A licence is born `issued`, signed (its QR code's verify code) and announced by
`license.issued` in the same transaction; every later move goes through
`onetrip.states.apply` on `LICENSE_MACHINE`. Functions take the caller's session and
never commit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from delivery import dispatching, signing
from delivery.events import license_event
from delivery.models import Dispatch, DispatchEvent, License
from delivery.printers import DEFAULT_STATION, parse_printers
from delivery.schemas import (
    LicenseDispatch,
    LicenseIn,
    LicenseOut,
    LicenseTimelineEntry,
    RedispatchIn,
)
from delivery.states import (
    ISSUED,
    LICENSE_MACHINE,
    NEEDS_ATTENTION,
    RETURNED,
    REVOKED,
)
from onetrip import outbox
from onetrip.auth import Principal
from onetrip.clock import utcnow
from onetrip.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from onetrip.ids import new_id
from onetrip.pagination import envelope, page
from onetrip.settings import get_settings
from onetrip.states import StateTransition, Transition, apply
from payments import catalogue
from payments import service as payments
from payments.models import Department, Payment
from payments.states import SUCCEEDED

log = logging.getLogger("onetrip.delivery.licenses")

#: what a licence's timeline calls the licence's own birth (not a machine move)
ISSUE_EVENT = "issue"


# --- issuing ---------------------------------------------------------------------------


#: the days a licence's validity may name (the verify code stores each as a day number)
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def _check_validity(valid_from: date | None, valid_until: date | None) -> None:
    errors = [
        {"field": name, "message": f"must be between {EARLIEST_DAY} and {LATEST_DAY}"}
        for name, day in (("valid_from", valid_from), ("valid_until", valid_until))
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY
    ]
    if not errors and valid_from and valid_until and valid_until < valid_from:
        errors = [{"field": "valid_until", "message": "must not be before valid_from"}]
    if errors:
        raise ValidationFailed(
            f"the validity is not possible: {errors[0]['field']} {errors[0]['message']}",
            code="invalid_validity",
            errors=errors,
        )


async def _check_issuable(
    session: AsyncSession, payment: Payment, *, looked_for_licence: bool = False
) -> None:
    """Refuse (409) a licence for money that is not (or no longer) there, or for a matter
    whose licence is not delivered; and a second licence for one payment (unless the
    caller `looked_for_licence` already, under the payment's row lock, and found none)."""
    existing: License | None = None
    if payment.status != SUCCEEDED:
        raise Conflict(
            f"payment {payment.id} is {payment.status}, not paid: no licence yet",
            code="payment_not_paid",
        )
    if payment.refund_status == "full":
        raise Conflict(f"payment {payment.id} was refunded in full", code="payment_refunded")
    info = await catalogue.matter_info(payment.matter_code, session)
    if info is None or not info.deliverable:
        raise Conflict(
            f"matter {payment.matter_code} issues no licence to deliver",
            code="matter_not_deliverable",
        )
    if not looked_for_licence:
        existing = await license_of_payment(session, payment.id)
    if existing is not None:
        raise Conflict(
            f"payment {payment.id} has its licence already: {existing.id}",
            code="license_exists",
            extra={"license_id": existing.id},
        )


async def _license_no_taken(session: AsyncSession, department: str, license_no: str) -> bool:
    stmt = select(License.id).where(
        License.department == department, License.license_no == license_no
    )
    return (await session.execute(stmt)).first() is not None


async def license_of_payment(session: AsyncSession, payment_id: str) -> License | None:
    """The licence issued for a payment (there is at most one)."""
    stmt = select(License).where(License.payment_id == payment_id).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


def _new_license(
    payment: Payment,
    *,
    license_no: str,
    title: str,
    holder_name: str,
    fields: dict[str, str],
    valid_from: date | None,
    valid_until: date | None,
) -> License:
    """The licence of a payment, not yet signed nor added. The payment's delivery
    method and address are copied: a redispatch may correct the licence's address
    later, never the payment's."""
    now = utcnow()
    delivery = payment.delivery or {}
    return License(
        id=new_id("lic"),
        department=payment.department,
        payment_id=payment.id,
        matter_code=payment.matter_code,
        license_no=license_no,
        title=title,
        holder_name=holder_name,
        fields=dict(fields),
        valid_from=valid_from,
        valid_until=valid_until,
        status=ISSUED,
        delivery_method=delivery.get("method") or "pickup",
        address=delivery.get("address"),
        print_station=print_station(payment.department),
        created_at=now,
        updated_at=now,
    )


async def _keep_issued(session: AsyncSession, issued: list[License]) -> None:
    """Insert signed licences (one statement for all) and write their `license.issued`
    events (one more)."""
    session.add_all(issued)
    await session.flush()
    await outbox.record_events(
        session,
        [
            outbox.event_values(
                "license.issued",
                msgspec.to_builtins(license_event(license)),
                payment_id=license.payment_id,
                department=license.department,
                subject_id=license.id,
                occurred_at=license.created_at,
            )
            for license in issued
        ],
    )


def print_station(department: str) -> str:
    """Where the licence prints: the department's own station when `ONETRIP_PRINTERS`
    names one, else the default station (one run for every other department)."""
    try:
        stations = parse_printers(get_settings().printers)
    except ValueError:  # refused when the print job reads it; issuing goes on
        stations = {}
    return department if department in stations else DEFAULT_STATION


async def issue_license(session: AsyncSession, principal: Principal, data: LicenseIn) -> License:
    """Issue a licence for one of the department's paid payments (POST /licenses).

    404 for a payment the key may not see; 409 `payment_not_paid`, `payment_refunded`,
    `matter_not_deliverable`, `license_exists` (naming it), `license_no_exists`; 422
    for a validity that ends before it starts."""
    _check_validity(data.valid_from, data.valid_until)
    # The payment's row lock makes "one licence per payment" hold under concurrent issues.
    payment = await payments.get_payment(session, principal, data.payment_id, lock=True)
    await _check_issuable(session, payment)
    if await _license_no_taken(session, payment.department, data.license_no):
        raise Conflict(
            f"licence number {data.license_no} is taken in department {payment.department}",
            code="license_no_exists",
        )
    license = _new_license(
        payment,
        license_no=data.license_no,
        title=data.title,
        holder_name=data.holder_name,
        fields=data.fields,
        valid_from=data.valid_from,
        valid_until=data.valid_until,
    )
    # Signed before it is added: one INSERT carries the code (no UPDATE after it).
    await signing.sign_license(session, license)
    await _keep_issued(session, [license])
    return license


async def department_today(session: AsyncSession, department: str) -> date:
    """Today in the department's time zone (an auto-issued licence's year and start)."""
    row = await session.get(Department, department)
    try:
        zone = ZoneInfo(row.timezone if row else "Asia/Shanghai")
    except (KeyError, ValueError):
        zone = ZoneInfo("Asia/Shanghai")
    return utcnow().astimezone(zone).date()


def auto_license_numbers(department: str, year: int, payment_id: str) -> list[str]:
    """The numbers an auto-issued licence may take, shortest first: the department, the
    year and the random tail of the payment id (`PSB-2026-7KX3QF9M`). Each is readable
    and derived from the payment, so a repeated event proposes the same ones; a longer
    one is taken only when a shorter one is already used in the department."""
    tail = payment_id.split("_", 1)[-1].upper()
    return [f"{department}-{year}-{tail[-n:]}" for n in (8, 12, len(tail))]


async def auto_issue(session: AsyncSession, payment_id: str) -> License | None:
    """Issue the licence of a just-paid `auto_issue` matter; None when there is nothing
    to issue (another kind of matter, the payment no longer paid) or the licence exists
    already (a repeated event, or the department issued it first)."""
    issued = await auto_issue_many(session, [payment_id])
    return issued[0] if issued else None


async def auto_issue_many(session: AsyncSession, payment_ids: Iterable[str]) -> list[License]:
    """`auto_issue` for several payments at once (a relay pass's `payment.succeeded`
    events), in a few statements whatever their number: the payments locked in id order
    (as every writer locks them), one read for their licences and the numbers taken, one
    key lookup, one INSERT of the licences and one of their events. The licences issued,
    in payment id order.

    409 `license_no_exists` when every number a payment may take is taken (the caller's
    unit of work rolls back: the consumer then tries each event alone)."""
    ids = sorted(set(payment_ids))
    if not ids:
        return []
    stmt = (
        select(Payment)
        .where(Payment.id.in_(ids))
        .order_by(Payment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    paid = []
    for payment in (await session.execute(stmt)).scalars():
        info = await catalogue.matter_info(payment.matter_code, session)
        if info is not None and info.auto_issue and info.deliverable:
            paid.append(payment)
    if not paid:
        return []
    today = {d: await department_today(session, d) for d in sorted({p.department for p in paid})}
    numbers = {
        p.id: auto_license_numbers(p.department, today[p.department].year, p.id) for p in paid
    }
    # One query: the payments' licences, if any, and which of their numbers are taken.
    by_department: dict[str, list[str]] = {}
    for payment in paid:
        by_department.setdefault(payment.department, []).extend(numbers[payment.id])
    found = (
        await session.execute(
            select(License.payment_id, License.department, License.license_no).where(
                or_(
                    License.payment_id.in_([p.id for p in paid]),
                    *(
                        and_(License.department == department, License.license_no.in_(wanted))
                        for department, wanted in by_department.items()
                    ),
                )
            )
        )
    ).all()
    with_licence = {row.payment_id for row in found}
    taken = {(row.department, row.license_no) for row in found}
    kid, key = await signing.current_key(session)
    issued = []
    for payment in paid:
        if payment.id in with_licence:
            continue
        try:
            await _check_issuable(session, payment, looked_for_licence=True)
        except Conflict as refused:
            log.info("no licence issued for payment %s: %s", payment.id, refused.detail)
            continue
        # the shortest free one (the longest, the whole id, is free when the others are)
        license_no = next(
            (n for n in numbers[payment.id] if (payment.department, n) not in taken), None
        )
        if license_no is None:
            raise Conflict(
                f"every automatic licence number of payment {payment.id} is taken in "
                f"department {payment.department}",
                code="license_no_exists",
            )
        taken.add((payment.department, license_no))
        applicant = payment.applicant or {}
        license = _new_license(
            payment,
            license_no=license_no,
            title=payment.matter_name,
            holder_name=str(applicant.get("name") or payment.reference),
            fields={"业务编号": payment.reference},
            valid_from=today[payment.department],
            valid_until=None,
        )
        signing.sign_license_with(license, kid, key)  # before it is added: one INSERT
        issued.append(license)
    if issued:
        await _keep_issued(session, issued)
    return issued


# --- reading ---------------------------------------------------------------------------


async def get_license(
    session: AsyncSession, principal: Principal, license_id: str, *, lock: bool = False
) -> License:
    """The licence if the key may see it; another department's is a 404."""
    stmt = select(License).where(License.id == license_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    license = (await session.execute(stmt)).scalar_one_or_none()
    if license is None or not principal.sees_department(license.department):
        raise NotFound(f"no licence {license_id}", code="license_not_found")
    return license


async def _latest_dispatches(
    session: AsyncSession, license_ids: Iterable[str]
) -> dict[str, Dispatch]:
    ids = list(license_ids)
    if not ids:
        return {}
    stmt = select(Dispatch).where(Dispatch.license_id.in_(ids)).order_by(Dispatch.id)
    return {d.license_id: d for d in (await session.execute(stmt)).scalars()}  # newest wins


def license_view(license: License, dispatch: Dispatch | None = None) -> LicenseOut:
    return LicenseOut(
        id=license.id,
        status=license.status,
        license_no=license.license_no,
        title=license.title,
        holder_name=license.holder_name,
        fields=dict(license.fields or {}),
        valid_from=license.valid_from,
        valid_until=license.valid_until,
        payment_id=license.payment_id,
        department=license.department,
        matter_code=license.matter_code,
        delivery_method=license.delivery_method,
        address=license.address,
        print_station=license.print_station,
        verify_url=signing.verify_url(license.verify_code) if license.verify_code else None,
        revoked_at=license.revoked_at,
        revoke_reason=license.revoke_reason,
        collected_by=license.collected_by,
        collected_at=license.collected_at,
        dispatch=(
            LicenseDispatch(
                id=dispatch.id,
                partner=dispatch.partner,
                tracking_number=dispatch.tracking_number,
                status=dispatch.status,
            )
            if dispatch
            else None
        ),
        created_at=license.created_at,
        updated_at=license.updated_at,
    )


async def view(session: AsyncSession, license: License) -> LicenseOut:
    """The licence as the API shows it, with its latest parcel."""
    dispatches = await _latest_dispatches(session, [license.id])
    return license_view(license, dispatches.get(license.id))


async def list_licenses(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None = None,
    payment_id: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One page of the licences the key may see, newest first.
    `status=needs_attention` is the list of licences waiting for a courier partner."""
    stmt = select(License)
    if principal.role != "admin" and not principal.all_departments:
        stmt = stmt.where(License.department.in_(principal.departments))
    if status:
        stmt = stmt.where(License.status == status)
    if payment_id:
        stmt = stmt.where(License.payment_id == payment_id)
    rows = list((await session.execute(page(stmt, License.id, cursor, limit))).scalars())
    dispatches = await _latest_dispatches(session, (r.id for r in rows))
    views = [license_view(r, dispatches.get(r.id)) for r in rows]
    return envelope(views, limit, id_of=lambda item: item.id)


async def timeline(
    session: AsyncSession, principal: Principal, license_id: str
) -> list[LicenseTimelineEntry]:
    """Everything that happened to a licence, oldest first: its issue, each move of its
    machine, and its parcels' creation and courier events (late ones too, marked)."""
    license = await get_license(session, principal, license_id)
    entries = [
        LicenseTimelineEntry(
            occurred_at=license.created_at, source="license", event=ISSUE_EVENT, status=ISSUED
        )
    ]
    moves = StateTransition.__table__.c
    rows = (
        await session.execute(
            select(StateTransition.__table__)
            .where(moves.machine == LICENSE_MACHINE.name, moves.subject_id == license.id)
            .order_by(moves.id)
        )
    ).all()
    reasons = await _reasons(session, license)
    for row in rows:
        reason = None
        if row.applied and row.to_state in reasons and reasons[row.to_state]:
            reason = reasons[row.to_state].pop(0)
        entries.append(
            LicenseTimelineEntry(
                occurred_at=row.occurred_at,
                source="license",
                event=row.event,
                status=row.to_state,
                previous_status=row.from_state,
                applied=row.applied,
                reason=reason,
            )
        )
    dispatches = list(
        (
            await session.execute(
                select(Dispatch).where(Dispatch.license_id == license.id).order_by(Dispatch.id)
            )
        ).scalars()
    )
    by_id = {d.id: d for d in dispatches}
    for dispatch in dispatches:
        entries.append(
            LicenseTimelineEntry(
                occurred_at=dispatch.created_at,
                source="dispatch",
                event="create",
                status="created",
                dispatch_id=dispatch.id,
                partner=dispatch.partner,
                tracking_number=dispatch.tracking_number,
            )
        )
    if by_id:
        events = (
            await session.execute(
                select(DispatchEvent)
                .where(DispatchEvent.dispatch_id.in_(list(by_id)))
                .order_by(DispatchEvent.id)
            )
        ).scalars()
        for event in events:
            dispatch = by_id[event.dispatch_id]
            entries.append(
                LicenseTimelineEntry(
                    occurred_at=event.occurred_at,
                    source="dispatch",
                    event=event.status,
                    status=event.status,
                    applied=event.applied,
                    dispatch_id=dispatch.id,
                    partner=dispatch.partner,
                    tracking_number=dispatch.tracking_number,
                    location=event.location,
                    note=event.note,
                    recipient_name=event.recipient_name,
                )
            )
    # stable: within one moment, the order written (issue first, a move before its parcel)
    return sorted(entries, key=lambda entry: entry.occurred_at)


async def _reasons(session: AsyncSession, license: License) -> dict[str, list[str | None]]:
    """The `reason` of each of the licence's events, by the status it reached, in order
    (revoked: why; needs_attention: what is missing): the outbox keeps them."""
    table = outbox.OutboxEvent.__table__.c
    wanted = {LICENSE_MACHINE.emits[s]: s for s in (REVOKED, NEEDS_ATTENTION)}
    rows = (
        await session.execute(
            select(table.type, table.data)
            .where(table.subject_id == license.id, table.type.in_(list(wanted)))
            .order_by(table.id)
        )
    ).all()
    reasons: dict[str, list[str | None]] = {}
    for row in rows:
        reasons.setdefault(wanted[row.type], []).append((row.data or {}).get("reason"))
    return reasons


# --- moving ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    """What `move_licenses` did: the licences moved (their rows, as they are now) and the
    ones whose status does not allow the event (left as they are)."""

    moved: list[Any]
    refused: list[Any]


async def move_licenses(
    session: AsyncSession,
    license_ids: Iterable[str],
    event: str,
    data: Callable[[Any, str], Any] | None = None,
    *,
    before: Callable[[Any], Awaitable[None]] | None = None,
) -> Moved:
    """Apply `event` to many licences at once, as `onetrip.states.apply` does to one:
    the same rows written (status and `updated_at`, a `state_transitions` record, the
    outbox event of the state reached), the same rules (a repeat changes nothing; a move
    the table lacks is refused), in a few statements instead of four per licence, and
    without the ORM. The rows are locked in id order (no deadlock with another batch);
    records and events are written in the order of `license_ids`.

    `data(row, previous_status)` is the outbox event's data of each moved licence (`row`
    carries the new status); by default its `license_event`. `before(row)` runs for each
    licence that will move (locked, as it was read) before anything is written: the
    domain's part of the move; what it raises stops the batch.
    """
    given = list(dict.fromkeys(license_ids))  # the order the writes follow
    ids = sorted(given)
    if not ids:
        return Moved([], [])
    table = License.__table__
    locked = (
        await session.execute(
            select(table).where(table.c.id.in_(ids)).order_by(table.c.id).with_for_update()
        )
    ).all()
    moved: list[tuple[Any, str, str]] = []  # (row now, previous status, target)
    refused: list[Any] = []
    place = {license_id: n for n, license_id in enumerate(given)}
    for row in sorted(locked, key=lambda row: place[row.id]):
        if LICENSE_MACHINE.is_repeat(row.status, event):
            continue
        target = LICENSE_MACHINE.target(row.status, event)
        if target is None:
            refused.append(row)
        else:
            if before is not None:
                await before(row)
            moved.append((_Row({**row._mapping, "status": target}), row.status, target))
    if not moved:
        return Moved([], refused)
    now = utcnow()
    by_target: dict[str, list[str]] = {}
    for row, _previous, target in moved:
        row.updated_at = now
        by_target.setdefault(target, []).append(row.id)
    for target, target_ids in by_target.items():
        await session.execute(
            update(table).where(table.c.id.in_(target_ids)).values(status=target, updated_at=now)
        )
    await session.execute(
        insert(StateTransition.__table__),
        [
            {
                "machine": LICENSE_MACHINE.name,
                "subject_id": row.id,
                "event": event,
                "from_state": previous,
                "to_state": target,
                "applied": True,
                "occurred_at": now,
                "recorded_at": now,
            }
            for row, previous, target in moved
        ],
    )
    make = data or (lambda row, previous: license_event(row, previous_status=previous))
    events = [
        outbox.event_values(
            LICENSE_MACHINE.emits[target],
            _builtins(make(row, previous)),
            subject_id=row.id,
            occurred_at=now,
            payment_id=row.payment_id,
            department=row.department,
        )
        for row, previous, target in moved
    ]
    await session.execute(insert(outbox.OutboxEvent.__table__), events)
    return Moved([row for row, _, _ in moved], refused)


class _Row(dict[str, Any]):
    """A licence's columns, read as attributes (what `license_event` reads)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _builtins(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else msgspec.to_builtins(data)


async def revoke(
    session: AsyncSession, principal: Principal, license_id: str, reason: str
) -> License:
    """Revoke a licence (from any status but delivered or collected); its verify page
    says so from then on. Revoking a revoked licence changes nothing."""
    license = await get_license(session, principal, license_id)

    async def record(row: License, move: Transition[License]) -> Any:
        row.revoked_at = utcnow()
        row.revoke_reason = reason
        return license_event(row, previous_status=move.previous, reason=reason)

    return (await apply(session, LICENSE_MACHINE, license, "revoke", record)).row


async def collect(
    session: AsyncSession, principal: Principal, license_id: str, collected_by: str
) -> License:
    """Record that the licence was collected at the window (pickup_ready → collected)."""
    license = await get_license(session, principal, license_id)

    async def record(row: License, move: Transition[License]) -> Any:
        row.collected_by = collected_by
        row.collected_at = utcnow()
        return license_event(row, previous_status=move.previous)

    return (await apply(session, LICENSE_MACHINE, license, "collect", record)).row


async def redispatch(
    session: AsyncSession, principal: Principal, license_id: str, data: RedispatchIn
) -> License:
    """Send a returned (or unallocated) licence out again, to a corrected address when
    one is given: the courier side (`delivery.dispatching.redispatch`) allocates a
    partner and creates the new parcel, or leaves it in needs_attention."""
    license = await get_license(session, principal, license_id, lock=True)
    if license.status not in (RETURNED, NEEDS_ATTENTION):
        raise InvalidTransition(
            f"licence {license.id} is {license.status}; only a returned licence or one "
            "waiting for a courier partner can be dispatched again",
            code="invalid_state_transition",
        )
    address = dict(data.address) if data.address is not None else None
    await dispatching.redispatch(session, license, address)
    return await get_license(session, principal, license_id)
