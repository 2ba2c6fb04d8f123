"""The counter gateway: a fee taken at a service window, in cash or by POS terminal.

A department's own system records it; the money sits in the counter-cash account until
it is banked. Refunds at the counter are handed back in cash, so they succeed at once.
"""

from __future__ import annotations

from ledger.service import COUNTER_CASH
from payments.gateways.base import Outcome, RefundResult, Started
from payments.models import Payment, Refund


class CounterGateway:
    name = "counter"
    clearing_account = COUNTER_CASH
    cancellable = False
    pollable = False
    needs_client_secret = False

    async def start(self, payment: Payment) -> Started:
        return Started(gateway_ref=None)

    async def outcome(self, payment: Payment) -> Outcome:
        return "pending"

    async def cancel(self, payment: Payment) -> Outcome:
        return "cancelled"

    async def refund(self, payment: Payment, refund: Refund) -> RefundResult:
        return RefundResult(status="succeeded", gateway_ref=f"counter_{refund.id}")
