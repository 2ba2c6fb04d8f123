"""Review: a pending Stripe refund that is asked about again must never be created twice.

`retry_pending_refunds` calls the gateway every two minutes for as long as a refund is
pending. Stripe keeps an idempotency key for 24 hours only, so creating the refund again
with the same key after that would create a second refund and pay the applicant twice.
Once Stripe has given us the refund's id, we must ask about that refund instead.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from payments.gateways import stripe as stripe_gateway
from payments.models import Payment, Refund


class _Refunds:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.retrieved: list[str] = []

    async def create_async(self, params: dict[str, Any], options: dict[str, Any]) -> Any:
        self.created.append(params)
        return SimpleNamespace(id=f"re_{len(self.created)}", status="pending", failure_reason=None)

    async def retrieve_async(self, refund_id: str) -> Any:
        self.retrieved.append(refund_id)
        return SimpleNamespace(id=refund_id, status="succeeded", failure_reason=None)


def test_a_refund_stripe_already_knows_is_looked_up_not_created_again(monkeypatch):
    refunds = _Refunds()
    client = SimpleNamespace(v1=SimpleNamespace(refunds=refunds))
    monkeypatch.setattr(stripe_gateway, "stripe_client", lambda: client)
    payment = Payment(id="pay_01", gateway="stripe", gateway_ref="pi_3Pabc", amount=12000)
    refund = Refund(id="rf_01", payment_id="pay_01", amount=5000, currency="CNY", status="pending")
    gateway = stripe_gateway.StripeGateway()

    first = asyncio.run(gateway.refund(payment, refund))
    assert first.status == "pending" and first.gateway_ref == "re_1"
    refund.gateway_ref = first.gateway_ref  # what settle_refund records for a pending one

    later = asyncio.run(gateway.refund(payment, refund))  # the retry job, a day later
    assert len(refunds.created) == 1, "the refund was created at Stripe twice"
    assert refunds.retrieved == ["re_1"]
    assert later.status == "succeeded" and later.gateway_ref == "re_1"
