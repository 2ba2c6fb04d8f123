"""Delivery rules: courier partners (dispatch and tracking come with the delivery issue)."""

from __future__ import annotations

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.models import CourierPartner
from delivery.schemas import CourierPartnerIn, CourierPartnerOut, ServiceArea
from onetrip.clock import utcnow
from onetrip.errors import Conflict
from onetrip.urls import check_webhook_url
from onetrip.webhooks import new_secret


def partner_view(partner: CourierPartner, *, with_secret: bool = False) -> CourierPartnerOut:
    """The partner as the API shows it; its webhook secret only when `with_secret`."""
    return CourierPartnerOut(
        code=partner.code,
        name=partner.name,
        service_areas=msgspec.convert(partner.service_areas, list[ServiceArea]),
        webhook_url=partner.webhook_url,
        created_at=partner.created_at,
        secret=partner.webhook_secret if with_secret else msgspec.UNSET,
    )


async def create_partner(session: AsyncSession, data: CourierPartnerIn) -> CourierPartner:
    if data.webhook_url:
        check_webhook_url(data.webhook_url)
    if await session.get(CourierPartner, data.code):
        raise Conflict(f"courier partner {data.code} exists already", code="courier_partner_exists")
    partner = CourierPartner(
        code=data.code,
        name=data.name,
        service_areas=msgspec.to_builtins(data.service_areas),
        webhook_url=data.webhook_url,
        webhook_secret=new_secret(),
        created_at=utcnow(),
    )
    session.add(partner)
    await session.flush()
    return partner


async def list_partners(session: AsyncSession) -> list[CourierPartner]:
    return list(
        (await session.execute(select(CourierPartner).order_by(CourierPartner.code))).scalars()
    )
