"""The sandbox gateway: test cards on our own hosted page, no money moves.

It is the embedded default, so the whole flow can be tried with no Stripe account.
Money "taken" here is booked to its own clearing account, never mixed with Stripe's.
"""

from __future__ import annotations

from ledger.service import SANDBOX_CLEARING
from payments.gateways.base import Outcome, RefundResult, Started
from payments.models import Payment, Refund

#: card number → (outcome, label in English, label in Chinese); shown on the page
TEST_CARDS = {
    "4242424242424242": ("succeeded", "Visa — succeeds", "Visa — 支付成功"),
    "5555555555554444": ("succeeded", "Mastercard — succeeds", "Mastercard — 支付成功"),
    "6200000000000005": ("succeeded", "UnionPay — succeeds", "银联 — 支付成功"),
    "4000000000000002": ("failed", "Visa — declined", "Visa — 被拒绝"),
    "4000000000009995": ("failed", "Visa — insufficient funds", "Visa — 余额不足"),
}


def card_outcome(card_number: str) -> tuple[str, str] | None:
    """(outcome, English label) for a test card, or None for any other number."""
    digits = "".join(ch for ch in card_number if ch.isdigit())
    card = TEST_CARDS.get(digits)
    return (card[0], card[1]) if card else None


class SandboxGateway:
    name = "sandbox"
    clearing_account = SANDBOX_CLEARING
    cancellable = False
    pollable = False
    needs_client_secret = False

    async def start(self, payment: Payment) -> Started:
        return Started(gateway_ref=f"sandbox_{payment.id}")

    async def outcome(self, payment: Payment) -> Outcome:
        # The sandbox page applies its outcome synchronously; nothing can be lost.
        return "pending"

    async def cancel(self, payment: Payment) -> Outcome:
        return "cancelled"

    async def refund(self, payment: Payment, refund: Refund) -> RefundResult:
        return RefundResult(status="succeeded", gateway_ref=f"sandbox_{refund.id}")
