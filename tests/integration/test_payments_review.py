"""Money that does not add up (issue 6, items 1 and 2): a signed `payment_intent.succeeded`
whose money differs from the fee puts the payment in `needs_review`, books what was
received into suspense, issues no receipt, caps refunds at what was received, and an
admin's accept books it to the departments. Against localstripe, with Stripe's real
event (webhooks lost on purpose) adapted and signed as Stripe would sign it."""

from __future__ import annotations

import copy
import time
from typing import Any

from ledger.service import STRIPE_CLEARING, SUSPENSE
from tests import stripe_fixtures
from tests.factories import auth
from tests.stripe_fixtures import (
    BLACK_HOLE,
    CARD_OK,
    StripeStack,
    event_body,
    intent_in_page,
)

localstripe = stripe_fixtures.localstripe
stripe_stack = stripe_fixtures.stripe_stack

PSB_FEES = "dept:PSB:fees_payable"
NRB_FEES = "dept:NRB:fees_payable"
HCB_FEES = "dept:HCB:fees_payable"


async def taken_by_stripe(
    stack: StripeStack,
    reference: str,
    matter_code: str = "passport",
    key: str = "psb",
    **intent: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Pay for a new payment with a good card while its webhook is lost, then deliver
    Stripe's `payment_intent.succeeded` with `intent` changed (e.g. amount_received).
    Returns the payment (as its department sees it), the webhook's answer, and the
    event Stripe really sent (not delivered)."""
    await stack.point_webhooks(BLACK_HOLE)
    payment = await stack.create_payment(key, reference=reference, matter_code=matter_code)
    page, _ = await stack.open_pay_page(payment)
    intent_id, _ = intent_in_page(page)
    stack.pay_with_card(intent_id, CARD_OK)
    [event] = stack.events_of(intent_id, "payment_intent.succeeded")
    changed = copy.deepcopy(event)
    changed["id"] = f"evt_test_{time.monotonic_ns()}"
    changed["data"]["object"].update(intent)
    answer = await stack.post_webhook(event_body(changed))
    outcome = {"status": answer.status_code, **answer.json()}
    return await stack.payment(payment["id"]), outcome, event


async def books(stack: StripeStack) -> dict[tuple[str, str], int]:
    """Every account's balance by (code, currency)."""
    answer = await stack.client.get(
        "/api/v1/ledger/accounts", params={"limit": 200}, headers=auth(stack.keys["finance"])
    )
    assert answer.status_code == 200, answer.text
    return {(a["code"], a["currency"]): a["balance"] for a in answer.json()["data"]}


async def assert_balanced(stack: StripeStack) -> None:
    report = await stack.trial_balance()
    assert report["total_debits"] == report["total_credits"], report


async def refund(stack: StripeStack, payment_id: str, amount: int) -> Any:
    return await stack.client.post(
        f"/api/v1/payments/{payment_id}/refunds",
        json={"amount": amount, "reason": "money that does not match the fee"},
        headers=auth(stack.owner(payment_id), f"rf-{time.monotonic_ns()}"),
    )


async def accept(stack: StripeStack, payment_id: str, key: str | None = "accept") -> Any:
    headers = auth(stack.keys["admin"], None if key is None else f"{key}-{payment_id}")
    return await stack.client.post(f"/api/v1/payments/{payment_id}/accept", headers=headers)


async def test_an_underpaid_payment_waits_in_review_with_the_money_in_suspense(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    payment, answer, _ = await taken_by_stripe(stack, "CRJ-2026-000601", amount_received=5000)
    assert answer["status"] == 200 and answer["outcome"] == "applied", answer
    assert payment["status"] == "needs_review"
    assert payment["amount"] == 12000 and payment["amount_received"] == 5000
    assert payment["received_currency"] == "CNY" and payment["succeeded_at"] is None

    # Booked as received: Stripe's clearing holds 5000, suspense owes it, no department.
    ledger = await books(stack)
    assert ledger[(STRIPE_CLEARING, "CNY")] == 5000
    assert ledger[(SUSPENSE, "CNY")] == -5000
    assert ledger.get((PSB_FEES, "CNY"), 0) == 0
    await assert_balanced(stack)

    # payment.needs_review, never payment.succeeded (no licence, no receipt job).
    timeline = await stack.events(payment["id"])
    types = [e["type"] for e in timeline]
    assert types == ["payment.created", "payment.started", "payment.needs_review"]
    assert timeline[-1]["data"]["amount_mismatch"] == {
        "received": 5000,
        "expected": 12000,
        "received_currency": "CNY",
        "expected_currency": "CNY",
    }

    # No receipt for the full fee: neither on request nor by the receipt job's effect.
    receipt = await stack.client.get(
        f"/api/v1/payments/{payment['id']}/receipt.pdf", headers=auth(stack.keys["psb"])
    )
    assert receipt.status_code == 409, receipt.text
    assert receipt.json()["code"] == "payment_not_succeeded"
    from payments import service

    assert await service.render_receipt(payment["id"]) is False

    # Visible to the department and to finance by its status.
    for key in ("psb", "finance"):
        listed = await stack.client.get(
            "/api/v1/payments", params={"status": "needs_review"}, headers=auth(stack.keys[key])
        )
        assert listed.status_code == 200, listed.text
        assert [p["id"] for p in listed.json()["data"]] == [payment["id"]], key

    # The applicant is told it is being checked, and is never offered to pay again.
    token = payment["payment_url"].rsplit("/", 1)[1]
    pay_page = await stack.client.get(f"/pay/{token}", params={"lang": "en"})
    assert pay_page.status_code == 200, pay_page.text
    assert 'id="review"' in pay_page.text and "payment-form" not in pay_page.text
    track_page = await stack.client.get(f"/track/{token}", params={"lang": "en"})
    assert track_page.status_code == 200 and "differs from the fee" in track_page.text

    # It cannot be cancelled away; a refund is capped at what was received.
    cancel = await stack.client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(stack.keys["psb"])
    )
    assert cancel.status_code == 409 and cancel.json()["code"] == "payment_needs_review"
    too_much = await refund(stack, payment["id"], 12000)
    assert too_much.status_code == 409, too_much.text
    assert too_much.json()["code"] == "refund_exceeds_available"
    assert too_much.json()["available"] == 5000

    # The department gives back what was received: suspense and clearing go back to 0.
    back = await refund(stack, payment["id"], 5000)
    assert back.status_code == 201 and back.json()["status"] == "succeeded", back.text
    assert back.json()["amount"] == 5000
    after = await stack.payment(payment["id"])
    assert after["status"] == "needs_review"
    assert after["refund_status"] == "full" and after["amount_refunded"] == 5000
    ledger = await books(stack)
    assert ledger[(STRIPE_CLEARING, "CNY")] == 0 and ledger[(SUSPENSE, "CNY")] == 0
    assert ledger.get((PSB_FEES, "CNY"), 0) == 0
    await assert_balanced(stack)

    # Nothing is left to accept.
    late = await accept(stack, payment["id"])
    assert late.status_code == 409 and late.json()["code"] == "payment_nothing_to_accept"


async def test_an_admin_accepts_what_was_received_and_it_is_booked_to_the_department(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    payment, _, genuine = await taken_by_stripe(stack, "CRJ-2026-000602", amount_received=5000)
    assert payment["status"] == "needs_review"
    before = await books(stack)

    # Stripe's word that the fee was taken (a late copy, a poll) cannot end the review.
    late = await stack.post_webhook(event_body(genuine))
    assert late.status_code == 200 and late.json()["outcome"] == "ignored_out_of_order"
    assert (await stack.payment(payment["id"]))["status"] == "needs_review"
    assert await books(stack) == before

    # The contract's rules for a POST that moves money: admin only, Idempotency-Key.
    no_key = await accept(stack, payment["id"], key=None)
    assert no_key.status_code == 400 and no_key.json()["code"] == "idempotency_key_required"
    by_department = await stack.client.post(
        f"/api/v1/payments/{payment['id']}/accept", headers=auth(stack.keys["psb"], "a-1")
    )
    assert by_department.status_code == 403, by_department.text

    accepted = await accept(stack, payment["id"])
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["status"] == "succeeded" and body["amount_received"] == 5000
    assert body["succeeded_at"] is not None
    assert "payment_url" not in body and "tracking_url" not in body  # an admin's view
    replay = await accept(stack, payment["id"])
    assert replay.status_code == 200 and replay.json() == body
    again = await accept(stack, payment["id"], key="another")
    assert again.status_code == 409 and again.json()["code"] == "payment_not_in_review"

    ledger = await books(stack)
    assert ledger[(STRIPE_CLEARING, "CNY")] == 5000
    assert ledger[(SUSPENSE, "CNY")] == 0
    assert ledger[(PSB_FEES, "CNY")] == -5000
    await assert_balanced(stack)
    timeline = await stack.events(payment["id"])
    assert [e["type"] for e in timeline][-2:] == ["payment.needs_review", "payment.succeeded"]
    assert timeline[-1]["data"]["amount_mismatch"]["received"] == 5000
    assert timeline[-1]["data"]["source"] == "accepted_in_review"

    # The receipt is for what was paid, and refunds stay capped at it.
    receipt = await stack.client.get(
        f"/api/v1/payments/{payment['id']}/receipt.pdf", headers=auth(stack.keys["psb"])
    )
    assert receipt.status_code == 200, receipt.text
    from tests.unit.test_receipt import page_text

    text = page_text(receipt.content)
    assert "50.00" in text and "Amount paid" in text and "伍拾元整" in text
    too_much = await refund(stack, payment["id"], 5001)
    assert too_much.status_code == 409 and too_much.json()["available"] == 5000
    part = await refund(stack, payment["id"], 2000)
    assert part.status_code == 201 and part.json()["status"] == "succeeded", part.text
    ledger = await books(stack)
    assert ledger[(PSB_FEES, "CNY")] == -3000 and ledger[(STRIPE_CLEARING, "CNY")] == 3000
    assert (await stack.payment(payment["id"]))["refund_status"] == "partial"
    await assert_balanced(stack)


async def test_an_overpaid_joint_payment_refunds_the_excess_then_books_the_fee_by_share(
    stripe_stack: StripeStack,
) -> None:
    """50001 fen due, 60001 taken: the department (NRB) gives back the 10000 extra while
    it is in review, the admin accepts, and the joint fee reaches NRB and HCB exactly as
    an ordinary payment's would (60 % / 40 %, fen for fen)."""
    stack = stripe_stack
    payment, answer, _ = await taken_by_stripe(
        stack,
        "BDC-2026-000603",
        matter_code="real-estate-transfer",
        key="nrb",
        amount_received=60001,
    )
    assert answer["outcome"] == "applied"
    assert payment["status"] == "needs_review" and payment["amount_received"] == 60001
    ledger = await books(stack)
    assert ledger[(STRIPE_CLEARING, "CNY")] == 60001 and ledger[(SUSPENSE, "CNY")] == -60001

    excess = await refund(stack, payment["id"], 10000)
    assert excess.status_code == 201 and excess.json()["status"] == "succeeded", excess.text
    assert (await books(stack))[(SUSPENSE, "CNY")] == -50001

    accepted = await accept(stack, payment["id"])
    assert accepted.status_code == 200, accepted.text
    ledger = await books(stack)
    assert ledger[(SUSPENSE, "CNY")] == 0
    assert ledger[(STRIPE_CLEARING, "CNY")] == 50001
    assert ledger[(NRB_FEES, "CNY")] + ledger[(HCB_FEES, "CNY")] == -50001
    assert abs(ledger[(NRB_FEES, "CNY")] - (-30001)) <= 1
    await assert_balanced(stack)

    # What is left to refund is what was received minus what was given back.
    rest = await refund(stack, payment["id"], 50002)
    assert rest.status_code == 409 and rest.json()["available"] == 50001
    everything = await refund(stack, payment["id"], 50001)
    assert everything.status_code == 201, everything.text
    ledger = await books(stack)
    assert ledger[(NRB_FEES, "CNY")] == 0 and ledger[(HCB_FEES, "CNY")] == 0
    assert ledger[(STRIPE_CLEARING, "CNY")] == 0 and ledger[(SUSPENSE, "CNY")] == 0
    assert (await stack.payment(payment["id"]))["refund_status"] == "full"


async def test_money_in_another_currency_is_recorded_in_review_and_never_booked_to_cny(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    payment, answer, _ = await taken_by_stripe(
        stack, "CRJ-2026-000604", currency="usd", amount_received=1700
    )
    assert answer["outcome"] == "applied", answer
    assert payment["status"] == "needs_review"
    assert payment["amount_received"] == 1700 and payment["received_currency"] == "USD"
    ledger = await books(stack)
    # Shown as it came, in its own currency; no CNY account moved.
    assert ledger[(STRIPE_CLEARING, "USD")] == 1700
    assert ledger[(SUSPENSE, "USD")] == -1700
    assert all(balance == 0 for (_, currency), balance in ledger.items() if currency == "CNY")
    await assert_balanced(stack)
    [review] = [e for e in await stack.events(payment["id"]) if e["type"].endswith("review")]
    assert review["data"]["amount_mismatch"]["received_currency"] == "USD"

    refused = await accept(stack, payment["id"])
    assert refused.status_code == 409 and refused.json()["code"] == "payment_currency_mismatch"
    too_much = await refund(stack, payment["id"], 1701)
    assert too_much.status_code == 409 and too_much.json()["available"] == 1700
    back = await refund(stack, payment["id"], 1700)
    assert back.status_code == 201, back.text
    assert back.json()["currency"] == "USD"
    ledger = await books(stack)
    assert ledger[(STRIPE_CLEARING, "USD")] == 0 and ledger[(SUSPENSE, "USD")] == 0


async def test_a_missing_or_negative_amount_received_is_refused_and_changes_nothing(
    stripe_stack: StripeStack,
) -> None:
    stack = stripe_stack
    for number, amount in enumerate((-12000, None)):
        payment, answer, _ = await taken_by_stripe(
            stack, f"CRJ-2026-00061{number}", amount_received=amount
        )
        assert answer["status"] == 400, answer
        assert payment["status"] == "started" and payment["amount_received"] is None
        assert "payment.succeeded" not in [e["type"] for e in await stack.events(payment["id"])]
    assert await stack.ledger_transaction_count() == 0


async def test_an_ordinary_success_records_the_fee_as_received(stripe_stack: StripeStack) -> None:
    stack = stripe_stack
    payment, answer, _ = await taken_by_stripe(stack, "CRJ-2026-000620")
    assert answer["outcome"] == "applied"
    assert payment["status"] == "succeeded"
    assert payment["amount_received"] == 12000 and payment["received_currency"] == "CNY"
    ledger = await books(stack)
    assert ledger[(PSB_FEES, "CNY")] == -12000 and ledger[(SUSPENSE, "CNY")] == 0


async def test_a_refund_given_back_in_review_that_fails_after_acceptance_reaches_the_department(
    stripe_stack: StripeStack,
) -> None:
    """2000 of the 5000 received are refunded while in review; the admin accepts (3000 to
    PSB); then the applicant's bank returns the 2000. The money back belongs to the
    department now, not to suspense."""
    stack = stripe_stack
    payment, _, _ = await taken_by_stripe(stack, "CRJ-2026-000630", amount_received=5000)
    given = await refund(stack, payment["id"], 2000)
    assert given.status_code == 201 and given.json()["status"] == "succeeded", given.text
    assert (await accept(stack, payment["id"])).status_code == 200
    assert (await books(stack))[(PSB_FEES, "CNY")] == -3000

    event = {
        "id": f"evt_refund_failed_{time.monotonic_ns()}",
        "object": "event",
        "type": "refund.failed",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": f"re_test_{time.monotonic_ns()}",
                "object": "refund",
                "status": "failed",
                "amount": 2000,
                "currency": "cny",
                "metadata": {"refund_id": given.json()["id"], "payment_id": payment["id"]},
            }
        },
    }
    answer = await stack.post_webhook(event_body(event))
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text
    ledger = await books(stack)
    assert ledger[(PSB_FEES, "CNY")] == -5000
    assert ledger[(SUSPENSE, "CNY")] == 0 and ledger[(STRIPE_CLEARING, "CNY")] == 5000
    current = await stack.payment(payment["id"])
    assert current["amount_refunded"] == 0 and current["refund_status"] == "none"
    await assert_balanced(stack)
