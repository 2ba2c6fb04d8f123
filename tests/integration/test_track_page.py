"""The applicant's tracking page `/track/{token}`, as the applicant sees it (both dialects).

The page belongs to delivery (it will show the licence and the parcel too) and reads the
payment through payments; what it shows of the payment must not change with the move.
"""

from __future__ import annotations

import re

from tests.integration.test_payments_support import (
    create_payment,
    pay_with_sandbox,
    token_of,
)

pytest_plugins = ["tests.integration.test_payments_support"]


def status_text(html: str) -> str:
    match = re.search(r'<span class="status (\w+)" id="status">([^<]*)</span>', html)
    assert match, html
    return f"{match.group(1)}:{match.group(2)}"


async def test_the_tracking_page_shows_an_unpaid_payment_in_chinese(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await app_client.get(f"/track/{token_of(payment)}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<html lang="zh-CN">' in html
    assert "<h1>查看办理进度</h1>" in html
    assert "<title>缴费 · OneTrip</title>" in html
    assert "普通护照签发" in html and "CRJ-2026-000001" in html
    assert "¥120.00" in html
    assert status_text(html) == "created:待支付"
    assert "市公安局" in html  # the department's name in the footer
    assert 'http-equiv="refresh"' not in html and 'id="confirming"' not in html


async def test_the_tracking_page_follows_the_language_asked_for(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    html = (await app_client.get(f"/track/{token_of(payment)}?lang=en")).text
    assert '<html lang="en">' in html
    assert "<h1>Track your licence</h1>" in html
    assert status_text(html) == "created:Awaiting payment"
    # A language the page does not speak falls back to Chinese.
    html = (await app_client.get(f"/track/{token_of(payment)}?lang=fr")).text
    assert '<html lang="zh-CN">' in html and "<h1>查看办理进度</h1>" in html


async def test_the_tracking_page_refreshes_itself_while_the_payment_is_confirmed(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    token = token_of(payment)
    assert (await app_client.get(f"/pay/{token}")).status_code == 200  # started
    html = (await app_client.get(f"/track/{token}")).text
    assert status_text(html) == "started:待支付"
    assert '<meta http-equiv="refresh" content="3">' in html
    assert '<p class="note" id="confirming">正在确认您的支付，页面将自动刷新…</p>' in html


async def test_the_tracking_page_shows_a_paid_payment(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await pay_with_sandbox(app_client, payment)
    html = (await app_client.get(f"/track/{token_of(payment)}")).text
    assert status_text(html) == "succeeded:缴费成功"
    assert 'http-equiv="refresh"' not in html


async def test_an_unknown_tracking_token_is_an_html_404_page(app_client, keys):
    # a person reads it: HTML in their language, not problem+json (issue 7 item 7)
    response = await app_client.get("/track/tok_doesnotexist")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert '<h1 id="not-found">链接无效或已失效</h1>' in response.text
