"""Allocation, on SQLite and PostgreSQL: the most specific service area first, then the
least loaded partner under its daily capacity, counted per hand-over day in the
partner's own time (cut-off included); concurrent dispatches never exceed a capacity."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from delivery.allocation import allocate, handover_date
from delivery.models import CourierPartner
from onetrip.db import get_database, unit_of_work
from tests.factories import ADDRESS
from tests.integration.test_delivery_dispatch import (
    add_partner,
    consume_printed,
    dispatches_of,
    license_row,
    printed_license,
)

BINJIANG = {**ADDRESS, "district": "滨江区", "line1": "江南大道 588 号"}


async def chosen(address: dict[str, Any], now: datetime | None = None) -> str | None:
    async with unit_of_work() as session:
        allocation = await allocate(session, address, now=now)
    return allocation.partner.code if allocation.partner else None


async def load(partner_areas_address: dict[str, Any], count: int) -> None:
    """`count` licences to this address dispatched (through the real consumer)."""
    for _ in range(count):
        license = await printed_license(address=partner_areas_address)
        await consume_printed(license.id)


async def test_the_most_specific_area_serving_the_address_wins(db: Any) -> None:
    await add_partner("ZJ", [{"province": "浙江省"}])
    await add_partner("HZ", [{"province": "浙江省", "city": "杭州市"}])
    await add_partner("XH", [{"province": "浙江省", "city": "杭州市", "district": "西湖区"}])
    await add_partner("SH", [{"province": "上海市"}])
    assert await chosen(ADDRESS) == "XH"  # district
    assert await chosen(BINJIANG) == "HZ"  # city
    assert await chosen({**ADDRESS, "city": "宁波市", "district": "鄞州区"}) == "ZJ"
    assert await chosen({**ADDRESS, "province": "江苏省", "city": "南京市"}) is None


async def test_among_equally_specific_partners_the_least_loaded_wins(db: Any) -> None:
    await add_partner("SF", [{"province": "浙江省", "city": "杭州市"}])
    await add_partner("YTO", [{"province": "浙江省", "city": "杭州市"}], name="圆通速递")
    await load(ADDRESS, 3)  # alternates: SF (tie, by code), YTO, SF
    async with get_database().session() as session:
        counts = {
            code: len([d for d in await _all(session) if d.partner == code])
            for code in ("SF", "YTO")
        }
    assert counts == {"SF": 2, "YTO": 1}
    assert await chosen(ADDRESS) == "YTO"


async def _all(session: Any) -> list[Any]:
    from sqlalchemy import select

    from delivery.models import Dispatch

    return list((await session.execute(select(Dispatch))).scalars())


async def test_a_full_partner_gives_way_to_a_less_specific_one_then_to_none(db: Any) -> None:
    await add_partner(
        "XH", [{"province": "浙江省", "district": "西湖区", "city": "杭州市"}], daily_capacity=1
    )
    await add_partner("ZJ", [{"province": "浙江省"}], daily_capacity=1)
    first, second, third = [await printed_license() for _ in range(3)]
    for license in (first, second, third):
        await consume_printed(license.id)
    assert [d.partner for d in await dispatches_of(first.id)] == ["XH"]
    assert [d.partner for d in await dispatches_of(second.id)] == ["ZJ"]
    assert await dispatches_of(third.id) == []
    assert (await license_row(third.id)).status == "needs_attention"
    async with unit_of_work() as session:
        allocation = await allocate(session, ADDRESS)
    assert allocation.partner is None and "at capacity" in (allocation.reason or "")


async def test_the_hand_over_day_is_the_partners_local_day_and_cut_off(db: Any) -> None:
    shanghai = await add_partner("SF", cutoff_time="17:30", timezone="Asia/Shanghai")
    london = await add_partner("RM", cutoff_time="17:30", timezone="Europe/London")
    before = datetime(2026, 12, 1, 9, 29, tzinfo=UTC)  # 17:29 in Shanghai
    after = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # 17:30 in Shanghai: cut off
    late_utc = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # 01:00 on the 2nd in Shanghai
    assert handover_date(shanghai, before) == date(2026, 12, 1)
    assert handover_date(shanghai, after) == date(2026, 12, 2)
    assert handover_date(shanghai, late_utc) == date(2026, 12, 2)
    assert handover_date(london, after) == date(2026, 12, 1)  # 09:30 in London
    assert handover_date(london, late_utc) == date(2026, 12, 1)  # 17:00 in London
    assert handover_date(london, late_utc.replace(minute=45)) == date(2026, 12, 2)


async def test_capacity_counts_per_hand_over_day(db: Any) -> None:
    await add_partner("SF", daily_capacity=1, cutoff_time="17:30")
    before = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    after = datetime(2026, 12, 1, 9, 45, tzinfo=UTC)
    async with unit_of_work() as session:
        today = await allocate(session, ADDRESS, now=before)
    assert today.partner is not None and today.handover_date == date(2026, 12, 1)
    await _dispatch_on(date(2026, 12, 1))
    assert await chosen(ADDRESS, before) is None  # today's one is taken
    async with unit_of_work() as session:
        tomorrow = await allocate(session, ADDRESS, now=after)
    assert tomorrow.partner is not None and tomorrow.handover_date == date(2026, 12, 2)


async def _dispatch_on(day: date) -> None:
    from sqlalchemy import update

    from delivery.models import Dispatch

    license = await printed_license()
    await consume_printed(license.id)
    async with unit_of_work() as session:
        await session.execute(
            update(Dispatch).where(Dispatch.license_id == license.id).values(handover_date=day)
        )


async def test_concurrent_dispatches_never_exceed_a_capacity(db: Any) -> None:
    await add_partner("SF", daily_capacity=2)
    licenses = [await printed_license() for _ in range(5)]
    await asyncio.gather(*(consume_printed(license.id) for license in licenses))
    dispatched = [lic for lic in licenses if await dispatches_of(lic.id)]
    assert len(dispatched) == 2
    statuses = sorted([(await license_row(lic.id)).status for lic in licenses])
    assert statuses == ["dispatched"] * 2 + ["needs_attention"] * 3


async def test_partner_settings_are_validated_and_shown(app_client: Any) -> None:
    from tests.factories import auth, make_key

    admin = await make_key("admin")
    base = {"code": "SF", "name": "顺丰速运", "service_areas": [{"province": "浙江省"}]}
    for bad, field in (
        ({"cutoff_time": "25:00"}, "cutoff_time"),
        ({"cutoff_time": "5pm"}, "cutoff_time"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"daily_capacity": 0}, "daily_capacity"),
    ):
        answer = await app_client.post(
            "/api/v1/admin/courier-partners", json={**base, **bad}, headers=auth(admin)
        )
        assert answer.status_code in (400, 422), answer.text
        assert field in answer.text
    good = {**base, "daily_capacity": 300, "cutoff_time": "17:30", "timezone": "Asia/Shanghai"}
    answer = await app_client.post("/api/v1/admin/courier-partners", json=good, headers=auth(admin))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["daily_capacity"], body["cutoff_time"], body["timezone"]) == (
        300,
        "17:30",
        "Asia/Shanghai",
    )
    async with get_database().session() as session:
        row = await session.get(CourierPartner, "SF")
        assert row is not None and row.daily_capacity == 300 and row.cutoff_time == "17:30"
