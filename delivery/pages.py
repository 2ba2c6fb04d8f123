"""The applicant's tracking page. No key: the unguessable token in the URL is the
applicant's capability.

It lives in delivery because it shows the payment (read through payments) and, with the
delivery issue, the licence and the parcel; payments may not read delivery. Its frame is
payments' `base.html`, found through the app's list of template folders.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template

from onetrip.db import get_database
from onetrip.i18n import page_language
from onetrip.money import Money, format_amount
from payments import service as payments
from payments.models import Department

TEXT = {
    "zh-CN": {
        "title": "缴费",
        "track": "查看办理进度",
        "matter": "事项",
        "reference": "业务编号",
        "amount": "金额",
        "status": "状态",
        "created": "待支付",
        "started": "待支付",
        "succeeded": "缴费成功",
        "failed": "支付未成功",
        "cancelled": "该缴费已取消",
        "expired": "该缴费已过期，请联系办理部门重新发起",
        "needs_review": "已收到款项，但与应缴金额不符，正在由办理部门核实",
        "confirming": "正在确认您的支付，页面将自动刷新…",
    },
    "en": {
        "title": "Pay a fee",
        "track": "Track your licence",
        "matter": "Matter",
        "reference": "Reference",
        "amount": "Amount",
        "status": "Status",
        "created": "Awaiting payment",
        "started": "Awaiting payment",
        "succeeded": "Payment received",
        "failed": "The payment did not go through",
        "cancelled": "This payment was cancelled",
        "expired": "This payment link has expired; ask the department for a new one",
        "needs_review": "Money was received but differs from the fee; the department is checking",
        "confirming": "We are confirming your payment; this page refreshes by itself…",
    },
}


def language(request: Request[Any, Any, Any], applicant: dict[str, Any] | None) -> str:
    return page_language(request.query_params, applicant, TEXT)


class TrackController(Controller):
    path = ""
    tags = ["applicant pages"]
    include_in_schema = True

    @get("/track/{token:str}", summary="Payment, licence and delivery status", security=[])
    async def track_page(self, request: Request[Any, Any, Any], token: str) -> Template:
        async with get_database().session() as session:
            payment = await payments.payment_by_token(session, token)
            department = await session.get(Department, payment.department)
        lang = language(request, payment.applicant)
        return Template(
            template_name="track.html",
            context={
                "t": TEXT[lang],
                "lang": lang,
                "payment": payment,
                "amount": format_amount(Money(payment.amount, payment.currency), lang),
                "department_name": department.name if department else payment.department,
            },
        )


routes: list[Any] = [TrackController]
