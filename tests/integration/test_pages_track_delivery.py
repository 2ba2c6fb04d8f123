"""The tracking page shows the licence and the parcel (issue 8 item 9): status, courier,
tracking number, the verification link, pickup, and one timeline, in zh-CN and en."""

from __future__ import annotations

from delivery.models import License
from onetrip.db import get_database
from tests.integration.test_pages_support import (
    delivered_licence,
    licence_for,
    move_licence,
    status_text,
    timeline_texts,
)
from tests.integration.test_payments_support import create_payment, paid_payment, token_of

pytest_plugins = ["tests.integration.test_payments_support"]


async def test_a_delivered_licence_shows_courier_tracking_number_and_the_whole_journey(
    app_client, keys
):
    payment = await paid_payment(app_client, keys["psb"])
    await delivered_licence(payment)
    html = (await app_client.get(f"/track/{token_of(payment)}")).text

    assert status_text(html) == "succeeded:缴费成功"
    assert status_text(html, "license-status") == "delivered:已签收"
    assert status_text(html, "parcel-status") == "delivered:已签收"
    assert '<dd id="courier">顺丰速运</dd>' in html
    assert 'id="tracking-number">SF1234567890</dd>' in html
    assert 'id="license-no">浙公驾 330106-2026-0001</dd>' in html
    assert '<a id="verify" href="/verify/v1.QUJD.ZGVm">核验证照真伪</a>' in html
    assert "138****8000" in html and "13800138000" not in html  # the phone is masked
    lines = timeline_texts(html)
    # newest first; the licence's `deliver` move is told by the courier's event (once)
    assert lines == [
        "杭州市西湖区 快件已签收 签收人：张伟",
        "杭州市西湖区 快件派送中，请保持电话畅通",
        "杭州转运中心 快件运输中",
        "杭州市西湖区 文三路营业部 快递员已揽收",
        "证照已交 顺丰速运 寄出，运单号 SF1234567890",
        "证照已打印",
        "证照已制作",
        "证照已签发",
        "缴费成功",
    ], lines


async def test_the_tracking_page_speaks_english_for_an_english_applicant(app_client, keys):
    payment = await paid_payment(
        app_client, keys["psb"], applicant={"name": "李娜", "language": "en"}
    )
    await delivered_licence(payment, tracking_number="SF5550001112")
    html = (await app_client.get(f"/track/{token_of(payment)}")).text
    assert '<html lang="en">' in html
    assert status_text(html, "license-status") == "delivered:Delivered"
    assert "Check that the licence is genuine" in html
    lines = timeline_texts(html)
    assert lines[0].endswith("Delivered Signed for by 张伟")
    assert any("Licence sent with 顺丰速运, tracking number SF5550001112" in x for x in lines)
    assert "已签收" not in html and "证照" not in html


async def test_a_licence_on_its_way_shows_the_latest_courier_status(app_client, keys):
    from datetime import timedelta

    from onetrip.clock import utcnow
    from tests.integration.test_pages_support import courier_event, dispatch_for, paid_at

    payment = await paid_payment(app_client, keys["psb"])
    at = utcnow() - timedelta(hours=3)
    await paid_at(payment, at - timedelta(minutes=5))
    license_id = await licence_for(payment, issued_at=at)
    await move_licence(license_id, "render", at)
    await move_licence(license_id, "print", at + timedelta(minutes=10))
    dispatch_id = await dispatch_for(
        license_id, payment, at + timedelta(minutes=20), "SF0000000001"
    )
    await move_licence(license_id, "dispatch", at + timedelta(minutes=20), dispatch_id)
    await courier_event(dispatch_id, "picked_up", at + timedelta(hours=1), "杭州市西湖区")
    html = (await app_client.get(f"/track/{token_of(payment)}")).text
    assert status_text(html, "license-status") == "dispatched:已寄出"
    assert status_text(html, "parcel-status") == "picked_up:已揽收"
    assert timeline_texts(html)[0].endswith("快递员已揽收")


async def test_a_pickup_licence_shows_the_window_and_who_collected_it(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    from onetrip.clock import utcnow

    license_id = await licence_for(payment, method="pickup")
    now = utcnow()
    for event in ("render", "print", "ready_for_pickup"):
        await move_licence(license_id, event, now)
    html = (await app_client.get(f"/track/{token_of(payment)}")).text
    assert status_text(html, "license-status") == "pickup_ready:可领取"
    assert "市公安局办事窗口（请携带本人身份证件）" in html
    assert 'id="parcel"' not in html
    assert timeline_texts(html)[0].endswith("证照已可到窗口领取")

    async with get_database().session() as session, session.begin():
        row = await session.get(License, license_id)
        assert row is not None
        row.collected_by = "张伟"
        row.collected_at = now
    await move_licence(license_id, "collect", now)
    html = (await app_client.get(f"/track/{token_of(payment)}")).text
    assert status_text(html, "license-status") == "collected:已领取"
    assert 'id="collected-by">张伟' in html


async def test_a_paid_deliverable_payment_without_a_licence_says_it_is_being_prepared(
    app_client, keys
):
    payment = await paid_payment(app_client, keys["psb"])
    html = (await app_client.get(f"/track/{token_of(payment)}")).text
    assert 'id="waiting-license"' in html and 'id="license"' not in html
    unpaid = await create_payment(app_client, keys["psb"], reference="CRJ-2026-000002")
    html = (await app_client.get(f"/track/{token_of(unpaid)}")).text
    assert 'id="waiting-license"' not in html and 'id="timeline"' not in html


async def test_a_returned_parcel_and_its_redispatch_both_show_in_the_timeline(app_client, keys):
    from datetime import timedelta

    from onetrip.clock import utcnow
    from tests.integration.test_pages_support import courier_event, dispatch_for, paid_at

    payment = await paid_payment(app_client, keys["psb"])
    at = utcnow() - timedelta(days=3)
    await paid_at(payment, at - timedelta(minutes=5))
    license_id = await licence_for(payment, issued_at=at)
    await move_licence(license_id, "render", at)
    await move_licence(license_id, "print", at + timedelta(minutes=10))
    first = await dispatch_for(license_id, payment, at + timedelta(minutes=20), "SF0000000011")
    await move_licence(license_id, "dispatch", at + timedelta(minutes=20), first)
    for day in (1, 2, 3):  # the third failed attempt returns it (the courier's rule)
        await courier_event(first, "failed_attempt", at + timedelta(days=day * 0.5), "杭州市西湖区")
    await move_licence(license_id, "return", at + timedelta(days=1.6))
    second = await dispatch_for(license_id, payment, at + timedelta(days=2), "SF0000000022")
    await move_licence(license_id, "redispatch", at + timedelta(days=2), second)
    await courier_event(second, "picked_up", at + timedelta(days=2.1), "杭州市西湖区")

    html = (await app_client.get(f"/track/{token_of(payment)}")).text
    assert 'id="tracking-number">SF0000000022</dd>' in html  # the parcel on its way now
    lines = timeline_texts(html)
    assert lines[:3] == [
        "杭州市西湖区 快递员已揽收",
        "证照已交 顺丰速运 重新寄出，运单号 SF0000000022",
        "快递已退回办理部门",
    ], lines
    assert lines.count("杭州市西湖区 派送未成功，快递员将再次派送") == 3
    assert "证照已交 顺丰速运 寄出，运单号 SF0000000011" in lines
