"""Payment gateways behind one interface (see base.PaymentGateway)."""

from __future__ import annotations

from onetrip.errors import NotFound
from onetrip.settings import get_settings
from payments.gateways.base import PaymentGateway

NAMES = ("stripe", "sandbox", "counter")


def gateway_named(name: str) -> PaymentGateway:
    if name == "stripe":
        from payments.gateways.stripe import StripeGateway

        return StripeGateway()
    if name == "sandbox":
        from payments.gateways.sandbox import SandboxGateway

        return SandboxGateway()
    if name == "counter":
        from payments.gateways.counter import CounterGateway

        return CounterGateway()
    raise NotFound(f"no gateway {name!r}")


def online_gateway() -> PaymentGateway:
    """The gateway that takes card payments on the hosted page: Stripe if configured."""
    return gateway_named(get_settings().gateway)


def pollable_gateways() -> list[str]:
    """The names of the gateways whose started payments the poll sweep asks about."""
    return [name for name in NAMES if gateway_named(name).pollable]
