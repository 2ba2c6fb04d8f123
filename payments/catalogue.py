"""The fee catalogue: departments, matters and their effective-dated fees.

Fees are read on every payment, so the current versions are cached in-process for a
few seconds. Every version (future ones too) is cached, so a fee that takes effect
later needs no invalidation; a new version written here clears this process's cache,
and other processes see it within `CACHE_SECONDS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger import service as ledger
from onetrip.clock import in_utc, utcnow
from onetrip.db import get_database
from onetrip.errors import Conflict, NotFound, ValidationFailed
from onetrip.money import BPS_WHOLE
from payments import views
from payments.models import Department, Matter, MatterFee
from payments.schemas import DepartmentIn, MatterIn

CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class FeeVersion:
    amount: int
    currency: str
    fee_split: tuple[tuple[str, int], ...]
    effective_from: datetime
    created_at: datetime | None = None

    @property
    def applies_from(self) -> datetime:
        """When this version starts to price new payments: its `effective_from`, but
        never before it was written (a fee cannot apply to payments already made, and
        one dated in the past replaces the fee in force at once)."""
        if self.created_at is None:
            return self.effective_from
        return max(self.effective_from, self.created_at)


@dataclass(frozen=True)
class MatterInfo:
    code: str
    name: str
    department: str
    deliverable: bool
    auto_issue: bool
    required_materials: tuple[str, ...]
    fees: tuple[FeeVersion, ...]  # ascending applies_from, then in the order written

    def fee_at(self, moment: datetime) -> FeeVersion | None:
        current = None
        for fee in self.fees:
            if fee.applies_from <= moment:
                current = fee
        return current


_cache: dict[str, tuple[float, MatterInfo | None]] = {}


def clear_cache() -> None:
    _cache.clear()


def matter_view(info: MatterInfo, at: datetime | None = None) -> views.MatterView:
    """The matter with the fee in force at `at` (now by default)."""
    return views.matter_view(info, at or utcnow())


async def create_department(session: AsyncSession, data: DepartmentIn) -> Department:
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(data.timezone)
    except Exception:
        raise ValidationFailed(
            "unknown time zone",
            code="invalid_timezone",
            errors=[{"field": "timezone", "message": "not an IANA time zone name"}],
        ) from None
    if await session.get(Department, data.code):
        raise Conflict(f"department {data.code} exists already", code="department_exists")
    department = Department(
        code=data.code,
        name=data.name,
        timezone=data.timezone,
        contact_email=data.contact_email,
        stripe_fees_borne_by=data.stripe_fees_borne_by,
        created_at=utcnow(),
    )
    session.add(department)
    await session.flush()
    await ledger.open_department_accounts(
        session,
        data.code,
        data.name,
        timezone=data.timezone,
        stripe_fees_borne_by=data.stripe_fees_borne_by,
    )
    return department


async def list_departments(session: AsyncSession) -> list[Department]:
    return list((await session.execute(select(Department).order_by(Department.code))).scalars())


def _fee_version(row: MatterFee) -> FeeVersion:
    return FeeVersion(
        amount=row.amount,
        currency=row.currency,
        fee_split=tuple((s["department"], int(s["share_bps"])) for s in row.fee_split),
        effective_from=row.effective_from,
        created_at=row.created_at,
    )


async def _load(session: AsyncSession, code: str) -> MatterInfo | None:
    matter = await session.get(Matter, code)
    if matter is None:
        return None
    fees = (
        await session.execute(
            select(MatterFee).where(MatterFee.matter_code == code).order_by(MatterFee.id)
        )
    ).scalars()
    return MatterInfo(
        code=matter.code,
        name=matter.name,
        department=matter.department,
        deliverable=matter.deliverable,
        auto_issue=matter.auto_issue,
        required_materials=tuple(matter.required_materials or ()),
        # stable sort: versions that apply from the same moment keep the order written
        fees=tuple(sorted((_fee_version(f) for f in fees), key=lambda fee: fee.applies_from)),
    )


async def matter_info(code: str, session: AsyncSession | None = None) -> MatterInfo | None:
    """The matter with all its fee versions, from the cache when fresh."""
    now = time.monotonic()
    cached = _cache.get(code)
    if cached is not None and cached[0] > now:
        return cached[1]
    if session is None:
        async with get_database().session() as own:
            info = await _load(own, code)
    else:
        info = await _load(session, code)
    _cache[code] = (now + CACHE_SECONDS, info)
    return info


async def get_matter(code: str) -> MatterInfo:
    info = await matter_info(code)
    if info is None:
        raise NotFound(f"no matter {code}", code="matter_not_found")
    return info


async def list_matters(session: AsyncSession, department: str | None) -> list[MatterInfo]:
    stmt = select(Matter.code).order_by(Matter.code)
    if department:
        stmt = stmt.where(Matter.department == department)
    codes = list((await session.execute(stmt)).scalars())
    infos = [await _load(session, code) for code in codes]
    return [info for info in infos if info is not None]


async def define_matter(session: AsyncSession, data: MatterIn) -> MatterInfo:
    """Create a matter, or add a fee version to it (effective from `effective_from`)."""
    if not await session.get(Department, data.department):
        raise ValidationFailed(
            f"unknown department {data.department}",
            code="unknown_department",
            errors=[{"field": "department", "message": "no such department"}],
        )
    shares = data.fee_split or []
    split = [(s.department, s.share_bps) for s in shares] or [(data.department, BPS_WHOLE)]
    if sum(bps for _, bps in split) != BPS_WHOLE:
        raise ValidationFailed(
            "fee_split shares must add up to 10000 basis points",
            code="invalid_fee_split",
            errors=[{"field": "fee_split", "message": "share_bps must sum to 10000"}],
        )
    if len({d for d, _ in split}) != len(split):
        raise ValidationFailed(
            "a department appears twice in fee_split",
            code="invalid_fee_split",
            errors=[{"field": "fee_split", "message": "each department once"}],
        )
    for department, _ in split:
        if not await session.get(Department, department):
            raise ValidationFailed(
                f"unknown department {department} in fee_split",
                code="unknown_department",
                errors=[{"field": "fee_split", "message": f"no department {department}"}],
            )
    now = utcnow()
    effective_from = data.effective_from or now
    if effective_from.tzinfo is None:
        raise ValidationFailed(
            "effective_from needs a time zone (RFC 3339)",
            errors=[{"field": "effective_from", "message": "must include a UTC offset"}],
        )
    if in_utc(effective_from) is None:
        raise ValidationFailed(
            "effective_from must fall within years 1 to 9999 in UTC",
            errors=[{"field": "effective_from", "message": "out of range"}],
        )
    matter = await session.get(Matter, data.code)
    if matter is None:
        matter = Matter(
            code=data.code,
            name=data.name,
            department=data.department,
            deliverable=data.deliverable,
            auto_issue=data.auto_issue,
            required_materials=list(data.required_materials or []),
            created_at=now,
            updated_at=now,
        )
        session.add(matter)
    else:
        if matter.department != data.department:
            raise Conflict(
                f"matter {data.code} belongs to department {matter.department}",
                code="matter_department_mismatch",
            )
        matter.name = data.name
        matter.deliverable = data.deliverable
        matter.auto_issue = data.auto_issue
        if data.required_materials is not None:
            matter.required_materials = list(data.required_materials)
        matter.updated_at = now
    await session.flush()
    session.add(
        MatterFee(
            matter_code=data.code,
            amount=data.amount,
            currency=data.currency,
            fee_split=[{"department": d, "share_bps": bps} for d, bps in split],
            effective_from=effective_from,
            created_at=now,
        )
    )
    await session.flush()
    for department, _ in split:
        dept = await session.get(Department, department)
        await ledger.open_department_accounts(session, department, dept.name, data.currency)
    _cache.pop(data.code, None)
    info = await _load(session, data.code)
    assert info is not None
    return info
