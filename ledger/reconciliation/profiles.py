"""Saved CSV mapping profiles, one per bank export format (`POST/GET
/api/v1/reconciliation/profiles`, `onetrip reconcile profile add`)."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import BankProfile
from ledger.reconciliation.csvfiles import Profile, profile_from, profile_problems
from ledger.reconciliation.errors import ProfileNotFound
from onetrip.clock import utcnow
from onetrip.errors import Conflict, ValidationFailed
from onetrip.ids import new_id
from onetrip.money import valid_currency


class ProfileExists(Conflict):
    code = "profile_exists"
    title = "A mapping profile with this name exists"


def check_profile(profile: Profile) -> Profile:
    problems = profile_problems(profile)
    if profile.currency is not None and not valid_currency(profile.currency):
        problems.append({"field": "currency", "message": "must be an ISO 4217 code"})
    if profile.skip_rows < 0 or profile.skip_rows > 1000:
        problems.append({"field": "skip_rows", "message": "must be 0..1000"})
    if problems:
        raise ValidationFailed(
            "the mapping profile is not usable: "
            + "; ".join(f"{p['field']} {p['message']}" for p in problems),
            code="invalid_profile",
            errors=problems,
        )
    return profile


async def create_profile(session: AsyncSession, profile: Profile, created_by: str) -> Profile:
    check_profile(profile)
    if await session.scalar(select(BankProfile.id).where(BankProfile.name == profile.name)):
        raise ProfileExists(f"a mapping profile named {profile.name!r} exists")
    session.add(
        BankProfile(id=new_id("prf"), **asdict(profile), created_by=created_by, created_at=utcnow())
    )
    await session.flush()
    return profile


async def get_profile(session: AsyncSession, name: str) -> Profile:
    row = await session.scalar(select(BankProfile).where(BankProfile.name == name))
    if row is None:
        raise ProfileNotFound(f"no mapping profile named {name!r}")
    return profile_from(row)


async def list_profiles(session: AsyncSession) -> list[Profile]:
    rows = await session.scalars(select(BankProfile).order_by(BankProfile.name).limit(500))
    return [profile_from(row) for row in rows]
