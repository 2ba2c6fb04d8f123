"""Stripe PaymentIntents, through the official SDK's async client, and Stripe's
webhook events, verified and read into small typed updates.

Idempotency keys are derived from our own ids, so a retried call never creates a second
PaymentIntent or refund. The PaymentIntent carries `payment_id` and `department` in its
metadata so Stripe's own reports can be matched back to our books.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, Literal

import msgspec
import stripe
from msgspec import UNSET, UnsetType

from ledger.service import STRIPE_CLEARING
from onetrip.errors import BadRequest, GatewayError, NotFound
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
    cancellable = True
    pollable = True
    needs_client_secret = True

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


# --- webhooks: verifying and reading Stripe's events --------------------------------


class _StripeObject(msgspec.Struct):
    """The fields we read of an event's `data.object` (Stripe sends many more)."""

    id: str | None = None
    object: str | None = None
    status: str | None = None
    metadata: dict[str, Any] | None = None
    amount: int | None = None
    amount_received: int | UnsetType | None = UNSET
    currency: str | None = None
    last_payment_error: dict[str, Any] | None = None
    refunds: _StripeList | None = None


class _StripeList(msgspec.Struct):
    data: list[_StripeObject] = msgspec.field(default_factory=list)


class _EventData(msgspec.Struct):
    object: _StripeObject | None = None


class _Envelope(msgspec.Struct):
    id: str
    type: str = ""
    data: _EventData | None = None


class IntentUpdate(msgspec.Struct, frozen=True):
    """What a `payment_intent.*` event says became of one of our PaymentIntents."""

    kind: str
    #: the payment machine's event it means; None for kinds we do not act on
    move: Literal["succeed", "fail", "cancel"] | None
    intent_id: str | None
    #: ours, from the PaymentIntent's metadata (None: look it up by intent id)
    payment_id: str | None
    #: what Stripe took (on success), and in which currency (upper case)
    received: int | None
    currency: str
    #: why the card was declined (on failure)
    failure: str | None


class RefundUpdate(msgspec.Struct, frozen=True):
    """A refund of ours that Stripe settled (succeeded, or failed / was cancelled)."""

    refund_id: str
    status: Literal["succeeded", "failed"]
    gateway_ref: str | None


class StripeEvent(msgspec.Struct, frozen=True):
    """A verified Stripe event, read into what the payments service acts on."""

    id: str
    type: str
    intent: IntentUpdate | None = None
    #: refunds it settles (a charge event may carry several)
    refunds: tuple[RefundUpdate, ...] = ()
    #: a refund event (even one that names none of ours)
    about_refunds: bool = False


REFUND_EVENT_TYPES = frozenset(
    {
        "charge.refunded",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
    }
)
_INTENT_MOVES: dict[str, Literal["succeed", "fail", "cancel"]] = {
    "payment_intent.succeeded": "succeed",
    "payment_intent.payment_failed": "fail",
    "payment_intent.canceled": "cancel",
}
_REFUND_STATUSES: dict[str, Literal["succeeded", "failed"]] = {
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "failed",
}


def read_event(raw: dict[str, Any]) -> StripeEvent:
    """Read a (verified) Stripe event; BadRequest if it does not have an event's shape."""
    try:
        envelope = msgspec.convert(raw, _Envelope, strict=False)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"the body is not a Stripe event: {exc}", code="malformed_json") from None
    obj = (envelope.data.object if envelope.data else None) or _StripeObject()
    if envelope.type.startswith("payment_intent."):
        return StripeEvent(envelope.id, envelope.type, intent=_intent_update(envelope.type, obj))
    if envelope.type in REFUND_EVENT_TYPES:
        items = [obj] if obj.object == "refund" else (obj.refunds.data if obj.refunds else [])
        refunds = tuple(
            RefundUpdate(
                refund_id=str(item.metadata["refund_id"]),
                status=_REFUND_STATUSES[item.status],
                gateway_ref=item.id,
            )
            for item in items
            if (item.metadata or {}).get("refund_id") and item.status in _REFUND_STATUSES
        )
        return StripeEvent(envelope.id, envelope.type, refunds=refunds, about_refunds=True)
    return StripeEvent(envelope.id, envelope.type)


def _intent_update(kind: str, intent: _StripeObject) -> IntentUpdate:
    move = _INTENT_MOVES.get(kind)
    received = intent.amount if intent.amount_received is UNSET else intent.amount_received
    failure = None
    if move == "fail":
        error = intent.last_payment_error or {}
        failure = error.get("message") or error.get("code") or "card declined"
    payment_id = (intent.metadata or {}).get("payment_id")
    return IntentUpdate(
        kind=kind,
        move=move,
        intent_id=intent.id,
        payment_id=str(payment_id) if payment_id else None,
        received=received,  # type: ignore[arg-type]
        currency=(intent.currency or "").upper(),
        failure=failure,
    )


def verified_event(payload: bytes, signature: str | None) -> StripeEvent:
    """Check a webhook's Stripe-Signature against our endpoint secret and read it.

    NotFound when Stripe webhooks are not configured; BadRequest for a missing or wrong
    signature, a timestamp older than five minutes, or a body that is not an event."""
    secret = get_settings().stripe_webhook_secret
    if not secret:
        raise NotFound("Stripe webhooks are not configured", code="stripe_not_configured")
    if not signature:
        raise BadRequest("missing Stripe-Signature header", code="invalid_signature")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)
    except stripe.SignatureVerificationError:
        raise BadRequest(
            "the Stripe-Signature does not match, or its timestamp is too old",
            code="invalid_signature",
        ) from None
    except ValueError:
        raise BadRequest("the body is not a Stripe event", code="malformed_json") from None
    return read_event(event.to_dict())
