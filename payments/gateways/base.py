"""The one small interface every payment gateway implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from payments.models import Payment, Refund

Outcome = Literal["succeeded", "failed", "cancelled", "pending"]


@dataclass(frozen=True)
class Started:
    """What the applicant's page needs to take the payment."""

    gateway_ref: str | None
    client_secret: str | None = None


@dataclass(frozen=True)
class RefundResult:
    status: Literal["succeeded", "pending", "failed"]
    gateway_ref: str | None = None
    failure_reason: str | None = None


class PaymentGateway(Protocol):
    name: str
    #: the ledger account that holds money taken through this gateway until payout
    clearing_account: str
    #: a started payment may still be taken here until the gateway is told to stop, so
    #: a department's cancel asks it first (`cancel`)
    cancellable: bool
    #: a started payment's outcome can be asked for (`outcome`): the poll sweep does so,
    #: in case its webhook was lost
    pollable: bool
    #: the hosted page needs the client secret `start` returns; a started payment
    #: without one is started again (idempotent)
    needs_client_secret: bool

    async def start(self, payment: Payment) -> Started:
        """Prepare the gateway to take `payment` (idempotent per payment)."""
        ...

    async def outcome(self, payment: Payment) -> Outcome:
        """Ask the gateway what became of a started payment (webhooks get lost)."""
        ...

    async def cancel(self, payment: Payment) -> Outcome:
        """Stop the payment from being taken; returns what it is now (it may have
        succeeded in the meantime)."""
        ...

    async def refund(self, payment: Payment, refund: Refund) -> RefundResult:
        """Give money back (idempotent per refund id)."""
        ...
