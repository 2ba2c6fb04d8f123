"""The applicant's pages in Chromium, on a phone (390×844) and a desktop, in zh-CN and
en: a retry after a decline, refunds, the 404 page, a delivered licence's journey.

Screenshots land in the test's tmp folder (and in $ONETRIP_TEST_SCREENSHOTS if set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import stripe_fixtures
from tests.e2e.test_browser import CARD_3DS, browser, keep_screenshot, sandbox_server
from tests.factories import auth, make_key, payment_body, seed_catalogue
from tests.integration.test_pages_support import delivered_licence

__all__ = ["browser", "sandbox_server"]

localstripe = stripe_fixtures.localstripe
stripe_stack = stripe_fixtures.stripe_stack

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}


async def shot(page: Any, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    keep_screenshot(path)


async def new_payment(client: httpx.AsyncClient, key: str, ref: str, **body: Any) -> dict:  # type: ignore[type-arg]
    created = await client.post(
        "/api/v1/payments", json=payment_body(reference=ref, **body), headers=auth(key, ref)
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


async def setup(client: httpx.AsyncClient) -> str:
    await seed_catalogue(client, await make_key("admin"))
    return await make_key("department", ["PSB"])


async def test_on_a_phone_a_declined_card_is_explained_and_another_card_pays(
    sandbox_server: str, browser: Any, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_server) as client:
        psb = await setup(client)
        payment = await new_payment(client, psb, "CRJ-2026-000901")
        context = await browser.new_context(**PHONE, locale="zh-CN")
        page = await context.new_page()
        await page.goto(payment["payment_url"])
        await page.fill("#card_number", "4000 0000 0000 9995")
        await page.click("#pay")
        await page.wait_for_selector("#status.failed")
        assert "卡内余额不足" in await page.inner_text("#reason")
        assert "insufficient" not in (await page.content()).lower()
        await shot(page, tmp_path, "phone-zh-declined")

        await page.click("#retry")
        await page.wait_for_selector("#card_number")
        await page.fill("#card_number", "4242 4242 4242 4242")
        await page.click("#pay")
        await page.wait_for_selector("#status.succeeded")
        await shot(page, tmp_path, "phone-zh-paid-after-retry")

        events = await client.get(f"/api/v1/payments/{payment['id']}/events", headers=auth(psb))
        # the payment's own moves (the applicant's notifications are on the timeline too)
        assert [e["type"] for e in events.json()["data"] if e["type"].startswith("payment.")] == [
            "payment.created",
            "payment.started",
            "payment.failed",
            "payment.started",
            "payment.succeeded",
        ]


async def test_a_declined_card_in_english_on_a_desktop(
    sandbox_server: str, browser: Any, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_server) as client:
        psb = await setup(client)
        payment = await new_payment(
            client, psb, "CRJ-2026-000902", applicant={"name": "李娜", "language": "en"}
        )
        page = await (await browser.new_context(**DESKTOP)).new_page()
        await page.goto(payment["payment_url"])
        await page.fill("#card_number", "4000000000000002")
        await page.click("#pay")
        await page.wait_for_selector("#retry")
        assert "Your card was declined by your bank" in await page.inner_text("#reason")
        await shot(page, tmp_path, "desktop-en-declined")


async def test_refunds_show_on_the_tracking_page_on_a_phone_and_a_desktop(
    sandbox_server: str, browser: Any, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_server) as client:
        psb = await setup(client)
        zh = await new_payment(client, psb, "CRJ-2026-000903")
        en = await new_payment(
            client, psb, "CRJ-2026-000904", applicant={"name": "李娜", "language": "en"}
        )
        for payment in (zh, en):
            token = payment["payment_url"].rsplit("/", 1)[1]
            await client.get(f"/pay/{token}")
            await client.post(f"/pay/{token}/sandbox", data={"card_number": "4242424242424242"})
        for payment, amounts in ((zh, (5000,)), (en, (5000, 7000))):
            for n, amount in enumerate(amounts):
                answer = await client.post(
                    f"/api/v1/payments/{payment['id']}/refunds",
                    json={"amount": amount, "reason": "申请人撤回申请"},
                    headers=auth(psb, f"refund-{payment['id']}-{n}"),
                )
                assert answer.status_code == 201, answer.text

        phone = await (await browser.new_context(**PHONE)).new_page()
        await phone.goto(zh["tracking_url"])
        assert await phone.inner_text("#status") == "缴费成功（已部分退款）"
        assert await phone.inner_text("#net-paid") == "¥70.00"
        await shot(phone, tmp_path, "phone-zh-track-partly-refunded")

        desktop = await (await browser.new_context(**DESKTOP)).new_page()
        await desktop.goto(en["tracking_url"])
        assert await desktop.inner_text("#status") == "Fully refunded"
        await shot(desktop, tmp_path, "desktop-en-track-refunded")
        async with desktop.expect_response("**/receipt.pdf") as answer:
            await desktop.evaluate("fetch(document.getElementById('receipt').href)")
        response = await answer.value
        assert response.status == 200
        assert response.headers["content-type"] == "application/pdf"


async def test_a_bad_link_shows_a_404_page_in_the_browsers_language(
    sandbox_server: str, browser: Any, tmp_path: Path
) -> None:
    phone = await (await browser.new_context(**PHONE, locale="zh-CN")).new_page()
    answer = await phone.goto(f"{sandbox_server}/track/tok_nosuchpayment")
    assert answer is not None and answer.status == 404
    assert await phone.inner_text("#not-found") == "链接无效或已失效"
    await shot(phone, tmp_path, "phone-zh-404")

    desktop = await (await browser.new_context(**DESKTOP, locale="en-US")).new_page()
    answer = await desktop.goto(f"{sandbox_server}/pay/tok_nosuchpayment")
    assert answer is not None and answer.status == 404
    assert await desktop.inner_text("#not-found") == "This link is not valid"
    await shot(desktop, tmp_path, "desktop-en-404")


async def test_a_delivered_licence_journey_on_a_phone_and_a_desktop(
    sandbox_server: str, browser: Any, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_server) as client:
        psb = await setup(client)
        zh = await new_payment(client, psb, "CRJ-2026-000905")
        en = await new_payment(
            client, psb, "CRJ-2026-000906", applicant={"name": "李娜", "language": "en"}
        )
        for payment in (zh, en):
            token = payment["payment_url"].rsplit("/", 1)[1]
            await client.get(f"/pay/{token}")
            await client.post(f"/pay/{token}/sandbox", data={"card_number": "4242424242424242"})
        await delivered_licence(zh, "SF1234567890")
        await delivered_licence(en, "SF5550001112", "浙公驾 330106-2026-0002")

    phone = await (await browser.new_context(**PHONE)).new_page()
    await phone.goto(zh["tracking_url"])
    assert await phone.inner_text("#license-status") == "已签收"
    assert await phone.inner_text("#tracking-number") == "SF1234567890"
    assert "快件已签收" in await phone.inner_text("#timeline")
    assert await phone.get_attribute("#verify", "href") == "/verify/v1.QUJD.ZGVm"
    # mobile first: nothing wider than the screen
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    await shot(phone, tmp_path, "phone-zh-track-delivered")

    desktop = await (await browser.new_context(**DESKTOP)).new_page()
    await desktop.goto(en["tracking_url"])
    assert await desktop.inner_text("#courier") == "顺丰速运"
    assert "Signed for by 张伟" in await desktop.inner_text("#timeline")
    await shot(desktop, tmp_path, "desktop-en-track-delivered")


async def test_stripe_js_reports_a_failed_card_and_another_card_pays_the_same_intent(
    stripe_stack: Any, browser: Any, tmp_path: Path
) -> None:
    """Stripe.js says the card did not go through (localstripe: 3-D Secure failed, which
    sends no webhook, so the page asks Stripe itself); the page explains it in Chinese
    and offers another card, which pays the same PaymentIntent."""
    stack = stripe_stack
    payment = await stack.create_payment(reference="CRJ-2026-000907")
    page = await (await browser.new_context(**PHONE)).new_page()
    await page.goto(payment["payment_url"])  # creates the PaymentIntent
    intent_id, secret = stripe_fixtures.intent_in_page(await page.content())
    assert stack.pay_with_card(intent_id, CARD_3DS).status == "requires_action"
    await page.click("#pay")
    await page.click("text=Fail authentication")
    await page.wait_for_selector("#retry", timeout=30_000)
    assert "支付未能完成" in await page.inner_text("#reason")
    await shot(page, tmp_path, "phone-zh-stripe-declined")

    await page.click("#retry")
    await page.wait_for_selector("#card-element")
    assert stripe_fixtures.intent_in_page(await page.content()) == (intent_id, secret)
    assert stack.pay_with_card(intent_id, CARD_3DS).status == "requires_action"
    await page.click("#pay")
    await page.click("text=Complete authentication")
    await page.wait_for_url("**/track/**")
    await stack.wait_for_status(payment["id"], "succeeded")
    types = [e["type"] for e in await stack.events(payment["id"])]
    assert [t for t in types if t.startswith("payment.")] == [
        "payment.created",
        "payment.started",
        "payment.failed",
        "payment.started",
        "payment.succeeded",
    ]
