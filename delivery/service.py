"""Delivery rules for courier partners: registration, listing, and their webhook secrets.

Allocation, dispatches and tracking live beside this module (`allocation`,
`dispatching`, `tracking`).
"""

from __future__ import annotations

import base64
import binascii
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.models import CourierPartner
from delivery.schemas import CourierPartnerIn, CourierPartnerOut, ServiceArea
from onetrip.clock import utcnow
from onetrip.errors import Conflict, NotFound, ValidationFailed
from onetrip.urls import check_webhook_url
from onetrip.webhooks import new_secret, update_target
from onetrip.webhooks.signing import SECRET_PREFIX, secret_key

DEFAULT_CUTOFF = "17:00"
DEFAULT_TIMEZONE = "Asia/Shanghai"


def partner_view(partner: CourierPartner, *, with_secret: bool = False) -> CourierPartnerOut:
    """The partner as the API shows it; its webhook secret only when `with_secret`."""
    return CourierPartnerOut(
        code=partner.code,
        name=partner.name,
        service_areas=msgspec.convert(partner.service_areas, list[ServiceArea]),
        webhook_url=partner.webhook_url,
        created_at=partner.created_at,
        daily_capacity=partner.daily_capacity,
        cutoff_time=partner.cutoff_time or DEFAULT_CUTOFF,
        timezone=partner.timezone or DEFAULT_TIMEZONE,
        secret=partner.webhook_secret if with_secret else msgspec.UNSET,
    )


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"unknown time zone {name!r}",
            code="invalid_timezone",
            errors=[
                {"field": "timezone", "message": "must be an IANA time zone, e.g. Asia/Shanghai"}
            ],
        ) from None
    return name


async def create_partner(session: AsyncSession, data: CourierPartnerIn) -> CourierPartner:
    if data.webhook_url:
        check_webhook_url(data.webhook_url)
    timezone = _check_timezone(data.timezone) if data.timezone else DEFAULT_TIMEZONE
    if await session.get(CourierPartner, data.code):
        raise Conflict(f"courier partner {data.code} exists already", code="courier_partner_exists")
    partner = CourierPartner(
        code=data.code,
        name=data.name,
        service_areas=msgspec.to_builtins(data.service_areas),
        webhook_url=data.webhook_url,
        webhook_secret=new_secret(),
        daily_capacity=data.daily_capacity,
        cutoff_time=data.cutoff_time or DEFAULT_CUTOFF,
        timezone=timezone,
        created_at=utcnow(),
    )
    session.add(partner)
    await session.flush()
    return partner


async def list_partners(session: AsyncSession) -> list[CourierPartner]:
    return list(
        (await session.execute(select(CourierPartner).order_by(CourierPartner.code))).scalars()
    )


# --- webhook secrets ---------------------------------------------------------------------


def standard_secret(secret: str | None) -> str:
    """`secret` as a valid Standard Webhooks secret (`whsec_` + standard base64).

    Partners registered before the kernel's format got `whsec_` + URL-safe base64
    without padding. Those convert to the same key bytes in standard base64, so a
    receiver that decoded its secret leniently (Node's Buffer does) keeps verifying; a
    secret that decodes to nothing usable is replaced by a new one.
    """
    if secret:
        try:
            secret_key(secret)
            return secret
        except ValueError:
            pass
        body = secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) >= 24:
            return SECRET_PREFIX + base64.b64encode(key).decode("ascii")
    return new_secret()


async def partner_secret(session: AsyncSession, partner: CourierPartner) -> str:
    """The partner's webhook secret, converted (and saved) first if it is a legacy one."""
    secret = standard_secret(partner.webhook_secret)
    if secret != partner.webhook_secret:
        partner.webhook_secret = secret
        await session.flush()
    return secret


async def rotate_partner_secret(session: AsyncSession, code: str) -> CourierPartner:
    """Give a partner a new webhook secret (shown once by the caller). Its pending
    deliveries are signed with the new and the old one, so either verifies them."""
    partner = await session.get(CourierPartner, code)
    if partner is None:
        raise NotFound(f"no courier partner {code}", code="courier_partner_not_found")
    old = standard_secret(partner.webhook_secret)
    partner.webhook_secret = new_secret()
    await session.flush()
    await update_target(session, webhook_target(code), secrets=[partner.webhook_secret, old])
    return partner


def webhook_target(code: str) -> str:
    """The kernel webhook target naming a partner's deliveries."""
    return f"courier:{code}"
