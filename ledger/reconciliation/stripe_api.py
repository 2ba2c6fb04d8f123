"""Stripe balance transactions through the Stripe API, every page of them, lazily.

The client is the kernel's (`onetrip.stripe_client`, one per event loop, shared with the
payments gateway). `auto_paging_iter()` fetches one page at a time, so memory holds one
page however many transactions there are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import stripe

from ledger.reconciliation.errors import bad_line
from ledger.reconciliation.lines import Line, check_currency, text_or_none
from onetrip.errors import GatewayError
from onetrip.stripe_client import stripe_client

PAGE_SIZE = 100
EXPAND = ["data.source.payment_intent"]


def _value(obj: Any, name: str) -> Any:
    try:
        return obj[name]
    except (KeyError, TypeError):
        return None


def _id_of(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _value(value, "id")


def line_of(number: int, txn: Any, currency: str | None) -> Line:
    """A balance transaction object (dict-like) as a line; `number` is its position."""
    txn_id = _value(txn, "id")
    if not isinstance(txn_id, str) or not txn_id:
        raise bad_line(number, "a balance transaction without an id")
    code = str(_value(txn, "currency") or "").upper()
    if len(code) != 3:
        raise bad_line(number, f"{txn_id}: currency {code!r} is not an ISO 4217 code")
    check_currency(code, number, currency)
    amount, fee, net = (_value(txn, k) for k in ("amount", "fee", "net"))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (amount, fee, net)):
        raise bad_line(number, f"{txn_id}: amount, fee and net must be integers")
    created = datetime.fromtimestamp(int(_value(txn, "created") or 0), UTC)
    available = _value(txn, "available_on")
    source = _value(txn, "source")
    payment_id = None
    if source is not None and not isinstance(source, str):
        intent = _value(source, "payment_intent")
        for holder in (intent if not isinstance(intent, str) else None, source):
            payment_id = payment_id or _value(_value(holder, "metadata"), "payment_id")
    category = _value(txn, "reporting_category") or _value(txn, "type")
    source_id = _id_of(source)
    return Line(
        line_no=number,
        external_id=txn_id,
        booked_on=created.date(),
        value_on=datetime.fromtimestamp(int(available), UTC).date() if available else None,
        amount=amount,
        fee=fee,
        net=net,
        currency=code,
        reference=text_or_none(_value(txn, "description"), 500),
        payout_id=source_id if source_id and source_id.startswith("po_") else None,
        payment_id=text_or_none(payment_id, 100),
        source_id=text_or_none(source_id, 100),
        category=text_or_none(str(category) if category else None, 64),
        created_at=created,
        raw=_lean(txn, source_id, payment_id),
    )


def _lean(txn: Any, source_id: str | None, payment_id: str | None) -> dict[str, Any]:
    """The transaction as Stripe sent it, its expanded source reduced to the id again."""
    raw = txn.to_dict() if hasattr(txn, "to_dict") else dict(txn)
    raw["source"] = source_id
    if payment_id is not None:
        raw["payment_metadata"] = {"payment_id": payment_id}
    return raw


async def balance_transactions(
    currency: str | None, params: dict[str, Any] | None = None
) -> AsyncIterator[Line]:
    sdk = stripe_client()
    # The source (charge, refund) and its PaymentIntent come with each transaction, for
    # the `payment_id` our gateway puts in the PaymentIntent's metadata.
    query = {"limit": PAGE_SIZE, "expand": EXPAND, **(params or {})}
    try:
        first = await sdk.v1.balance_transactions.list_async(params=query)  # type: ignore[arg-type]
        number = 0
        async for txn in first.auto_paging_iter():
            number += 1
            yield line_of(number, txn, currency)
    except stripe.StripeError as exc:
        message = getattr(exc, "user_message", None) or str(exc) or "Stripe call failed"
        raise GatewayError(f"Stripe: {message}", code="stripe_error") from exc
