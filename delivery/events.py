"""The events delivery emits (the outbox's `data`), declared once, built in one place.

Notifications and department webhooks consume them, so fields are only ever added. A
field that does not apply is left out (UNSET), never sent as null.
"""

from __future__ import annotations

from datetime import datetime

from msgspec import UNSET, Struct, UnsetType

from delivery.models import Dispatch, License


class LicenseEvent(Struct):
    """license.issued, license.rendered, license.printed, license.dispatched, …"""

    license_id: str
    license_no: str
    payment_id: str
    department: str
    matter_code: str
    title: str
    status: str
    delivery_method: str
    #: on every transition (not on license.issued)
    previous_status: str | UnsetType = UNSET
    #: the parcel, once there is one (dispatched, delivered, returned)
    dispatch_id: str | UnsetType = UNSET
    partner: str | UnsetType = UNSET
    tracking_number: str | UnsetType = UNSET
    #: revoked: why; needs_attention: what is missing
    reason: str | UnsetType = UNSET


class DispatchEvent(Struct):
    """dispatch.created and dispatch.status_changed."""

    dispatch_id: str
    license_id: str
    payment_id: str
    department: str
    partner: str
    tracking_number: str
    status: str
    address: dict[str, str | None]
    previous_status: str | UnsetType = UNSET
    occurred_at: datetime | UnsetType = UNSET
    location: str | UnsetType | None = UNSET
    recipient_name: str | UnsetType | None = UNSET
    failed_attempts: int | UnsetType = UNSET


def license_event(
    license: License,
    *,
    previous_status: str | UnsetType = UNSET,
    dispatch: Dispatch | None = None,
    reason: str | UnsetType = UNSET,
) -> LicenseEvent:
    """The event data for `license` as it is now (and its parcel, when given)."""
    return LicenseEvent(
        license_id=license.id,
        license_no=license.license_no,
        payment_id=license.payment_id,
        department=license.department,
        matter_code=license.matter_code,
        title=license.title,
        status=license.status,
        delivery_method=license.delivery_method,
        previous_status=previous_status,
        dispatch_id=dispatch.id if dispatch else UNSET,
        partner=dispatch.partner if dispatch else UNSET,
        tracking_number=dispatch.tracking_number if dispatch else UNSET,
        reason=reason,
    )


def dispatch_event(
    dispatch: Dispatch,
    *,
    previous_status: str | UnsetType = UNSET,
    occurred_at: datetime | UnsetType = UNSET,
    location: str | UnsetType | None = UNSET,
    recipient_name: str | UnsetType | None = UNSET,
) -> DispatchEvent:
    """The event data for `dispatch` as it is now."""
    return DispatchEvent(
        dispatch_id=dispatch.id,
        license_id=dispatch.license_id,
        payment_id=dispatch.payment_id,
        department=dispatch.department,
        partner=dispatch.partner,
        tracking_number=dispatch.tracking_number,
        status=dispatch.status,
        address=dispatch.address,
        previous_status=previous_status,
        occurred_at=occurred_at,
        location=location,
        recipient_name=recipient_name,
        failed_attempts=dispatch.failed_attempts,
    )
