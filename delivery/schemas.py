"""Request types of the delivery API."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

Code = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
Place = Annotated[str, Meta(min_length=1, max_length=100)]


class ServiceArea(Struct, forbid_unknown_fields=True):
    province: Place
    city: Place | None = None
    district: Place | None = None


class CourierPartnerIn(Struct, forbid_unknown_fields=True):
    code: Code
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    service_areas: Annotated[list[ServiceArea], Meta(min_length=1, max_length=500)]
    webhook_url: Annotated[str, Meta(max_length=2000)] | None = None
