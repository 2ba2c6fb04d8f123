"""Shared helpers of the applicant page tests (no tests of its own): a licence and its
parcel built as the delivery steps build them, row by row, every move applied on its
machine (onetrip.states.apply), so the tracking page reads what production writes."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from delivery.events import dispatch_event, license_event
from delivery.models import CourierPartner, Dispatch, DispatchEvent, License
from delivery.states import DISPATCH_MACHINE, LICENSE_MACHINE
from onetrip.clock import utcnow
from onetrip.db import unit_of_work
from onetrip.ids import new_id
from onetrip.states import apply
from payments.models import Payment
from tests.factories import ADDRESS

SF = {"code": "sf-express", "name": "顺丰速运"}


def status_text(html: str, element: str = "status") -> str:
    """`class:text` of the badge with this id."""
    match = re.search(rf'<span class="status (\w+)" id="{element}">([^<]*)</span>', html)
    assert match, html
    return f"{match.group(1)}:{match.group(2)}"


def timeline_texts(html: str) -> list[str]:
    """The tracking page's timeline, newest first, as plain text lines."""
    block = re.search(r'<ol class="timeline">(.*?)</ol>', html, re.S)
    assert block, html
    items = re.findall(r"<li[^>]*>(.*?)</li>", block.group(1), re.S)
    lines = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", item)).strip() for item in items]
    return [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d( ·)? ", "", line) for line in lines]


async def paid_at(payment: dict[str, Any], at: datetime) -> None:
    """Backdate when the payment succeeded (the journey after it is backdated too)."""
    async with unit_of_work() as session:
        paid = await session.get(Payment, payment["id"])
        assert paid is not None
        paid.succeeded_at = at


async def licence_for(
    payment: dict[str, Any],
    *,
    method: str = "courier",
    license_no: str = "浙公驾 330106-2026-0001",
    verify_code: str | None = "v1.QUJD.ZGVm",
    issued_at: datetime | None = None,
) -> str:
    """A licence in `issued` for a paid payment, as issue_license leaves it."""
    now = issued_at or utcnow()
    license_id = new_id("lic")
    async with unit_of_work() as session:
        session.add(
            License(
                id=license_id,
                department=payment["department"],
                payment_id=payment["id"],
                matter_code=payment["matter_code"],
                license_no=license_no,
                title="机动车驾驶证",
                holder_name="张伟",
                fields={"准驾车型": "C1"},
                status="issued",
                delivery_method=method,
                address=ADDRESS if method == "courier" else None,
                verify_code=verify_code,
                signing_kid="k1" if verify_code else None,
                created_at=now,
                updated_at=now,
            )
        )
    return license_id


async def move_licence(
    license_id: str,
    event: str,
    at: datetime,
    dispatch_id: str | None = None,
    *,
    then: tuple[str, datetime, str | None] | None = None,
) -> None:
    """Apply `event` (and `then`'s event in the same unit of work) to the licence."""
    async with unit_of_work() as session:
        for step, moment, parcel_id in ((event, at, dispatch_id), *([then] if then else [])):
            parcel = await session.get(Dispatch, parcel_id) if parcel_id else None

            async def effect(row: Any, transition: Any, parcel: Any = parcel) -> Any:
                return license_event(row, previous_status=transition.previous, dispatch=parcel)

            await apply(session, LICENSE_MACHINE, license_id, step, effect, occurred_at=moment)


async def dispatch_for(
    license_id: str, payment: dict[str, Any], at: datetime, tracking_number: str
) -> str:
    """The partner (once) and a parcel in `created`, as dispatching creates them."""
    dispatch_id = f"dsp_{tracking_number}"
    async with unit_of_work() as session:
        if await session.get(CourierPartner, SF["code"]) is None:
            session.add(
                CourierPartner(
                    code=SF["code"],
                    name=SF["name"],
                    service_areas=[{"province": "浙江省", "city": "杭州市", "district": None}],
                    webhook_url=None,
                    webhook_secret="whsec_test",
                    created_at=at,
                )
            )
            await session.flush()
        session.add(
            Dispatch(
                id=dispatch_id,
                license_id=license_id,
                payment_id=payment["id"],
                department=payment["department"],
                partner=SF["code"],
                tracking_number=tracking_number,
                status="created",
                address=ADDRESS,
                handover_date=at.date(),
                failed_attempts=0,
                created_at=at,
                updated_at=at,
            )
        )
    return dispatch_id


async def courier_event(
    dispatch_id: str,
    status: str,
    at: datetime,
    location: str,
    recipient_name: str | None = None,
) -> None:
    """A courier's tracking event: kept in dispatch_events and applied on the machine."""
    async with unit_of_work() as session:
        session.add(
            DispatchEvent(
                dispatch_id=dispatch_id,
                event_id=f"evt-{status}-{at.timestamp()}",
                status=status,
                occurred_at=at,
                location=location,
                note=None,
                recipient_name=recipient_name,
                applied=True,
                received_at=at,
            )
        )
        await session.flush()

        async def effect(row: Any, transition: Any) -> Any:
            if status == "delivered":
                row.recipient_name, row.delivered_at = recipient_name, at
            return dispatch_event(
                row,
                previous_status=transition.previous,
                occurred_at=at,
                location=location,
                recipient_name=recipient_name,
            )

        await apply(session, DISPATCH_MACHINE, dispatch_id, status, effect, occurred_at=at)


async def delivered_licence(
    payment: dict[str, Any],
    tracking_number: str = "SF1234567890",
    license_no: str = "浙公驾 330106-2026-0001",
) -> str:
    """The whole journey of a courier licence, an hour apart: issued, rendered,
    printed, dispatched, picked up, in transit, out for delivery, delivered."""
    start = utcnow() - timedelta(hours=10)
    hour = timedelta(hours=1)
    await paid_at(payment, start - timedelta(minutes=30))
    license_id = await licence_for(payment, issued_at=start, license_no=license_no)
    await move_licence(license_id, "render", start + hour * 0.1)
    dispatch_id = await dispatch_for(license_id, payment, start + hour * 1.5, tracking_number)
    # printed and dispatched in one unit of work, as the print run and the dispatch
    # consumer would: the app's own dispatch consumer (a test server runs its worker)
    # then finds the licence dispatched already and makes no parcel of its own
    await move_licence(
        license_id, "print", start + hour, then=("dispatch", start + hour * 1.5, dispatch_id)
    )
    await courier_event(dispatch_id, "picked_up", start + hour * 2, "杭州市西湖区 文三路营业部")
    await courier_event(dispatch_id, "in_transit", start + hour * 4, "杭州转运中心")
    await courier_event(dispatch_id, "out_for_delivery", start + hour * 7, "杭州市西湖区")
    await courier_event(dispatch_id, "delivered", start + hour * 8, "杭州市西湖区", "张伟")
    await move_licence(license_id, "deliver", start + hour * 8, dispatch_id)
    return license_id
