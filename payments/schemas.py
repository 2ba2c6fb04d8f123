"""Request and response types of the payments API (msgspec: fast, strict)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from onetrip.jsonbody import FORMAT_MESSAGE
from onetrip.textrules import check_text
from payments.views import DepartmentView, MatterView, PaymentView, RefundView, TimelineEntry


def _format(message: str) -> dict[str, str]:
    """`Meta.extra` giving the plain-words message for a value that breaks its pattern
    (onetrip.jsonbody: never a regular expression in an error)."""
    return {FORMAT_MESSAGE: message}


Code = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9_\-]+$",
        extra=_format("may hold only letters A-Z, digits, - and _"),
    ),
]
MatterCode = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_\-.]+$",
        extra=_format("may hold only letters A-Z, digits, -, _ and ."),
    ),
]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
ShortText = Annotated[str, Meta(min_length=1, max_length=100)]
Currency = Annotated[
    str,
    Meta(
        pattern=r"^[A-Z]{3}$",
        extra=_format("must be a three-letter ISO 4217 currency code in capitals, e.g. CNY"),
    ),
]
PositiveAmount = Annotated[int, Meta(gt=0, le=10**12)]
Url = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=2000,
        pattern=r"^https?://",
        extra=_format("must be an absolute http or https URL"),
    ),
]
Phone = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=32,
        pattern=r"^\+?[0-9\- ]+$",
        extra=_format("must be a phone number: digits, spaces and -, maybe a leading +"),
    ),
]
Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        extra=_format("must be an email address, e.g. zhang.wei@example.cn"),
    ),
]
PostalCode = Annotated[
    str, Meta(pattern=r"^[0-9]{6}$", extra=_format("must be a postal code of six digits"))
]


# --- catalogue ----------------------------------------------------------------------


class DepartmentIn(Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "Asia/Shanghai"
    #: told when the department's webhook endpoint keeps failing
    contact_email: Email | None = None
    #: who bears Stripe's processing fees
    stripe_fees_borne_by: Literal["platform", "department"] = "platform"

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
    postal_code: PostalCode


class DeliveryIn(Struct, forbid_unknown_fields=True):
    method: Literal["courier", "pickup"]
    address: AddressIn | None = None


class PaymentIn(Struct, forbid_unknown_fields=True):
    """A payment to create. Every string in it, the applicant's and the address's too,
    is checked by onetrip.textrules; metadata values are free text."""

    __free_text__ = frozenset({"metadata"})
    # echoed into the pay page's links: an absolute http(s) URL only
    __url_fields__ = ("return_url",)

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
        check_text(self)  # a name of spaces only is refused here, before it is trimmed
        # Names are printed on receipts and licences and matched by people: stored
        # without the spaces around them (U+3000 too).
        self.applicant.name = self.applicant.name.strip()
        if self.delivery.address is not None:
            self.delivery.address.recipient = self.delivery.address.recipient.strip()


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


# --- responses: pages and examples (the OpenAPI document, onetrip/openapi.py) --------


class PaymentPage(Struct):
    data: list[PaymentView]
    next_cursor: str | None


class RefundPage(Struct):
    data: list[RefundView]
    next_cursor: str | None


class TimelinePage(Struct):
    data: list[TimelineEntry]
    next_cursor: str | None


class DepartmentPage(Struct):
    data: list[DepartmentView]
    next_cursor: str | None


class MatterPage(Struct):
    data: list[MatterView]
    next_cursor: str | None


class StripeEventReceived(Struct):
    received: str
    outcome: str


_ADDRESS_EXAMPLE = {
    "recipient": "张伟",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "line1": "文三路 100 号 3 幢 201 室",
    "postal_code": "310012",
}
DEPARTMENT_IN_EXAMPLE = {
    "code": "PSB",
    "name": "杭州市公安局出入境管理局",
    "timezone": "Asia/Shanghai",
}
DEPARTMENT_EXAMPLE = {**DEPARTMENT_IN_EXAMPLE, "created_at": "2026-03-01T09:00:00Z"}
MATTER_IN_EXAMPLE = {
    "code": "passport",
    "name": "普通护照签发",
    "department": "PSB",
    "amount": 12000,
    "currency": "CNY",
    "deliverable": True,
    "auto_issue": False,
    "required_materials": ["居民身份证原件", "近期免冠彩色照片一张"],
}
_SHARES = [{"department": "PSB", "share_bps": 10000}]
MATTER_EXAMPLE = {
    **MATTER_IN_EXAMPLE,
    "fee_split": _SHARES,
    "effective_from": "2026-03-01T00:00:00Z",
    "fee_versions": [
        {
            "amount": 12000,
            "currency": "CNY",
            "effective_from": "2026-03-01T00:00:00Z",
            "fee_split": _SHARES,
        }
    ],
}
PAYMENT_IN_EXAMPLE = {
    "matter_code": "passport",
    "reference": "CRJ-2026-000001",
    "applicant": {"name": "张伟", "phone": "13800138000", "email": "zhang.wei@example.cn"},
    "return_url": "https://crj.example.gov.cn/done",
    "delivery": {"method": "courier", "address": _ADDRESS_EXAMPLE},
    "quantity": 1,
    "metadata": {"受理窗口": "西湖区行政服务中心 3 号窗口"},
}
PAYMENT_EXAMPLE = {
    "id": "pay_01JQ7Z4Y8K2M3N4P5Q6R7S8T9V",
    "status": "created",
    "amount": 12000,
    "currency": "CNY",
    "matter_code": "passport",
    "matter_name": "普通护照签发",
    "department": "PSB",
    "reference": "CRJ-2026-000001",
    "quantity": 1,
    "unit_amount": 12000,
    "fee_split": [{"department": "PSB", "share_bps": 10000, "amount": 12000}],
    "refund_status": "none",
    "amount_refunded": 0,
    "amount_received": None,
    "received_currency": None,
    "applicant": {
        "name": "张伟",
        "phone": "13800138000",
        "email": "zhang.wei@example.cn",
        "language": "zh-CN",
    },
    "delivery": {"method": "courier", "address": _ADDRESS_EXAMPLE},
    "return_url": "https://crj.example.gov.cn/done",
    "metadata": {"受理窗口": "西湖区行政服务中心 3 号窗口"},
    "gateway": None,
    "failure_reason": None,
    "payment_url": "https://pay.onetrip.gov.cn/pay/tok_8Zq3xY",
    "tracking_url": "https://pay.onetrip.gov.cn/track/tok_8Zq3xY",
    "created_at": "2026-03-01T09:30:00Z",
    "updated_at": "2026-03-01T09:30:00Z",
    "expires_at": "2026-03-02T09:30:00Z",
    "succeeded_at": None,
}
REFUND_IN_EXAMPLE = {"amount": 12000, "reason": "申请人撤回护照申请，全额退费"}
REFUND_EXAMPLE = {
    "id": "rfd_01JQ8A2B3C4D5E6F7G8H9J0K1M",
    "payment_id": "pay_01JQ7Z4Y8K2M3N4P5Q6R7S8T9V",
    "amount": 12000,
    "currency": "CNY",
    "reason": "申请人撤回护照申请，全额退费",
    "status": "succeeded",
    "failure_reason": None,
    "created_at": "2026-03-03T10:00:00Z",
    "updated_at": "2026-03-03T10:00:01Z",
}
COUNTER_IN_EXAMPLE = {"method": "cash", "operator": "王芳", "receipt_no": "XH-2026-0301-0007"}
