"""What the payments API returns (API.md), as msgspec Structs.

Every field is always present (a value or null): clients read a fixed shape. The field
order is the documented order, so stored idempotent responses keep their bytes. The one
exception is least privilege: the applicant's links (`payment_url`, `tracking_url`, whose
tokens are the applicant's capability) are left out for finance and admin keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from msgspec import UNSET, Struct, UnsetType

from onetrip.auth import Principal
from onetrip.settings import get_settings
from payments.models import Department, Payment, Refund

if TYPE_CHECKING:
    from payments.catalogue import FeeVersion, MatterInfo


class FeeShareView(Struct):
    department: str
    share_bps: int


class PaymentView(Struct, kw_only=True):
    id: str
    status: str
    amount: int
    currency: str
    matter_code: str
    matter_name: str
    department: str
    reference: str
    quantity: int
    unit_amount: int
    fee_split: list[dict[str, Any]]
    refund_status: str
    amount_refunded: int
    #: what the gateway took (null until it took anything); refunds never exceed it
    amount_received: int | None
    received_currency: str | None
    applicant: dict[str, Any]
    delivery: dict[str, Any]
    return_url: str
    metadata: dict[str, str]
    gateway: str | None
    failure_reason: str | None
    #: left out for finance and admin keys (the applicant's tokens)
    payment_url: str | UnsetType = UNSET
    tracking_url: str | UnsetType = UNSET
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    succeeded_at: datetime | None


#: roles that see payments but must not hold the applicant's links
_NO_LINKS = frozenset({"finance", "admin"})


def _links(token: str, principal: Principal | None) -> dict[str, Any]:
    if principal is not None and principal.role in _NO_LINKS:
        return {"payment_url": UNSET, "tracking_url": UNSET}
    return payment_urls(token)


class RefundView(Struct):
    id: str
    payment_id: str
    amount: int
    currency: str
    reason: str
    status: str
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


class TimelineEntry(Struct):
    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]


class DepartmentView(Struct):
    code: str
    name: str
    timezone: str
    created_at: datetime
    contact_email: str | None = None
    stripe_fees_borne_by: str = "platform"


class FeeVersionView(Struct):
    amount: int
    currency: str
    effective_from: datetime
    fee_split: list[FeeShareView]


class MatterView(Struct):
    code: str
    name: str
    department: str
    amount: int
    currency: str
    deliverable: bool
    auto_issue: bool
    fee_split: list[FeeShareView]
    required_materials: list[str]
    effective_from: datetime
    fee_versions: list[FeeVersionView]


def payment_urls(token: str) -> dict[str, str]:
    """The applicant's links: the hosted payment page and the tracking page."""
    base = get_settings().public_url
    return {"payment_url": f"{base}/pay/{token}", "tracking_url": f"{base}/track/{token}"}


def payment_view(p: Payment, principal: Principal | None = None) -> PaymentView:
    """The public representation of a payment (API.md), as `principal` may see it
    (None: the whole view, for the service's own use)."""
    urls = _links(p.token, principal)
    return PaymentView(
        id=p.id,
        status=p.status,
        amount=p.amount,
        currency=p.currency,
        matter_code=p.matter_code,
        matter_name=p.matter_name,
        department=p.department,
        reference=p.reference,
        quantity=p.quantity,
        unit_amount=p.unit_amount,
        fee_split=p.fee_split,
        refund_status=p.refund_status,
        amount_refunded=p.amount_refunded,
        amount_received=p.amount_received,
        received_currency=p.received_currency,
        applicant=p.applicant,
        delivery=p.delivery,
        return_url=p.return_url,
        metadata=p.metadata_,
        gateway=p.gateway,
        failure_reason=p.failure_reason,
        payment_url=urls["payment_url"],
        tracking_url=urls["tracking_url"],
        created_at=p.created_at,
        updated_at=p.updated_at,
        expires_at=p.expires_at,
        succeeded_at=p.succeeded_at,
    )


def new_payment_view(values: dict[str, Any]) -> PaymentView:
    """The view of a payment from the values being inserted (the create path writes
    them with one statement, without an ORM object)."""
    urls = payment_urls(values["token"])
    return PaymentView(
        id=values["id"],
        status=values["status"],
        amount=values["amount"],
        currency=values["currency"],
        matter_code=values["matter_code"],
        matter_name=values["matter_name"],
        department=values["department"],
        reference=values["reference"],
        quantity=values["quantity"],
        unit_amount=values["unit_amount"],
        fee_split=values["fee_split"],
        refund_status=values["refund_status"],
        amount_refunded=values["amount_refunded"],
        amount_received=values.get("amount_received"),
        received_currency=values.get("received_currency"),
        applicant=values["applicant"],
        delivery=values["delivery"],
        return_url=values["return_url"],
        metadata=values["metadata"],
        gateway=values["gateway"],
        failure_reason=values["failure_reason"],
        payment_url=urls["payment_url"],
        tracking_url=urls["tracking_url"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        expires_at=values["expires_at"],
        succeeded_at=values["succeeded_at"],
    )


def refund_view(r: Refund) -> RefundView:
    return RefundView(
        id=r.id,
        payment_id=r.payment_id,
        amount=r.amount,
        currency=r.currency,
        reason=r.reason,
        status=r.status,
        failure_reason=r.failure_reason,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def department_view(department: Department) -> DepartmentView:
    return DepartmentView(
        code=department.code,
        name=department.name,
        timezone=department.timezone,
        created_at=department.created_at,
        contact_email=department.contact_email,
        stripe_fees_borne_by=department.stripe_fees_borne_by,
    )


def _shares(fee: FeeVersion) -> list[FeeShareView]:
    return [FeeShareView(department=d, share_bps=bps) for d, bps in fee.fee_split]


def matter_view(info: MatterInfo, at: datetime) -> MatterView:
    """A matter with the fee in force at `at` (or its first fee, before any applies)."""
    fee = info.fee_at(at) or info.fees[0]
    return MatterView(
        code=info.code,
        name=info.name,
        department=info.department,
        amount=fee.amount,
        currency=fee.currency,
        deliverable=info.deliverable,
        auto_issue=info.auto_issue,
        fee_split=_shares(fee),
        required_materials=list(info.required_materials),
        effective_from=fee.effective_from,
        fee_versions=[
            FeeVersionView(
                amount=f.amount,
                currency=f.currency,
                effective_from=f.effective_from,
                fee_split=_shares(f),
            )
            for f in info.fees
        ],
    )
