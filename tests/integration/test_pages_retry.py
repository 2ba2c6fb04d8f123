"""After a decline the applicant tries another card on the same payment until it
expires (issue 7 item 8), and the department sees every attempt in the events; the
reason is told in the applicant's words (item 7), never raw English on a Chinese page."""

from __future__ import annotations

from datetime import timedelta

import pytest
import stripe

from onetrip.clock import utcnow
from tests import stripe_fixtures
from tests.factories import auth
from tests.integration.test_pages_support import status_text
from tests.integration.test_payments_support import create_payment, execute, token_of
from tests.stripe_fixtures import CARD_DECLINED, CARD_OK, StripeStack, intent_in_page

pytest_plugins = ["tests.integration.test_payments_support"]

localstripe = stripe_fixtures.localstripe
stripe_stack = stripe_fixtures.stripe_stack

DECLINED, NO_FUNDS, OK = "4000000000000002", "4000000000009995", "4242424242424242"


async def pay(client, token: str, card: str) -> str:  # type: ignore[no-untyped-def]
    """Submit a sandbox card; the page the applicant lands on."""
    answer = await client.post(f"/pay/{token}/sandbox", data={"card_number": card})
    assert answer.status_code == 200, answer.text  # followed the 303 back to the page
    return str(answer.text)


async def retry(client, token: str, lang: str = "") -> str:  # type: ignore[no-untyped-def]
    answer = await client.post(f"/pay/{token}/retry{lang}")
    assert answer.status_code == 200, answer.text
    return str(answer.text)


async def event_types(client, key: str, payment_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    answer = await client.get(f"/api/v1/payments/{payment_id}/events", headers=auth(key))
    assert answer.status_code == 200, answer.text
    return [e["type"] for e in answer.json()["data"]]


async def test_a_declined_card_can_be_followed_by_another_until_one_succeeds(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    token = token_of(payment)
    assert (await app_client.get(f"/pay/{token}")).status_code == 200

    html = await pay(app_client, token, DECLINED)
    assert status_text(html) == "failed:支付未成功"
    assert "银行卡被发卡银行拒绝" in html and "declined" not in html
    assert '<button type="submit" id="retry">换一张卡重试</button>' in html
    assert 'id="card_number"' not in html

    html = await retry(app_client, token)
    assert status_text(html) == "started:待支付" and 'id="card_number"' in html
    html = await pay(app_client, token, NO_FUNDS)
    assert "卡内余额不足" in html and "insufficient" not in html

    await retry(app_client, token)
    html = await pay(app_client, token, OK)
    assert status_text(html) == "succeeded:缴费成功"

    assert await event_types(app_client, keys["psb"], payment["id"]) == [
        "payment.created",
        "payment.started",
        "payment.failed",
        "payment.started",
        "payment.failed",
        "payment.started",
        "payment.succeeded",
    ]
    current = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb"]))
    assert current.json()["status"] == "succeeded" and current.json()["failure_reason"] is None
    # a retry of a paid payment changes nothing
    assert status_text(await retry(app_client, token)) == "succeeded:缴费成功"
    assert (await event_types(app_client, keys["psb"], payment["id"]))[-1] == "payment.succeeded"


async def test_the_decline_is_told_in_english_to_an_english_applicant(app_client, keys):
    payment = await create_payment(
        app_client, keys["psb"], applicant={"name": "李娜", "language": "en"}
    )
    token = token_of(payment)
    await app_client.get(f"/pay/{token}")
    html = await pay(app_client, token, DECLINED)
    assert "Your card was declined by your bank. Try another card" in html
    assert ">Try another card</button>" in html


async def test_a_declined_payment_past_its_time_cannot_be_retried_and_expires(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    token = token_of(payment)
    await app_client.get(f"/pay/{token}")
    await pay(app_client, token, DECLINED)
    await execute(
        "UPDATE payments SET expires_at = :at WHERE id = :id",
        at=utcnow() - timedelta(minutes=1),
        id=payment["id"],
    )
    html = (await app_client.get(f"/pay/{token}")).text
    assert 'id="retry"' not in html  # no offer once the time is up
    html = await retry(app_client, token)  # a stale form posted anyway
    assert status_text(html) == "expired:该缴费已过期，请联系办理部门重新发起"
    assert "已超过缴费期限" in html
    assert (await event_types(app_client, keys["psb"], payment["id"]))[-1] == "payment.expired"


async def test_a_declined_payment_the_department_cancelled_is_not_offered_again(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    token = token_of(payment)
    await app_client.get(f"/pay/{token}")
    await pay(app_client, token, DECLINED)
    cancelled = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"], "cancel-retry-1")
    )
    assert cancelled.status_code == 200, cancelled.text
    html = await retry(app_client, token)
    assert status_text(html) == "cancelled:该缴费已取消"
    assert 'id="retry"' not in html and "办理部门已取消此次缴费" in html


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_declined_stripe_card_then_a_good_one_on_the_same_payment_intent(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    payment = await stack.create_payment(reference="CRJ-2026-000801")
    token = token_of(payment)
    page, _ = await stack.open_pay_page(payment)
    intent_id, secret = intent_in_page(page)

    with pytest.raises(stripe.CardError):
        stack.pay_with_card(intent_id, CARD_DECLINED)
    await stack.wait_for_status(payment["id"], "failed")
    html = (await stack.client.get(f"/pay/{token}")).text
    assert "银行卡被发卡银行拒绝" in html and "Your card was declined" not in html

    retried = await stack.client.post(f"/pay/{token}/retry", follow_redirects=True)
    assert status_text(retried.text) == "started:待支付"
    assert intent_in_page(retried.text) == (intent_id, secret)  # the same PaymentIntent
    assert stack.pay_with_card(intent_id, CARD_OK).status == "succeeded"
    paid = await stack.wait_for_status(payment["id"], "succeeded")
    assert paid["gateway"] == "stripe"

    types = [e["type"] for e in await stack.events(payment["id"])]
    assert types == [
        "payment.created",
        "payment.started",
        "payment.failed",
        "payment.started",
        "payment.succeeded",
    ]
    assert await stack.ledger_transaction_count() == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_decline_stripe_js_reported_waits_for_the_webhook_then_explains_it(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    payment = await stack.create_payment(reference="CRJ-2026-000802")
    token = token_of(payment)
    page, _ = await stack.open_pay_page(payment)
    intent_id, _ = intent_in_page(page)

    # Stripe.js said "declined" before our webhook came: the page waits and reloads
    waiting = (await stack.client.get(f"/pay/{token}?declined=1")).text
    assert f'content="2;url=/pay/{token}?declined=2"' in waiting
    assert 'id="confirming"' in waiting and 'id="card-element"' not in waiting

    with pytest.raises(stripe.CardError):
        stack.pay_with_card(intent_id, CARD_DECLINED)
    await stack.wait_for_status(payment["id"], "failed")
    html = (await stack.client.get(f"/pay/{token}?declined=2")).text
    assert 'http-equiv="refresh"' not in html
    assert "银行卡被发卡银行拒绝" in html and 'id="retry"' in html


async def test_the_tracking_page_of_a_declined_payment_explains_it_and_links_to_a_retry(
    app_client, keys
):
    payment = await create_payment(app_client, keys["psb"])
    token = token_of(payment)
    await app_client.get(f"/pay/{token}")
    await pay(app_client, token, NO_FUNDS)
    html = (await app_client.get(f"/track/{token}")).text
    assert status_text(html) == "failed:支付未成功"
    assert "卡内余额不足" in html and "insufficient" not in html
    assert f'<a class="button" id="retry" href="/pay/{token}">换一张卡重试</a>' in html
