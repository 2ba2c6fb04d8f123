"""Request and response types of the payments API (msgspec: fast, strict)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from onetrip.textrules import check_text

Code = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")]
MatterCode = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
ShortText = Annotated[str, Meta(min_length=1, max_length=100)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
PositiveAmount = Annotated[int, Meta(gt=0, le=10**12)]
Url = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"^https?://")]
Phone = Annotated[str, Meta(min_length=3, max_length=32, pattern=r"^\+?[0-9\- ]+$")]
Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


# --- catalogue ----------------------------------------------------------------------


class DepartmentIn(Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "Asia/Shanghai"

    def __post_init__(self) -> None:
        check_text(self)


class FeeShare(Struct, forbid_unknown_fields=True):
    department: Code
    share_bps: Annotated[int, Meta(ge=1, le=10_000)]


class MatterIn(Struct, forbid_unknown_fields=True):
    code: MatterCode
    name: Name
    department: Code
    # a fee of 0 could never be paid: no gateway takes it and the ledger books no 0 lines
    amount: Annotated[int, Meta(ge=1, le=10**12)]
    deliverable: bool
    auto_issue: bool
    currency: Currency = "CNY"
    fee_split: Annotated[list[FeeShare], Meta(min_length=1, max_length=10)] | None = None
    required_materials: Annotated[list[Name], Meta(max_length=50)] | None = None
    effective_from: datetime | None = None

    def __post_init__(self) -> None:
        check_text(self)  # the fee split's department codes too


# --- payments -----------------------------------------------------------------------


class ApplicantIn(Struct, forbid_unknown_fields=True):
    name: Name
    phone: Phone | None = None
    email: Email | None = None
    language: Literal["zh-CN", "en"] = "zh-CN"


class AddressIn(Struct, forbid_unknown_fields=True):
    recipient: Name
    phone: Phone
    province: Name
    city: Name
    district: Name
    line1: Annotated[str, Meta(min_length=1, max_length=500)]
    postal_code: Annotated[str, Meta(pattern=r"^[0-9]{6}$")]


class DeliveryIn(Struct, forbid_unknown_fields=True):
    method: Literal["courier", "pickup"]
    address: AddressIn | None = None


class PaymentIn(Struct, forbid_unknown_fields=True):
    """A payment to create. Every string in it, the applicant's and the address's too,
    is checked by onetrip.textrules; metadata values are free text."""

    __free_text__ = frozenset({"metadata"})

    matter_code: MatterCode
    reference: ShortText
    applicant: ApplicantIn
    return_url: Url
    delivery: DeliveryIn
    quantity: Annotated[int, Meta(ge=1, le=1000)] = 1
    metadata: (
        Annotated[
            dict[
                Annotated[str, Meta(min_length=1, max_length=40)],
                Annotated[str, Meta(max_length=500)],
            ],
            Meta(max_length=20),
        ]
        | None
    ) = None

    def __post_init__(self) -> None:
        # return_url is echoed into the pay page's links: an absolute http(s) URL only
        check_text(self, urls=("return_url",))


class RefundIn(Struct, forbid_unknown_fields=True):
    __free_text__ = frozenset({"reason"})  # may span lines

    amount: PositiveAmount
    reason: Annotated[str, Meta(min_length=1, max_length=500)]

    def __post_init__(self) -> None:
        check_text(self)


class CounterCollectionIn(Struct, forbid_unknown_fields=True):
    """A fee taken at a service window, in cash or by the window's POS terminal."""

    method: Literal["cash", "pos"]
    operator: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    receipt_no: Annotated[str, Meta(min_length=1, max_length=100)] | None = None

    def __post_init__(self) -> None:
        check_text(self)


def to_builtins(value: object) -> object:
    return msgspec.to_builtins(value)
