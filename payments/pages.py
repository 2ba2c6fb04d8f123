"""The applicant's pay page (Stripe.js or the sandbox). No key: the unguessable token in
the URL is the applicant's capability. The tracking page is delivery's (delivery/pages.py).

Also what both applicant pages share: the HTML 404 page of a bad link (never JSON),
the refunds block, and local times. Delivery imports these (it may read payments).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, post
from litestar.enums import MediaType, RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip.db import get_database
from onetrip.errors import NotFound
from onetrip.i18n import page_language
from onetrip.money import Money, format_amount
from onetrip.settings import get_settings
from payments import service
from payments.gateways.sandbox import TEST_CARDS
from payments.lifecycle import can_retry, retry_online
from payments.models import Department, Payment, Refund
from payments.reasons import reason_message
from payments.states import REFUND_PENDING, REFUND_SUCCEEDED

#: how many times the pay page reloads itself waiting for a decline to be reported
#: (about 2 s each) before it offers the card form again
DECLINE_WAIT_RELOADS = 10
#: from this reload on it asks Stripe itself (the webhook, with the decline's reason,
#: usually comes first)
DECLINE_POLL_AFTER = 3

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
        "refunded": "已全额退款",
        "partially_refunded": "缴费成功（已部分退款）",
        "track": "查看办理进度",
        "back": "返回办理部门",
        "unknown_card": "这不是测试卡号，请从下表中选择。",
        "processing": "正在处理…",
        "materials": "所需材料（一次告知）",
        "reason": "原因",
        "retry": "换一张卡重试",
        "retry_note": "本次缴费仍然有效，您可以换一张银行卡再次支付，未成功的尝试不会扣款。",
        "confirming_decline": "正在确认支付结果，请稍候…",
        "refunds": "退款",
        "refund_total": "已退款金额",
        "net_paid": "实际缴费",
        "refund_succeeded": "已退款",
        "refund_pending": "退款处理中",
        "receipt": "下载电子票据（PDF）",
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
        "refunded": "Fully refunded",
        "partially_refunded": "Payment received (partly refunded)",
        "track": "Track your licence",
        "back": "Back to the department",
        "unknown_card": "That is not a test card; pick one from the list.",
        "processing": "Processing…",
        "materials": "Materials you need (told once, in full)",
        "reason": "Reason",
        "retry": "Try another card",
        "retry_note": (
            "This payment is still open: you can pay with another card. Attempts that "
            "did not go through were not charged."
        ),
        "confirming_decline": "Checking the result of your payment…",
        "refunds": "Refunds",
        "refund_total": "Refunded",
        "net_paid": "Paid, net of refunds",
        "refund_succeeded": "Refunded",
        "refund_pending": "Refund in progress",
        "receipt": "Download the receipt (PDF)",
    },
}

NOT_FOUND_TEXT = {
    "zh-CN": {
        "title": "页面不存在",
        "heading": "链接无效或已失效",
        "payment_not_found": (
            "未找到该缴费。请核对短信或邮件中的链接是否完整，或联系办理部门重新获取链接。"
        ),
        "receipt_not_ready": "电子票据在缴费成功后提供。请先完成缴费，或返回查看办理进度。",
        "generic": "未找到您要访问的内容。",
        "code": "错误代码",
    },
    "en": {
        "title": "Page not found",
        "heading": "This link is not valid",
        "payment_not_found": (
            "We found no payment for this link. Check that the link from your text message "
            "or email is complete, or ask the department for a new one."
        ),
        "receipt_not_ready": (
            "The receipt is available once the payment has gone through. Pay first, or go "
            "back to the tracking page."
        ),
        "generic": "We could not find what you were looking for.",
        "code": "Error code",
    },
}


def language(request: Request[Any, Any, Any], payment: Any) -> str:
    return page_language(request.query_params, payment.applicant, TEXT)


def not_found_page(request: Request[Any, Any, Any], exc: NotFound) -> Response[str]:
    """A bad applicant link (or a receipt before success): an HTML 404 in the reader's
    language (?lang=, else the browser's), never problem+json: a person reads it."""
    lang = page_language(
        request.query_params, None, NOT_FOUND_TEXT, request.headers.get("accept-language")
    )
    text = NOT_FOUND_TEXT[lang]
    template = request.app.template_engine.get_template("not_found.html")
    html = template.render(
        t={"title": text["title"]},
        nf=text,
        lang=lang,
        message=text.get(exc.code, text["generic"]),
        code=exc.code,
        department_name="",
    )
    return Response(
        content=html,
        status_code=404,
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-store"},
    )


#: give the applicant pages' controllers this, so a bad token is a page, not JSON
PAGE_EXCEPTION_HANDLERS: dict[type[Exception], Any] = {NotFound: not_found_page}


def local_time(moment: datetime | None, zone: str) -> str:
    """`2026-12-01 14:05` in the department's time zone (the applicant's clock)."""
    if moment is None:
        return ""
    try:
        tz = ZoneInfo(zone)
    except (ValueError, KeyError):
        tz = ZoneInfo("Asia/Shanghai")
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def status_key(payment: Payment) -> str:
    """What the page's status badge says: the payment's status, or its refund state
    once money went back (a refunded payment must not read 缴费成功)."""
    if payment.refund_status == "full":
        return "refunded"
    if payment.refund_status == "partial" and payment.status == "succeeded":
        return "partially_refunded"
    return payment.status


async def refunds_block(
    session: AsyncSession, payment: Payment, lang: str, zone: str
) -> dict[str, Any] | None:
    """The refunds the applicant sees (settled and in progress, with their dates), the
    refunded total and the net paid; None when there are none."""
    rows = (
        await session.execute(
            select(Refund)
            .where(
                Refund.payment_id == payment.id,
                Refund.status.in_((REFUND_SUCCEEDED, REFUND_PENDING)),
            )
            .order_by(Refund.created_at, Refund.id)
        )
    ).scalars()
    text = TEXT[lang]
    items = [
        {
            "amount": format_amount(Money(r.amount, r.currency), lang),
            "status": r.status,
            "label": text["refund_succeeded" if r.status == REFUND_SUCCEEDED else "refund_pending"],
            # a settled refund's date is when it settled; a pending one's, when asked for
            "date": local_time(
                r.updated_at if r.status == REFUND_SUCCEEDED else r.created_at, zone
            ),
        }
        for r in rows
    ]
    if not items:
        return None
    paid = payment.amount if payment.amount_received is None else payment.amount_received
    currency = payment.received_currency or payment.currency
    return {
        "items": items,
        "total": format_amount(Money(payment.amount_refunded, currency), lang),
        "net": format_amount(Money(max(paid - payment.amount_refunded, 0), currency), lang),
        "status": payment.refund_status,
    }


async def department_of(session: AsyncSession, code: str) -> tuple[str, str]:
    """(name, time zone) of a department, its code if it is unknown."""
    department = await session.get(Department, code)
    if department is None:
        return code, "Asia/Shanghai"
    return department.name, department.timezone


async def _materials(matter_code: str) -> list[str]:
    """The one-time notice: everything the applicant must bring, shown at once."""
    from payments.catalogue import matter_info

    info = await matter_info(matter_code)
    return list(info.required_materials) if info else []


def applicant_reason(payment: Payment, lang: str) -> str | None:
    """Why the payment failed or closed, in the applicant's words: a failure always has
    one (the generic message when the gateway gave none)."""
    if payment.status not in ("failed", "cancelled", "expired"):
        return None
    fallback = "unknown" if payment.status == "failed" else None
    return reason_message(payment.failure_reason or fallback, lang)


def _decline_wait(request: Request[Any, Any, Any], payment: Payment) -> int | None:
    """Stripe.js reported a decline (`?declined=N`) that our webhook has not recorded
    yet: the reload number to wait with, or None to show the page as it is."""
    raw = request.query_params.get("declined")
    if raw is None or payment.status != "started" or payment.gateway != "stripe":
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 1
    return count if 0 < count < DECLINE_WAIT_RELOADS else None


@dataclass
class SandboxCardForm:
    card_number: str = ""


class PagesController(Controller):
    path = ""
    tags = ["applicant pages"]
    include_in_schema = True
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    @get("/pay/{token:str}", summary="Hosted payment page", security=[])
    async def pay_page(self, request: Request[Any, Any, Any], token: str) -> Template:
        payment = await service.start_online(token)
        wait = _decline_wait(request, payment)
        if wait is not None and wait >= DECLINE_POLL_AFTER:
            # no webhook yet: ask Stripe (the reason then reads as the generic one)
            await service.resolve_online(payment, expire=False)
            payment = await service.start_online(token)
            wait = _decline_wait(request, payment)
        lang = language(request, payment)
        settings = get_settings()
        async with get_database().session() as session:
            department_name, zone = await department_of(session, payment.department)
            refunds = await refunds_block(session, payment, lang, zone)
        return Template(
            template_name="pay.html",
            context={
                "t": TEXT[lang],
                "lang": lang,
                "payment": payment,
                "status_key": status_key(payment),
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
                "department_name": department_name,
                "reason": applicant_reason(payment, lang),
                "can_retry": can_retry(payment),
                "decline_wait": wait,
                "refunds": refunds,
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

    @post(
        "/pay/{token:str}/retry",
        summary="Try another card after a decline",
        security=[],
        status_code=303,
    )
    async def retry(self, request: Request[Any, Any, Any], token: str) -> Redirect:
        payment = await retry_online(token)
        lang = request.query_params.get("lang")
        suffix = f"?lang={lang}" if lang in TEXT else ""
        return Redirect(path=f"/pay/{payment.token}{suffix}", status_code=303)
