"""Stripe PaymentIntents, through the official SDK's async client, and Stripe's
webhook events, verified and read into small typed updates.

Idempotency keys are derived from our own ids, so a retried call never creates a second
PaymentIntent or refund. The PaymentIntent carries `payment_id` and `department` in its
metadata so Stripe's own reports can be matched back to our books.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import stripe
from msgspec import UNSET, Meta, UnsetType

from ledger.service import STRIPE_CLEARING
from onetrip.errors import BadRequest, GatewayError, NotFound
from onetrip.jsonbody import check_nesting
from onetrip.settings import get_settings
from onetrip.stripe_client import stripe_client
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
#
# A signed body is Stripe's word, yet it is read as strictly as a client's: the fields we
# act on must have the types Stripe documents (an id is a string, an amount a whole
# number of minor units, metadata maps strings to strings), or the event is refused with
# a 400 before anything is looked up or written. Stripe retries a refused event, and a
# body Stripe really sent always has these types. Fields we do not read are ignored, and
# so is the object of an event type we do not act on.

#: seconds a signature's timestamp may be away from our clock, either way
SIGNATURE_TOLERANCE = 300

StripeId = Annotated[str, Meta(min_length=1, max_length=255)]
#: minor units; far above any fee, and within every integer column that stores it
StripeAmount = Annotated[int, Meta(ge=0, le=10**12)]
StripeCurrency = Annotated[str, Meta(pattern=r"^[A-Za-z]{3}\Z")]  # \Z: no final newline


class _PaymentError(msgspec.Struct):
    message: str | None = None
    code: str | None = None


class _PaymentIntent(msgspec.Struct):
    """The fields we read of a PaymentIntent (Stripe sends many more)."""

    id: StripeId
    amount: StripeAmount | None = None
    #: absent on some fakes (localstripe): then `amount` is what was taken
    amount_received: StripeAmount | UnsetType | None = UNSET
    currency: StripeCurrency | None = None
    metadata: dict[str, str] | None = None
    last_payment_error: _PaymentError | None = None


class _Refund(msgspec.Struct):
    id: StripeId
    status: str | None = None
    metadata: dict[str, str] | None = None


class _RefundList(msgspec.Struct):
    data: list[_Refund] = msgspec.field(default_factory=list)


class _Charge(msgspec.Struct):
    id: StripeId
    refunds: _RefundList | None = None


_Shape = TypeVar("_Shape", _PaymentIntent, _Refund, _Charge)


class _EventData(msgspec.Struct):
    #: read further by the event's type
    object: dict[str, Any]


class _Envelope(msgspec.Struct):
    id: StripeId
    type: Annotated[str, Meta(min_length=1, max_length=255)]
    data: _EventData


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


def read_event(raw: Any) -> StripeEvent:
    """Read a (verified, decoded) Stripe event; BadRequest if it does not have an
    event's shape (`malformed_json`) or an object we act on has fields of the wrong
    type (`malformed_event`)."""
    try:
        envelope = msgspec.convert(raw, _Envelope)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"the body is not a Stripe event: {exc}", code="malformed_json") from None
    kind, obj = envelope.type, envelope.data.object
    if kind.startswith("payment_intent."):
        intent = _read_object(obj, _PaymentIntent, kind)
        return StripeEvent(envelope.id, kind, intent=_intent_update(kind, intent))
    if kind in REFUND_EVENT_TYPES:
        if obj.get("object") == "refund":
            items = [_read_object(obj, _Refund, kind)]
        else:
            refunds = _read_object(obj, _Charge, kind).refunds
            items = refunds.data if refunds else []
        updates = tuple(
            RefundUpdate(
                refund_id=item.metadata["refund_id"],
                status=_REFUND_STATUSES[item.status],
                gateway_ref=item.id,
            )
            for item in items
            if (item.metadata or {}).get("refund_id") and item.status in _REFUND_STATUSES
        )
        return StripeEvent(envelope.id, kind, refunds=updates, about_refunds=True)
    return StripeEvent(envelope.id, kind)


def _read_object(obj: dict[str, Any], shape: type[_Shape], kind: str) -> _Shape:
    try:
        return msgspec.convert(obj, shape)
    except msgspec.ValidationError as exc:
        raise BadRequest(
            f"the {kind} event's object is not valid: {exc}", code="malformed_event"
        ) from None


def _intent_update(kind: str, intent: _PaymentIntent) -> IntentUpdate:
    move = _INTENT_MOVES.get(kind)
    received = intent.amount if intent.amount_received is UNSET else intent.amount_received
    if move == "succeed" and received is None:
        # never booked as a guess (the fee): Stripe always says what it took
        raise BadRequest(
            "a payment_intent.succeeded event must say what was received (amount_received)",
            code="malformed_event",
        )
    failure = None
    if move == "fail":
        error = intent.last_payment_error or _PaymentError()
        failure = error.message or error.code or "card declined"
    payment_id = (intent.metadata or {}).get("payment_id")
    return IntentUpdate(
        kind=kind,
        move=move,
        intent_id=intent.id,
        payment_id=payment_id or None,
        received=received,
        currency=(intent.currency or "").upper(),
        failure=failure,
    )


def _signature_timestamp(header: str) -> int:
    """The `t=` of a Stripe-Signature header that the SDK has verified (so it has one)."""
    for item in header.split(","):
        name, _, value = item.partition("=")
        if name == "t":
            return int(value)
    raise ValueError("no timestamp")  # unreachable after verification


def verified_event(payload: bytes, signature: str | None) -> StripeEvent:
    """Check a webhook's Stripe-Signature against our endpoint secret and read it.

    NotFound when Stripe webhooks are not configured; BadRequest for a missing or wrong
    signature, a timestamp more than five minutes old or ahead of our clock (the SDK
    checks only the past), a body nested too deeply, or one that is not an event."""
    secret = get_settings().stripe_webhook_secret
    if not secret:
        raise NotFound("Stripe webhooks are not configured", code="stripe_not_configured")
    if not signature:
        raise BadRequest("missing Stripe-Signature header", code="invalid_signature")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, secret, tolerance=SIGNATURE_TOLERANCE
        )
        ahead = _signature_timestamp(signature) - time.time()
    except stripe.SignatureVerificationError:
        raise BadRequest(
            "the Stripe-Signature does not match, or its timestamp is too old",
            code="invalid_signature",
        ) from None
    except ValueError:  # the body is not UTF-8
        raise BadRequest("the body is not a Stripe event", code="malformed_json") from None
    if ahead > SIGNATURE_TOLERANCE:
        # a signature made for later: refused as a stale one is, so it cannot be kept
        # and replayed once its time comes
        raise BadRequest(
            "the Stripe-Signature's timestamp is ahead of our clock", code="invalid_signature"
        )
    check_nesting(payload)
    try:
        raw = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        raise BadRequest("the body is not JSON", code="malformed_json") from None
    return read_event(raw)
