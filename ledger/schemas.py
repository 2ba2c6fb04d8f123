"""Response types of the finance (ledger) API. Money is int minor units + currency."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct


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
    # The transaction this one corrects (a correction posted in an open period, or a
    # reconciliation adjustment through suspense); null for every other transaction.
    corrects_id: str | None
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


# --- reconciliation imports (issue 10) ------------------------------------------------


class ImportTotalOut(Struct):
    lines: int  # lines of the import in this currency
    amount: int  # their sum, signed minor units
    new_lines: int  # of which stored now (the others were imported before)
    new_amount: int


class ImportOut(Struct):
    id: str
    source: str  # stripe_balance | stripe_payout_recon | bank_csv | camt053
    namespace: str  # whose ids the records carry: "stripe", "bank:ICBC", "camt053"
    file_name: str | None
    sha256: str | None
    profile: str | None
    currency: str | None
    imported_by: str  # "key:<api key id>" or "cli:<operator>"
    imported_at: datetime
    lines: int
    new_records: int
    duplicates: int  # lines already imported before: skipped, not stored twice
    totals: dict[str, ImportTotalOut]  # per currency
    summary: str  # "12 new, 3 already imported"


class ImportPage(Struct):
    data: list[ImportOut]
    next_cursor: str | None


class ProfileColumns(Struct, forbid_unknown_fields=True):
    """Our field → the header of the bank's column that holds it."""

    booked_on: str
    value_on: str | None = None
    amount: str | None = None  # sign_convention "signed": + is money in
    debit: str | None = None  # sign_convention "debit_credit": money out
    credit: str | None = None  # … and money in
    currency: str | None = None
    counterparty: str | None = None
    reference: str | None = None
    end_to_end_id: str | None = None
    external_id: str | None = None  # the bank's own entry reference, if it gives one


class ProfileIn(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    bank: Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
    columns: ProfileColumns
    encoding: Annotated[str, Meta(max_length=32)] = "utf-8"
    delimiter: Annotated[str, Meta(min_length=1, max_length=1)] = ","
    date_format: Annotated[str, Meta(min_length=2, max_length=32)] = "%Y-%m-%d"
    decimal_separator: Annotated[str, Meta(min_length=1, max_length=1)] = "."
    thousands_separator: Annotated[str, Meta(min_length=1, max_length=1)] | None = None
    sign_convention: Literal["signed", "debit_credit"] = "signed"
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")] | None = None
    skip_rows: Annotated[int, Meta(ge=0, le=1000)] = 0


class ProfileOut(Struct):
    name: str
    bank: str
    columns: dict[str, str]
    encoding: str
    delimiter: str
    date_format: str
    decimal_separator: str
    thousands_separator: str | None
    sign_convention: str
    currency: str | None
    skip_rows: int


class ProfilePage(Struct):
    data: list[ProfileOut]
    next_cursor: str | None
