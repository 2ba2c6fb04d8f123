"""A refund is visible to the applicant (issue 7 item 2): the pay and tracking pages say
partly / fully refunded with each refund's amount and date, and the applicant downloads
the current receipt from the tracking page with their token alone."""

from __future__ import annotations

import re

from tests.factories import auth
from tests.integration.test_pages_support import status_text
from tests.integration.test_payments_support import (
    create_payment,
    idem,
    paid_payment,
    token_of,
)

pytest_plugins = ["tests.integration.test_payments_support"]


async def refund(client, key: str, payment_id: str, amount: int) -> None:  # type: ignore[no-untyped-def]
    response = await client.post(
        f"/api/v1/payments/{payment_id}/refunds",
        json={"amount": amount, "reason": "申请人撤回申请"},
        headers=auth(key, idem("refund")),
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "succeeded", response.text  # the sandbox settles at once


def refund_rows(html: str) -> list[tuple[str, str, str]]:
    rows = re.findall(
        r'<tr class="refund (\w+)"><td>([\d\- :]+)</td><td>([^<]+)</td>'
        r'<td class="sum">([^<]+)</td>',
        html,
    )
    for _, date, _, _ in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", date), date
    return [(status, label, amount) for status, _, label, amount in rows]


async def test_a_partial_then_full_refund_shows_on_the_tracking_page(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    token = token_of(payment)
    html = (await app_client.get(f"/track/{token}")).text
    assert status_text(html) == "succeeded:缴费成功" and 'id="refunds"' not in html

    await refund(app_client, keys["psb"], payment["id"], 5000)
    html = (await app_client.get(f"/track/{token}")).text
    assert status_text(html) == "partially_refunded:缴费成功（已部分退款）"
    assert refund_rows(html) == [("succeeded", "已退款", "¥50.00")]
    assert '<dd id="refund-total">¥50.00</dd>' in html and '<dd id="net-paid">¥70.00</dd>' in html

    await refund(app_client, keys["psb"], payment["id"], 7000)
    html = (await app_client.get(f"/track/{token}")).text
    assert status_text(html) == "refunded:已全额退款"
    assert "缴费成功</span>" not in html
    assert refund_rows(html) == [
        ("succeeded", "已退款", "¥50.00"),
        ("succeeded", "已退款", "¥70.00"),
    ]
    assert '<dd id="refund-total">¥120.00</dd>' in html and '<dd id="net-paid">¥0.00</dd>' in html
    timeline = re.findall(r"已退款 ¥[\d.]+", html)
    assert timeline == ["已退款 ¥70.00", "已退款 ¥50.00"]  # newest first


async def test_the_pay_page_of_a_refunded_payment_says_so_in_english(app_client, keys):
    payment = await paid_payment(
        app_client, keys["psb"], applicant={"name": "李娜", "language": "en"}
    )
    await refund(app_client, keys["psb"], payment["id"], 12000)
    html = (await app_client.get(f"/pay/{token_of(payment)}")).text
    assert status_text(html) == "refunded:Fully refunded"
    assert refund_rows(html) == [("succeeded", "Refunded", "CNY 120.00")]
    assert '<dd id="net-paid">CNY 0.00</dd>' in html


async def test_the_applicant_downloads_the_current_receipt_with_the_token(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    token = token_of(payment)
    html = (await app_client.get(f"/track/{token}")).text
    assert f'href="/track/{token}/receipt.pdf"' in html
    response = await app_client.get(f"/track/{token}/receipt.pdf")  # no key
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    department = await app_client.get(
        f"/api/v1/payments/{payment['id']}/receipt.pdf", headers=auth(keys["psb"])
    )
    assert department.content == response.content  # one receipt, whoever asks


async def test_the_receipt_is_a_404_page_before_the_payment_succeeds(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    token = token_of(payment)
    assert 'id="receipt"' not in (await app_client.get(f"/track/{token}")).text
    response = await app_client.get(f"/track/{token}/receipt.pdf")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "电子票据在缴费成功后提供" in response.text
