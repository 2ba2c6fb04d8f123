"""Stripe PaymentIntents, through the official SDK's async client.

Idempotency keys are derived from our own ids, so a retried call never creates a second
PaymentIntent or refund. The PaymentIntent carries `payment_id` and `department` in its
metadata so Stripe's own reports can be matched back to our books.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import stripe

from ledger.service import STRIPE_CLEARING
from onetrip.errors import GatewayError
from onetrip.settings import get_settings
from payments.gateways.base import Outcome, RefundResult, Started
from payments.models import Payment, Refund

log = logging.getLogger(__name__)

_PI_OUTCOMES: dict[str, Outcome] = {
    "succeeded": "succeeded",
    "canceled": "cancelled",
    "requires_payment_method": "pending",
    "requires_confirmation": "pending",
    "requires_action": "pending",
    "processing": "pending",
    "requires_capture": "pending",
}


def _client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    kwargs: dict[str, Any] = {"http_client": stripe.HTTPXClient(), "max_network_retries": 2}
    if api_base:
        kwargs["base_addresses"] = {"api": api_base}
    return stripe.StripeClient(api_key, **kwargs)


# One client per event loop: the SDK's HTTPXClient keeps an httpx.AsyncClient whose pooled
# connections belong to the loop that opened them, and the API server's loop and the
# Dramatiq worker's loop thread both call Stripe. A pooled connection used from another
# loop fails with a RuntimeError (an APIConnectionError from the SDK) that only the SDK's
# retries happened to paper over.
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str | None], stripe.StripeClient]
] = weakref.WeakKeyDictionary()


def forget_clients() -> None:
    """Drop the cached clients (tests point STRIPE_API_BASE elsewhere)."""
    _clients.clear()


def stripe_client() -> stripe.StripeClient:
    settings = get_settings()
    if not settings.stripe_api_key:
        raise GatewayError("Stripe is not configured", code="gateway_not_configured")
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (settings.stripe_api_key, settings.stripe_api_base)
    client = per_loop.get(key)
    if client is None:
        client = per_loop[key] = _client(*key)
    return client


def _gateway_error(exc: stripe.StripeError) -> GatewayError:
    log.warning("stripe call failed: %s", exc)
    message = getattr(exc, "user_message", None) or str(exc) or "Stripe call failed"
    return GatewayError(f"Stripe: {message}", code="stripe_error")


class StripeGateway:
    name = "stripe"
    clearing_account = STRIPE_CLEARING

    async def start(self, payment: Payment) -> Started:
        client = stripe_client()
        try:
            intent = await client.v1.payment_intents.create_async(
                params={
                    "amount": payment.amount,
                    "currency": payment.currency.lower(),
                    "payment_method_types": ["card"],
                    "metadata": {
                        "payment_id": payment.id,
                        "department": payment.department,
                        "matter_code": payment.matter_code,
                        "reference": payment.reference,
                    },
                },
                options={"idempotency_key": f"onetrip-pi-{payment.id}"},
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        return Started(gateway_ref=intent.id, client_secret=intent.client_secret)

    async def _intent(self, payment: Payment) -> Any:
        if not payment.gateway_ref:
            return None
        try:
            return await stripe_client().v1.payment_intents.retrieve_async(payment.gateway_ref)
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc

    async def outcome(self, payment: Payment) -> Outcome:
        intent = await self._intent(payment)
        if intent is None:
            return "pending"
        if intent.status == "requires_payment_method" and getattr(
            intent, "last_payment_error", None
        ):
            return "failed"
        return _PI_OUTCOMES.get(intent.status, "pending")

    async def cancel(self, payment: Payment) -> Outcome:
        intent = await self._intent(payment)
        if intent is None:
            return "cancelled"
        if intent.status in ("succeeded", "canceled"):
            return _PI_OUTCOMES[intent.status]
        try:
            intent = await stripe_client().v1.payment_intents.cancel_async(intent.id)
        except stripe.StripeError as exc:
            # It may have succeeded between our two calls: ask again.
            log.info("cancel of %s refused: %s", payment.id, exc)
            return await self.outcome(payment)
        return _PI_OUTCOMES.get(intent.status, "pending")

    async def refund(self, payment: Payment, refund: Refund) -> RefundResult:
        try:
            if refund.gateway_ref:
                # Stripe has this refund already: ask about it. Creating it again would
                # make a second refund once Stripe forgets the idempotency key (24 h).
                result = await stripe_client().v1.refunds.retrieve_async(refund.gateway_ref)
            else:
                result = await stripe_client().v1.refunds.create_async(
                    params={
                        "payment_intent": payment.gateway_ref,
                        "amount": refund.amount,
                        "metadata": {"refund_id": refund.id, "payment_id": payment.id},
                    },
                    options={"idempotency_key": f"onetrip-refund-{refund.id}"},
                )
        except stripe.InvalidRequestError as exc:
            # Stripe refused it for good (e.g. more than is left on the charge).
            return RefundResult(status="failed", failure_reason=str(exc.user_message or exc))
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        status = {"succeeded": "succeeded", "failed": "failed", "canceled": "failed"}.get(
            result.status, "pending"
        )
        return RefundResult(
            status=status,  # type: ignore[arg-type]
            gateway_ref=result.id,
            failure_reason=getattr(result, "failure_reason", None),
        )
