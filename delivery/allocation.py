"""Which courier partner takes a parcel: the most specific service area, then the least
loaded partner under its daily capacity, counted per hand-over day in the partner's own
time (after its cut-off a parcel counts towards the next day).

Two dispatches allocated at once never exceed a capacity: the candidate partners' rows
are locked (all at once, in code order, so allocations never deadlock) while their
loads are counted, and the locks are held until the caller's unit of work commits the
new dispatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.models import CourierPartner, Dispatch
from onetrip.clock import utcnow

# district > city > province
DISTRICT, CITY, PROVINCE = 3, 2, 1


@dataclass(frozen=True)
class Allocation:
    """The partner chosen and the hand-over day it counts against, or why there is none."""

    partner: CourierPartner | None
    handover_date: date | None
    reason: str | None = None


def specificity(area: Mapping[str, Any], address: Mapping[str, Any]) -> int:
    """How specifically `area` serves `address`: 3 district, 2 city, 1 province, 0 not."""
    if area.get("province") != address.get("province"):
        return 0
    if area.get("city") is None:
        return PROVINCE
    if area.get("city") != address.get("city"):
        return 0
    if area.get("district") is None:
        return CITY
    return DISTRICT if area.get("district") == address.get("district") else 0


def handover_date(partner: CourierPartner, now: datetime) -> date:
    """The partner's local day a parcel handed over at `now` belongs to: today before
    its cut-off time, the next day from it on."""
    local = now.astimezone(ZoneInfo(partner.timezone or "Asia/Shanghai"))
    hours, minutes = (int(part) for part in (partner.cutoff_time or "17:00").split(":"))
    day = local.date()
    return day + timedelta(days=1) if local.time() >= time(hours, minutes) else day


def describe(address: Mapping[str, Any]) -> str:
    return " ".join(str(address.get(k)) for k in ("province", "city", "district") if address.get(k))


async def _loads(session: AsyncSession, days: dict[str, date]) -> dict[str, int]:
    """Dispatches already counted against each partner's hand-over day."""
    loads = dict.fromkeys(days, 0)
    pairs = days.items()
    wanted = or_(*(and_(Dispatch.partner == c, Dispatch.handover_date == d) for c, d in pairs))
    counts = select(Dispatch.partner, func.count()).where(wanted).group_by(Dispatch.partner)
    for code, count in (await session.execute(counts)).all():
        loads[code] = int(count)
    return loads


async def allocate(
    session: AsyncSession, address: Mapping[str, Any], *, now: datetime | None = None
) -> Allocation:
    """Choose the partner for a parcel to `address` (province, city, district).

    Partners are tried by the specificity of their best area serving the address, most
    specific first; within one level, the least loaded under its capacity wins (ties by
    code). A level whose partners are all full gives way to the next. No partner →
    an Allocation without one, and the reason.
    """
    now = now or utcnow()
    partners = (
        await session.execute(select(CourierPartner.code, CourierPartner.service_areas))
    ).all()
    levels: dict[int, list[str]] = {}
    for code, areas in partners:
        level = max((specificity(area, address) for area in areas or []), default=0)
        if level:
            levels.setdefault(level, []).append(code)
    if not levels:
        return Allocation(None, None, f"no courier partner serves {describe(address)}")
    # Every candidate is locked at once, in code order: allocations for different
    # addresses (whose levels order the same partners differently) never deadlock.
    locked = (
        await session.execute(
            select(CourierPartner)
            .where(CourierPartner.code.in_([c for codes in levels.values() for c in codes]))
            .order_by(CourierPartner.code)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalars()
    partners_by_code = {partner.code: partner for partner in locked}
    full: list[str] = []
    for level in sorted(levels, reverse=True):
        codes = sorted(levels[level])
        candidates = {code: partners_by_code[code] for code in codes}
        days = {code: handover_date(partner, now) for code, partner in candidates.items()}
        loads = await _loads(session, days)
        open_partners = [
            code
            for code, partner in candidates.items()
            if partner.daily_capacity is None or loads[code] < partner.daily_capacity
        ]
        if open_partners:
            chosen = min(open_partners, key=lambda code: (loads[code], code))
            return Allocation(candidates[chosen], days[chosen])
        full += [f"{code} ({days[code].isoformat()})" for code in codes]
    return Allocation(
        None,
        None,
        f"every courier partner serving {describe(address)} is at capacity: {', '.join(full)}",
    )


class BatchAllocator:
    """`allocate` for many parcels in one unit of work, with the same choices it would
    make one after the other: the partners are read once, every candidate of every
    address is locked at once (in code order, as `allocate` locks), each partner's load
    is counted once and then kept up to date here as parcels are given to it."""

    def __init__(self, session: AsyncSession, *, now: datetime | None = None) -> None:
        self.session = session
        self.now = now or utcnow()
        self._areas: list[tuple[str, list[dict[str, Any]]]] | None = None
        self._locked: dict[str, CourierPartner] = {}
        self._loads: dict[str, int] = {}
        self._days: dict[str, date] = {}

    async def _levels(self, address: Mapping[str, Any]) -> dict[int, list[str]]:
        if self._areas is None:
            rows = await self.session.execute(
                select(CourierPartner.code, CourierPartner.service_areas)
            )
            self._areas = [(code, areas or []) for code, areas in rows.all()]
        levels: dict[int, list[str]] = {}
        for code, areas in self._areas:
            level = max((specificity(area, address) for area in areas), default=0)
            if level:
                levels.setdefault(level, []).append(code)
        return levels

    async def lock_for(self, addresses: list[Mapping[str, Any]]) -> None:
        """Lock, at once and in code order, every partner serving one of `addresses`,
        and count their loads. Call it once, before `allocate`."""
        codes: set[str] = set()
        for address in addresses:
            for level_codes in (await self._levels(address)).values():
                codes.update(level_codes)
        if not codes:
            return
        locked = (
            await self.session.execute(
                select(CourierPartner)
                .where(CourierPartner.code.in_(sorted(codes)))
                .order_by(CourierPartner.code)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalars()
        self._locked = {partner.code: partner for partner in locked}
        self._days = {code: handover_date(p, self.now) for code, p in self._locked.items()}
        self._loads = await _loads(self.session, self._days) if self._days else {}

    async def allocate(self, address: Mapping[str, Any]) -> Allocation:
        """What `allocate(session, address)` would answer now; a partner chosen counts
        one more parcel from then on."""
        levels = await self._levels(address)
        if not levels:
            return Allocation(None, None, f"no courier partner serves {describe(address)}")
        full: list[str] = []
        for level in sorted(levels, reverse=True):
            codes = sorted(levels[level])
            if any(code not in self._locked for code in codes):  # not locked by lock_for
                return await allocate(self.session, address, now=self.now)
            open_partners = [
                code
                for code in codes
                if self._locked[code].daily_capacity is None
                or self._loads[code] < (self._locked[code].daily_capacity or 0)
            ]
            if open_partners:
                chosen = min(open_partners, key=lambda code: (self._loads[code], code))
                self._loads[chosen] += 1
                return Allocation(self._locked[chosen], self._days[chosen])
            full += [f"{code} ({self._days[code].isoformat()})" for code in codes]
        return Allocation(
            None,
            None,
            f"every courier partner serving {describe(address)} is at capacity: {', '.join(full)}",
        )
