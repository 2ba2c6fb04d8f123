"""The Stripe SDK client, built once for every domain that calls Stripe (the payments
gateway, the ledger's import of balance transactions).

One client per event loop: the SDK's HTTPXClient keeps an httpx.AsyncClient whose pooled
connections belong to the loop that opened them, and the API server's loop and the
Dramatiq worker's loop thread both call Stripe. A pooled connection used from another
loop fails with a RuntimeError (an APIConnectionError from the SDK) that only the SDK's
retries happened to paper over. A client is dropped with its loop.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import stripe

from onetrip.errors import GatewayError
from onetrip.settings import get_settings

#: the SDK retries a failed network call this many times (with its own backoff)
NETWORK_RETRIES = 2

_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str | None], stripe.StripeClient]
] = weakref.WeakKeyDictionary()


def _client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    kwargs: dict[str, Any] = {
        "http_client": stripe.HTTPXClient(),
        "max_network_retries": NETWORK_RETRIES,
    }
    if api_base:
        kwargs["base_addresses"] = {"api": api_base}
    return stripe.StripeClient(api_key, **kwargs)


def stripe_client() -> stripe.StripeClient:
    """This event loop's client for the configured STRIPE_API_KEY (and STRIPE_API_BASE);
    GatewayError `gateway_not_configured` without a key. Call it inside a running loop."""
    settings = get_settings()
    if not settings.stripe_api_key:
        raise GatewayError(
            "Stripe is not configured (STRIPE_API_KEY)", code="gateway_not_configured"
        )
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (settings.stripe_api_key, settings.stripe_api_base)
    client = per_loop.get(key)
    if client is None:
        client = per_loop[key] = _client(*key)
    return client


def forget_clients() -> None:
    """Drop the cached clients (tests point STRIPE_API_BASE elsewhere)."""
    _clients.clear()
