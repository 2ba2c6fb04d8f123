"""The applicant's tracking page and receipt download. No key: the unguessable token in
the URL is the applicant's capability.

It lives in delivery because it shows the payment (read through payments), the licence
and the parcel; payments may not read delivery. Its frame is payments' `base.html`,
found through the app's list of template folders. It only reads: the licence's moves
come from `state_transitions` (machine "license"), the courier's from `dispatch_events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from delivery import ratings
from delivery.labels import masked_phone
from delivery.models import CourierPartner, Dispatch, DispatchEvent, License
from delivery.states import LICENSE_MACHINE
from onetrip.db import get_database, unit_of_work
from onetrip.errors import NotFound
from onetrip.i18n import page_language
from onetrip.money import Money, format_amount
from onetrip.states import StateTransition
from payments import service as payments
from payments.lifecycle import can_retry
from payments.models import Matter, Payment, Refund
from payments.pages import (
    PAGE_EXCEPTION_HANDLERS,
    applicant_reason,
    department_of,
    local_time,
    refunds_block,
    status_key,
)
from payments.pages import TEXT as PAY_TEXT
from payments.receipts import current_receipt, has_receipt
from payments.states import REFUND_SUCCEEDED

TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        **PAY_TEXT["zh-CN"],
        "title": "缴费",
        "track": "查看办理进度",
        "needs_review": "已收到款项，但与应缴金额不符，正在由办理部门核实",
        "confirming": "正在确认您的支付，页面将自动刷新…",
        "payment": "缴费",
        "paid_at": "缴费时间",
        "license": "证照",
        "license_title": "名称",
        "license_no": "证照编号",
        "license_status": "证照状态",
        "verify": "核验证照真伪",
        "delivery": "寄递",
        "pickup": "窗口领取",
        "courier": "快递公司",
        "tracking_number": "运单号",
        "parcel_status": "快递状态",
        "recipient": "收件人",
        "address": "收件地址",
        "pickup_at": "领取地点",
        "pickup_window": "{department}办事窗口（请携带本人身份证件）",
        "collected_by": "领取人",
        "timeline": "办理进度",
        "waiting_license": "缴费已完成，办理部门正在制证，完成后将寄出或通知您领取。",
        "not_deliverable": "该事项的证件不寄递，请按办理部门的通知办理。",
        "no_events": "暂无记录",
        # the licence's status
        "license.issued": "已签发",
        "license.rendered": "已制证",
        "license.printed": "已打印",
        "license.dispatched": "已寄出",
        "license.delivered": "已签收",
        "license.pickup_ready": "可领取",
        "license.collected": "已领取",
        "license.returned": "已退回",
        "license.needs_attention": "待办理部门处理",
        "license.revoked": "已注销",
        # the parcel's status
        "dispatch.created": "待揽收",
        "dispatch.accepted": "快递已接单",
        "dispatch.picked_up": "已揽收",
        "dispatch.in_transit": "运输中",
        "dispatch.out_for_delivery": "派送中",
        "dispatch.delivered": "已签收",
        "dispatch.failed_attempt": "派送未成功",
        "dispatch.returned": "已退回",
        # timeline entries
        "event.paid": "缴费成功",
        "event.refund": "已退款 {amount}",
        "event.issued": "证照已签发",
        "event.render": "证照已制作",
        "event.print": "证照已打印",
        "event.dispatch": "证照已交 {partner} 寄出，运单号 {tracking}",
        "event.redispatch": "证照已交 {partner} 重新寄出，运单号 {tracking}",
        "event.no_partner": "暂无快递公司服务该地址，办理部门正在处理",
        "event.ready_for_pickup": "证照已可到窗口领取",
        "event.collect": "证照已领取",
        "event.deliver": "证照已签收",
        "event.return": "快递已退回办理部门",
        "event.revoke": "证照已被办理部门注销",
        "event.courier.accepted": "快递公司已接单",
        "event.courier.picked_up": "快递员已揽收",
        "event.courier.in_transit": "快件运输中",
        "event.courier.out_for_delivery": "快件派送中，请保持电话畅通",
        "event.courier.delivered": "快件已签收",
        "event.courier.failed_attempt": "派送未成功，快递员将再次派送",
        "event.courier.returned": "快件已退回",
        "signed_by": "签收人：{name}",
    },
    "en": {
        **PAY_TEXT["en"],
        "title": "Pay a fee",
        "track": "Track your licence",
        "needs_review": "Money was received but differs from the fee; the department is checking",
        "confirming": "We are confirming your payment; this page refreshes by itself…",
        "payment": "Payment",
        "paid_at": "Paid on",
        "license": "Licence",
        "license_title": "Title",
        "license_no": "Licence number",
        "license_status": "Licence status",
        "verify": "Check that the licence is genuine",
        "delivery": "Delivery",
        "pickup": "Collect in person",
        "courier": "Courier",
        "tracking_number": "Tracking number",
        "parcel_status": "Parcel status",
        "recipient": "Recipient",
        "address": "Address",
        "pickup_at": "Where",
        "pickup_window": "The service window of {department} (bring your identity card)",
        "collected_by": "Collected by",
        "timeline": "Progress",
        "waiting_license": (
            "Your payment is complete; the department is preparing your licence and will "
            "send it or tell you when to collect it."
        ),
        "not_deliverable": (
            "This matter's certificate is not delivered; follow the department's notice."
        ),
        "no_events": "Nothing yet",
        "license.issued": "Issued",
        "license.rendered": "Prepared",
        "license.printed": "Printed",
        "license.dispatched": "Sent",
        "license.delivered": "Delivered",
        "license.pickup_ready": "Ready to collect",
        "license.collected": "Collected",
        "license.returned": "Returned",
        "license.needs_attention": "Being handled by the department",
        "license.revoked": "Revoked",
        "dispatch.created": "Awaiting pick-up",
        "dispatch.accepted": "Accepted by the courier",
        "dispatch.picked_up": "Picked up",
        "dispatch.in_transit": "In transit",
        "dispatch.out_for_delivery": "Out for delivery",
        "dispatch.delivered": "Delivered",
        "dispatch.failed_attempt": "Delivery attempt failed",
        "dispatch.returned": "Returned",
        "event.paid": "Payment received",
        "event.refund": "Refunded {amount}",
        "event.issued": "Licence issued",
        "event.render": "Licence prepared",
        "event.print": "Licence printed",
        "event.dispatch": "Licence sent with {partner}, tracking number {tracking}",
        "event.redispatch": "Licence sent again with {partner}, tracking number {tracking}",
        "event.no_partner": "No courier serves this address yet; the department is handling it",
        "event.ready_for_pickup": "Licence ready to collect at the window",
        "event.collect": "Licence collected",
        "event.deliver": "Licence delivered",
        "event.return": "The parcel went back to the department",
        "event.revoke": "The department revoked the licence",
        "event.courier.accepted": "The courier accepted the parcel",
        "event.courier.picked_up": "Picked up by the courier",
        "event.courier.in_transit": "In transit",
        "event.courier.out_for_delivery": "Out for delivery; keep your phone at hand",
        "event.courier.delivered": "Delivered",
        "event.courier.failed_attempt": "Delivery attempt failed; the courier will try again",
        "event.courier.returned": "The parcel was returned",
        "signed_by": "Signed for by {name}",
    },
}


def language(request: Request[Any, Any, Any], applicant: dict[str, Any] | None) -> str:
    return page_language(request.query_params, applicant or {}, TEXT)


@dataclass
class Entry:
    """One line of the applicant's timeline."""

    at: datetime
    text: str
    kind: str  # "payment" | "license" | "courier"
    where: str | None = None
    detail: str | None = None


async def _license_of(session: AsyncSession, payment_id: str) -> License | None:
    """The payment's licence: the newest (a revoked one stays visible, it happened)."""
    stmt = (
        select(License)
        .where(License.payment_id == payment_id)
        .order_by(License.created_at.desc(), License.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _license_moves(session: AsyncSession, license_id: str) -> list[StateTransition]:
    stmt = (
        select(StateTransition)
        .where(
            StateTransition.machine == LICENSE_MACHINE.name,
            StateTransition.subject_id == license_id,
            StateTransition.applied.is_(True),
        )
        .order_by(StateTransition.occurred_at, StateTransition.id)
    )
    return list((await session.execute(stmt)).scalars())


async def _dispatches(
    session: AsyncSession, license_id: str
) -> tuple[list[Dispatch], dict[str, str], list[DispatchEvent]]:
    """The licence's dispatches (oldest first), partner names, and every courier event."""
    dispatches = list(
        (
            await session.execute(
                select(Dispatch)
                .where(Dispatch.license_id == license_id)
                .order_by(Dispatch.created_at, Dispatch.id)
            )
        ).scalars()
    )
    if not dispatches:
        return [], {}, []
    codes = {d.partner for d in dispatches}
    names = {
        p.code: p.name
        for p in (
            await session.execute(select(CourierPartner).where(CourierPartner.code.in_(codes)))
        ).scalars()
    }
    events = list(
        (
            await session.execute(
                select(DispatchEvent)
                .where(DispatchEvent.dispatch_id.in_([d.id for d in dispatches]))
                .order_by(DispatchEvent.occurred_at, DispatchEvent.id)
            )
        ).scalars()
    )
    return dispatches, names, events


def _license_entries(
    t: dict[str, str],
    license: License,
    moves: list[StateTransition],
    dispatches: list[Dispatch],
    partners: dict[str, str],
    courier_statuses: set[str],
) -> list[Entry]:
    entries = [Entry(license.created_at, t["event.issued"], "license")]
    # the n-th dispatch/redispatch move is the n-th parcel
    parcels = iter(dispatches)
    told_by_courier = {"deliver": "delivered", "return": "returned"}
    for move in moves:
        if told_by_courier.get(move.event) in courier_statuses:
            continue  # the courier's own event says it, with where and who signed
        text = t.get(f"event.{move.event}")
        if text is None:
            continue
        if move.event in ("dispatch", "redispatch"):
            parcel = next(parcels, None)
            text = text.format(
                partner=partners.get(parcel.partner, parcel.partner) if parcel else "",
                tracking=parcel.tracking_number if parcel else "",
            )
        entries.append(Entry(move.occurred_at, text, "license"))
    return entries


def _courier_entries(t: dict[str, str], events: list[DispatchEvent]) -> list[Entry]:
    entries = []
    for event in events:
        text = t.get(f"event.courier.{event.status}")
        if text is None:
            continue
        signed = (
            t["signed_by"].format(name=event.recipient_name)
            if event.status == "delivered" and event.recipient_name
            else None
        )
        entries.append(Entry(event.occurred_at, text, "courier", event.location, signed))
    return entries


async def _payment_entries(
    session: AsyncSession, t: dict[str, str], payment: Payment, lang: str
) -> list[Entry]:
    """Paid, and each refund paid back."""
    entries = []
    if payment.succeeded_at is not None:
        entries.append(Entry(payment.succeeded_at, t["event.paid"], "payment"))
    rows = (
        await session.execute(
            select(Refund).where(Refund.payment_id == payment.id, Refund.status == REFUND_SUCCEEDED)
        )
    ).scalars()
    entries += [
        Entry(
            r.updated_at,
            t["event.refund"].format(amount=format_amount(Money(r.amount, r.currency), lang)),
            "payment",
        )
        for r in rows
    ]
    return entries


async def track_context(session: AsyncSession, payment: Payment, lang: str) -> dict[str, Any]:
    """Everything the tracking page shows of one payment, in `lang`."""
    t = TEXT[lang]
    department_name, zone = await department_of(session, payment.department)
    refunds = await refunds_block(session, payment, lang, zone)
    license = await _license_of(session, payment.id)
    matter = await session.get(Matter, payment.matter_code)
    timeline = await _payment_entries(session, t, payment, lang)
    parcel: dict[str, Any] | None = None
    licence_view: dict[str, Any] | None = None
    if license is not None:
        moves = await _license_moves(session, license.id)
        dispatches, partners, events = await _dispatches(session, license.id)
        statuses = {event.status for event in events}
        timeline += _license_entries(t, license, moves, dispatches, partners, statuses)
        timeline += _courier_entries(t, events)
        licence_view = {
            "title": license.title,
            "license_no": license.license_no,
            "status": license.status,
            "status_text": t.get(f"license.{license.status}", license.status),
            "verify_href": f"/verify/{quote(license.verify_code, safe='')}"
            if license.verify_code
            else None,
            "method": license.delivery_method,
            "collected_by": license.collected_by,
            "collected_at": local_time(license.collected_at, zone),
        }
        if dispatches:
            current = dispatches[-1]
            address = current.address or {}
            parcel = {
                "partner": partners.get(current.partner, current.partner),
                "tracking_number": current.tracking_number,
                "status": current.status,
                "status_text": t.get(f"dispatch.{current.status}", current.status),
                "recipient": address.get("recipient", ""),
                "phone": masked_phone(address.get("phone")),
                "area": " ".join(
                    str(address[k]) for k in ("province", "city", "district") if address.get(k)
                ),
            }
    # newest first; moves recorded in the same instant keep their order, latest on top
    order = {id(entry): n for n, entry in enumerate(timeline)}
    timeline.sort(key=lambda e: (e.at, order[id(e)]), reverse=True)
    return {
        "t": t,
        "lang": lang,
        "payment": payment,
        "status_key": status_key(payment),
        "amount": format_amount(Money(payment.amount, payment.currency), lang),
        "paid_at": local_time(payment.succeeded_at, zone),
        "department_name": department_name,
        "pickup_window": t["pickup_window"].format(department=department_name),
        "reason": applicant_reason(payment, lang),
        "can_retry": can_retry(payment),
        "refunds": refunds,
        "license": licence_view,
        "parcel": parcel,
        "deliverable": bool(matter and matter.deliverable),
        "timeline": [
            {
                "when": local_time(e.at, zone),
                "text": e.text,
                "kind": e.kind,
                "where": e.where,
                "detail": e.detail,
            }
            for e in timeline
        ],
        "receipt_href": f"/track/{payment.token}/receipt.pdf" if has_receipt(payment) else None,
    }


# --- the satisfaction rating (delivery.ratings; the form posts to delivery.api.satisfaction)

RATING_TEXT: dict[str, dict[str, str]] = {
    "zh-CN": {
        "heading": "评价本次服务",
        "ask": "证照已送到您手中。您对本次办理满意吗？",
        "score": "评分（1 分很不满意，5 分非常满意）",
        "score.1": "很不满意",
        "score.2": "不满意",
        "score.3": "一般",
        "score.4": "满意",
        "score.5": "非常满意",
        "comment": "意见或建议（选填，不超过 500 字）",
        "submit": "提交评价",
        "thanks": "感谢您的评价！",
        "your_score": "您的评分：{score} 分（{label}）",
        "your_comment": "您的意见：",
        "error.invalid_rating": "请选择 1 到 5 分，意见不超过 500 字。",
        "error.not_delivered_yet": "证照送达或领取后才能评价。",
        "error.already_rated": "这笔缴费已经评价过了，感谢您的反馈。",
        "error.other": "评价没有提交成功，请稍后再试。",
    },
    "en": {
        "heading": "Rate the service",
        "ask": "Your licence has reached you. How satisfied are you with the service?",
        "score": "Score (1 very dissatisfied, 5 very satisfied)",
        "score.1": "Very dissatisfied",
        "score.2": "Dissatisfied",
        "score.3": "Neutral",
        "score.4": "Satisfied",
        "score.5": "Very satisfied",
        "comment": "Comments or suggestions (optional, up to 500 characters)",
        "submit": "Send my rating",
        "thanks": "Thank you for your rating!",
        "your_score": "Your score: {score} of 5 ({label})",
        "your_comment": "Your comment:",
        "error.invalid_rating": "Choose a score from 1 to 5; comments are up to 500 characters.",
        "error.not_delivered_yet": (
            "You can rate the service once the licence is delivered or collected."
        ),
        "error.already_rated": "This payment has already been rated; thank you for your feedback.",
        "error.other": "Your rating was not sent; please try again later.",
    },
}


async def rating_block(
    session: AsyncSession, payment: Payment, lang: str, request: Request[Any, Any, Any]
) -> dict[str, Any] | None:
    """What the page's rating section shows: the form once the licence was delivered or
    collected and no rating exists (preselecting `?score=` from the email's stars), the
    thank-you with the score after; None before delivery (no section)."""
    t = RATING_TEXT[lang]
    error = request.query_params.get("rating_error")
    error_text = (t.get(f"error.{error}") or t["error.other"]) if error else None
    given = await ratings.rating_of(session, payment.id)
    if given is not None:
        return {
            "t": t,
            "rated": True,
            "thanks": t["your_score"].format(score=given.score, label=t[f"score.{given.score}"]),
            "comment": given.comment,
            "error": None,
        }
    if await ratings.rateable_license(session, payment.id) is None:
        # no section before delivery; a form sent from a stale page hears why
        return {"t": t, "rated": False, "action": None, "error": error_text} if error else None
    preselected = request.query_params.get("score")
    lang_query = request.query_params.get("lang")
    return {
        "t": t,
        "rated": False,
        "action": f"/track/{quote(payment.token, safe='')}/rating"
        + (f"?lang={lang_query}" if lang_query in TEXT else ""),
        "scores": [(n, t[f"score.{n}"]) for n in ratings.SCORES],
        "selected": int(preselected) if preselected in {str(n) for n in ratings.SCORES} else None,
        "max_comment": ratings.MAX_COMMENT_LENGTH,
        "error": error_text,
    }


class TrackController(Controller):
    path = ""
    tags = ["applicant pages"]
    include_in_schema = True
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    @get("/track/{token:str}", summary="Payment, licence and delivery status", security=[])
    async def track_page(self, request: Request[Any, Any, Any], token: str) -> Template:
        async with get_database().session() as session:
            payment = await payments.payment_by_token(session, token)
            lang = language(request, payment.applicant)
            context = await track_context(session, payment, lang)
            context["rating"] = await rating_block(session, payment, lang, request)
        return Template(template_name="track.html", context=context)

    @get(
        "/track/{token:str}/receipt.pdf",
        summary="The applicant's current receipt",
        security=[],
        media_type="application/pdf",
    )
    async def receipt(self, token: str) -> Response[bytes]:
        async with unit_of_work() as session:
            payment = await payments.payment_by_token(session, token)
            if not has_receipt(payment):
                raise NotFound(
                    "the receipt exists once the payment has succeeded", code="receipt_not_ready"
                )
            pdf = await current_receipt(session, payment)
            filename = f"receipt-{payment.reference}.pdf"
        return Response(
            pdf,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="{quote(filename)}"',
                "Cache-Control": "no-store",
            },
        )


routes: list[Any] = [TrackController]
