"""Request and response types of the delivery API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

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
    #: dispatches a partner takes per local day (None: no limit)
    daily_capacity: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    #: "17:30": after this local time a new dispatch is the next day's hand-over
    cutoff_time: Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] | None = None
    #: the partner's IANA time zone (its day and cut-off), "Asia/Shanghai" by default
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] | None = None

    def __post_init__(self) -> None:
        check_text(self)  # no control or invisible characters, no blank names


class CourierPartnerOut(Struct):
    """A courier partner as the admin API shows it."""

    code: str
    name: str
    service_areas: list[ServiceArea]
    webhook_url: str | None
    created_at: datetime
    daily_capacity: int | None = None
    cutoff_time: str = "17:00"
    timezone: str = "Asia/Shanghai"
    # Only in the answer to its registration: the secret is shown once, then never.
    secret: str | UnsetType = UNSET


class CourierPartnerPage(Struct):
    data: list[CourierPartnerOut]
    next_cursor: str | None


# --- courier API: dispatches and tracking events (helper C) ---------------------------


class CourierEventIn(Struct, forbid_unknown_fields=True):
    """A tracking event a partner reports. `status` is checked by the service (an unknown
    one is a 422 naming the field), so the request type takes any short string."""

    event_id: Annotated[str, Meta(min_length=1, max_length=100)]
    status: Annotated[str, Meta(min_length=1, max_length=32)]
    occurred_at: datetime
    location: Annotated[str, Meta(max_length=200)] | None = None
    note: Annotated[str, Meta(max_length=500)] | None = None
    recipient_name: Annotated[str, Meta(max_length=200)] | None = None

    def __post_init__(self) -> None:
        check_text(self)


class DispatchEventOut(Struct):
    event_id: str
    status: str
    occurred_at: datetime
    location: str | None
    note: str | None
    recipient_name: str | None
    #: false for a late event: kept in the history, not applied
    applied: bool
    received_at: datetime


class DispatchOut(Struct):
    """A parcel as its courier partner (and the department) sees it."""

    id: str
    license_id: str
    payment_id: str
    partner: str
    tracking_number: str
    status: str
    address: dict[str, str | None]
    handover_date: date
    failed_attempts: int
    recipient_name: str | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    events: list[DispatchEventOut] = []


class DispatchPage(Struct):
    data: list[DispatchOut]
    next_cursor: str | None


# --- licences (helper L) ---------------------------------------------------------------

LicenseNo = Annotated[str, Meta(min_length=1, max_length=64)]
LicenseText = Annotated[str, Meta(min_length=1, max_length=200)]
FieldName = Annotated[str, Meta(min_length=1, max_length=100)]
FieldValue = Annotated[str, Meta(min_length=1, max_length=500)]


class LicenseIn(Struct, forbid_unknown_fields=True):
    """A licence a department issues for one of its paid payments."""

    payment_id: Annotated[str, Meta(min_length=1, max_length=40)]
    license_no: LicenseNo
    title: LicenseText
    holder_name: LicenseText
    #: printed as a table on the licence, in this order ({"准驾车型": "C1"})
    fields: Annotated[dict[FieldName, FieldValue], Meta(max_length=50)] = {}
    valid_from: date | None = None
    valid_until: date | None = None

    def __post_init__(self) -> None:
        check_text(self)  # names printed on the licence: no control characters, not blank


class RevokeIn(Struct, forbid_unknown_fields=True):
    __free_text__ = frozenset({"reason"})

    reason: Annotated[str, Meta(min_length=1, max_length=500)]

    def __post_init__(self) -> None:
        check_text(self)


class CollectIn(Struct, forbid_unknown_fields=True):
    #: who took the licence at the window (the holder, or someone they authorised)
    collected_by: LicenseText

    def __post_init__(self) -> None:
        check_text(self)


AddressPart = Annotated[str, Meta(min_length=1, max_length=32)]


class RedispatchIn(Struct, forbid_unknown_fields=True):
    """A corrected address, or none: the address the licence has (the payment's, or the
    last correction). `recipient, phone, province, city, district, line1` are required
    (`postal_code`, `line2` optional); an incomplete one is a 422 naming each field."""

    address: (
        Annotated[dict[AddressPart, Annotated[str, Meta(max_length=500)]], Meta(max_length=12)]
        | None
    ) = None

    def __post_init__(self) -> None:
        check_text(self)


class LicenseDispatch(Struct):
    """The licence's latest parcel."""

    id: str
    partner: str
    tracking_number: str
    status: str


class LicenseOut(Struct):
    """A licence as its department (or an admin) sees it."""

    id: str
    status: str
    license_no: str
    title: str
    holder_name: str
    fields: dict[str, str]
    valid_from: date | None
    valid_until: date | None
    payment_id: str
    department: str
    matter_code: str
    delivery_method: str
    address: dict[str, str | None] | None
    print_station: str
    #: what the QR code printed on it holds
    verify_url: str | None
    revoked_at: datetime | None
    revoke_reason: str | None
    collected_by: str | None
    collected_at: datetime | None
    dispatch: LicenseDispatch | None
    created_at: datetime
    updated_at: datetime


class LicensePage(Struct):
    data: list[LicenseOut]
    next_cursor: str | None


class LicenseTimelineEntry(Struct):
    """One thing that happened to a licence: a move of its own (`source: license`), or
    its parcel's creation or a courier's tracking event (`source: dispatch`)."""

    occurred_at: datetime
    source: str
    #: license: issue, render, print, dispatch, …; dispatch: create, or the courier status
    event: str
    #: the licence's status (source license) or the parcel's (source dispatch) after it
    status: str
    previous_status: str | None = None
    #: false for a courier's late event: kept in the history, not applied
    applied: bool = True
    #: revoke: why; needs_attention: what is missing
    reason: str | None = None
    dispatch_id: str | None = None
    partner: str | None = None
    tracking_number: str | None = None
    location: str | None = None
    note: str | None = None
    recipient_name: str | None = None


class LicenseTimeline(Struct):
    data: list[LicenseTimelineEntry]
    next_cursor: str | None = None


# --- verification (helper DS) -------------------------------------------------------------


class VerificationOut(Struct):
    """GET /verify/{code} with Accept: application/json, for a genuine code (a forged
    or altered one is a 404 problem with `genuine: false`)."""

    genuine: bool
    #: what only the server knows
    status: Literal["valid", "revoked", "expired"]
    license_no: str
    title: str
    #: masked: 李*
    holder_name: str
    #: the issuing department's code, and its name
    department: str
    department_name: str
    valid_from: date | None
    valid_until: date | None


class Jwk(Struct):
    """An Ed25519 public key (RFC 8037) that signs or signed verification codes."""

    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class JwkSet(Struct):
    keys: list[Jwk]


# --- print runs (helper PR) --------------------------------------------------------------


class PrintRunItemOut(Struct):
    """A licence's place in a print run: its licence document, then its cover sheet."""

    license_id: str
    license_no: str
    department: str
    print_no: int
    position: int
    sha256: str
    pages: int
    cover_sha256: str | None
    cover_pages: int


class PrintRunOut(Struct):
    """A print run; `items` (those the key may see) only when one run is asked for."""

    id: str
    station: str
    status: str  # pending | sending | sent | failed
    printer: str
    sha256: str | None
    pages: int
    license_count: int
    printer_job_id: str | None
    printer_state: str | None
    error: str | None
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    items: list[PrintRunItemOut] | UnsetType = UNSET


class PrintRunPage(Struct):
    data: list[PrintRunOut]
    next_cursor: str | None
