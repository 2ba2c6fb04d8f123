"""Request and response types of the delivery API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from onetrip.textrules import check_text

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

    def __post_init__(self) -> None:
        check_text(self)  # no control or invisible characters, no blank names


class CourierPartnerOut(Struct):
    """A courier partner as the admin API shows it."""

    code: str
    name: str
    service_areas: list[ServiceArea]
    webhook_url: str | None
    created_at: datetime
    # Only in the answer to its registration: the secret is shown once, then never.
    secret: str | UnsetType = UNSET


class CourierPartnerPage(Struct):
    data: list[CourierPartnerOut]
    next_cursor: str | None
