"""The ledger's domain objects and refusals: what its functions take and return.

Plain frozen dataclasses (equal by value, so a posted transaction equals the same one
read back); the API shapes them into its own response structs (ledger/schemas.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from onetrip.errors import Conflict, ValidationFailed

# --- errors ----------------------------------------------------------------------------


class InvalidPosting(ValidationFailed):
    """A transaction the ledger refuses; `code` says why (stable, for callers and tests)."""

    code = "ledger_invalid_posting"
    title = "The ledger transaction is not valid"


class AlreadyReversed(Conflict):
    code = "ledger_already_reversed"
    title = "This ledger transaction has already been reversed"


# --- domain objects --------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    account: str  # account code, e.g. "dept:PSB:fees_payable"
    amount: int  # signed minor units: + debit, − credit
    currency: str


@dataclass(frozen=True)
class Posting:
    """One transaction for post_transactions (any object with these attributes will do).

    `external_ref` names the outside record the transaction books (a Stripe balance
    transaction or payout id, a bank end-to-end id) and `external_source` the system
    whose namespace that id lives in ("stripe", "bank:ICBC"), so reconciliation can
    find our side of it.
    """

    idempotency_key: str
    description: str
    lines: Sequence[Line]
    effective_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    reverses_id: str | None = None
    external_ref: str | None = None
    external_source: str | None = None
    # The transaction this one corrects (one in a closed period, or a reconciliation
    # adjustment): corrections post in an open period and link what they correct.
    corrects_id: str | None = None


@dataclass(frozen=True)
class LedgerAccount:
    id: str
    code: str
    name: str
    department: str | None
    currency: str
    kind: str
    balance: int
    created_at: datetime


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    transaction_id: str
    account_id: str
    account_code: str
    department: str | None
    amount: int
    currency: str
    effective_at: datetime
    description: str = ""


@dataclass(frozen=True)
class LedgerTransaction:
    id: str
    idempotency_key: str
    description: str
    effective_at: datetime
    recorded_at: datetime
    metadata: dict[str, Any]
    reverses_id: str | None
    entries: tuple[LedgerEntry, ...] = ()
    # The outside record this transaction books, if any (see Posting).
    external_ref: str | None = None
    external_source: str | None = None
    corrects_id: str | None = None  # the transaction this one corrects (see Posting)


@dataclass(frozen=True)
class TrialBalanceLine:
    account_id: str
    code: str
    department: str | None
    currency: str
    debits: int  # sum of the account's debit entries, a positive int
    credits: int  # sum of its credit entries, as a positive int


@dataclass(frozen=True)
class TrialBalance:
    as_of: datetime
    lines: list[TrialBalanceLine]
    total_debits: int
    total_credits: int
    # None: every account. Otherwise these departments' accounts are listed one by one
    # and every other account summed in one "other" line per currency; totals are equal.
    departments: tuple[str, ...] | None


@dataclass(frozen=True)
class BalanceMismatch:
    account_id: str
    code: str
    currency: str
    cached_balance: int
    sum_of_entries: int


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None


# Which departments' accounts a reader may see: None = all, platform accounts included.
Scope = Sequence[str] | None
