"""Response types of the finance (ledger) API. Money is int minor units + currency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct


class AccountOut(Struct):
    id: str
    code: str
    name: str
    department: str | None  # null for the platform's own accounts
    currency: str
    balance: int  # debits − credits, minor units
    kind: str
    created_at: datetime


class AccountPage(Struct):
    data: list[AccountOut]
    next_cursor: str | None


class EntryOut(Struct):
    id: int
    transaction_id: str
    account_id: str
    amount: int  # + debit, − credit
    currency: str
    effective_at: datetime
    description: str


class EntryPage(Struct):
    data: list[EntryOut]
    next_cursor: str | None


class TransactionEntryOut(Struct):
    id: int
    account_id: str
    code: str
    department: str | None
    amount: int
    currency: str


class TransactionOut(Struct):
    id: str
    description: str
    effective_at: datetime
    recorded_at: datetime
    metadata: dict[str, Any]
    reverses_id: str | None
    entries: list[TransactionEntryOut]
    # null: every entry is shown; otherwise only entries on these departments' accounts.
    departments: list[str] | None


class TrialBalanceLineOut(Struct):
    account_id: str
    code: str
    department: str | None
    currency: str
    debits: int
    credits: int


class TrialBalanceOut(Struct):
    as_of: datetime
    lines: list[TrialBalanceLineOut]
    total_debits: int
    total_credits: int
    # null: every account; otherwise these departments' accounts one by one, and all
    # other accounts summed in one "other" line per currency. The totals are equal.
    departments: list[str] | None
