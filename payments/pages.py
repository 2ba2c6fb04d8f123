"""The applicant's pay page (Stripe.js or the sandbox). No key: the unguessable token in
the URL is the applicant's capability. The tracking page is delivery's (delivery/pages.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from onetrip.db import get_database
from onetrip.i18n import page_language
from onetrip.money import Money, format_amount
from onetrip.settings import get_settings
from payments import service
from payments.gateways.sandbox import TEST_CARDS

TEXT = {
    "zh-CN": {
        "title": "缴费",
        "pay": "支付",
        "amount": "金额",
        "matter": "事项",
        "reference": "业务编号",
        "payer": "缴款人",
        "status": "状态",
        "card": "银行卡号",
        "sandbox_note": "测试环境：请使用下列测试卡，不会产生真实扣款。",
        "succeeded": "缴费成功",
        "failed": "支付未成功",
        "cancelled": "该缴费已取消",
        "expired": "该缴费已过期，请联系办理部门重新发起",
        "needs_review": "已收到款项，但与应缴金额不符，正在由办理部门核实",
        "created": "待支付",
        "started": "待支付",
        "track": "查看办理进度",
        "back": "返回办理部门",
        "unknown_card": "这不是测试卡号，请从下表中选择。",
        "processing": "正在处理…",
        "materials": "所需材料（一次告知）",
    },
    "en": {
        "title": "Pay a fee",
        "pay": "Pay",
        "amount": "Amount",
        "matter": "Matter",
        "reference": "Reference",
        "payer": "Payer",
        "status": "Status",
        "card": "Card number",
        "sandbox_note": "Sandbox: use one of these test cards; no real money moves.",
        "succeeded": "Payment received",
        "failed": "The payment did not go through",
        "cancelled": "This payment was cancelled",
        "expired": "This payment link has expired; ask the department for a new one",
        "needs_review": (
            "Money was received but differs from the fee; the department is looking into it"
        ),
        "created": "Awaiting payment",
        "started": "Awaiting payment",
        "track": "Track your licence",
        "back": "Back to the department",
        "unknown_card": "That is not a test card; pick one from the list.",
        "processing": "Processing…",
        "materials": "Materials you need (told once, in full)",
    },
}


def language(request: Request[Any, Any, Any], payment: Any) -> str:
    return page_language(request.query_params, payment.applicant, TEXT)


async def _department_name(code: str) -> str:
    from payments.models import Department

    async with get_database().session() as session:
        department = await session.get(Department, code)
    return department.name if department else code


async def _materials(matter_code: str) -> list[str]:
    """The one-time notice: everything the applicant must bring, shown at once."""
    from payments.catalogue import matter_info

    info = await matter_info(matter_code)
    return list(info.required_materials) if info else []


@dataclass
class SandboxCardForm:
    card_number: str = ""


class PagesController(Controller):
    path = ""
    tags = ["applicant pages"]
    include_in_schema = True

    @get("/pay/{token:str}", summary="Hosted payment page", security=[])
    async def pay_page(self, request: Request[Any, Any, Any], token: str) -> Template:
        payment = await service.start_online(token)
        lang = language(request, payment)
        settings = get_settings()
        return Template(
            template_name="pay.html",
            context={
                "t": TEXT[lang],
                "lang": lang,
                "payment": payment,
                "amount": format_amount(Money(payment.amount, payment.currency), lang),
                "urls": service.payment_urls(payment.token),
                "stripe_js_url": settings.stripe_js_url,
                "publishable_key": settings.stripe_publishable_key,
                "test_cards": [
                    (number, zh if lang == "zh-CN" else en)
                    for number, (_, en, zh) in TEST_CARDS.items()
                ],
                "materials": await _materials(payment.matter_code),
                "error": request.query_params.get("error"),
                "department_name": await _department_name(payment.department),
            },
        )

    @post("/pay/{token:str}/sandbox", summary="Sandbox card form", security=[], status_code=303)
    async def sandbox_submit(
        self,
        token: str,
        data: Annotated[SandboxCardForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        payment, error = await service.sandbox_pay(token, data.card_number)
        suffix = f"?error={error}" if error else ""
        return Redirect(path=f"/pay/{payment.token}{suffix}", status_code=303)
