"""The ledger's public entry: accounts, balanced postings, reversals and the reports
built on them. Other domains, the wiring and the tests import from here only; the rules
live in the modules below, each along one seam:

- ledger/types.py    the domain objects (Line, Posting, LedgerTransaction, …) and refusals
- ledger/accounts.py account codes, opening accounts, resolving codes to ids
- ledger/journal.py  what a posting must be; posting one or many; reversal
- ledger/writes.py   how a posting is written (one statement on PostgreSQL, four on SQLite)
- ledger/queries.py  reading accounts, entries, transactions, the trial balance
- ledger/periods.py  closed periods: the check every posting path makes, closing them

Callers pass their session and commit it themselves (their unit of work), so a payment's
state change and its ledger transaction commit together.
"""

from __future__ import annotations

from ledger.accounts import (
    BANK,
    BANK_IN_TRANSIT,
    COUNTER_CASH,
    PLATFORM_ACCOUNTS,
    SANDBOX_CLEARING,
    STRIPE_ADJUSTMENTS,
    STRIPE_CLEARING,
    STRIPE_DISPUTES,
    STRIPE_FEES,
    SUSPENSE,
    DepartmentSettings,
    _create_accounts,
    department_fees_account,
    department_of,
    department_settings,
    ensure_platform_accounts,
    open_department_accounts,
)
from ledger.journal import (
    MAX_DESCRIPTION,
    MAX_EXTERNAL_REF,
    MAX_EXTERNAL_SOURCE,
    MAX_IDEMPOTENCY_KEY,
    post_transaction,
    post_transactions,
    reverse_transaction,
    validate_lines,
)
from ledger.periods import (
    ClosedPeriod,
    PeriodClosed,
    close_period,
    first_open_moment,
    list_periods,
    refuse_closed,
    refuse_closed_transactions,
)
from ledger.queries import (
    get_account,
    get_account_by_code,
    get_transaction,
    list_accounts,
    list_entries,
    require_department,
    transaction_for_key,
    transactions_by_external_ref,
    trial_balance,
    verify_balances,
)
from ledger.types import (
    AlreadyReversed,
    BalanceMismatch,
    InvalidPosting,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Line,
    Page,
    Posting,
    Scope,
    TrialBalance,
    TrialBalanceLine,
)

__all__ = [
    "BANK",
    "BANK_IN_TRANSIT",
    "COUNTER_CASH",
    "MAX_DESCRIPTION",
    "MAX_EXTERNAL_REF",
    "MAX_EXTERNAL_SOURCE",
    "MAX_IDEMPOTENCY_KEY",
    "PLATFORM_ACCOUNTS",
    "SANDBOX_CLEARING",
    "STRIPE_ADJUSTMENTS",
    "STRIPE_CLEARING",
    "STRIPE_DISPUTES",
    "STRIPE_FEES",
    "SUSPENSE",
    "AlreadyReversed",
    "BalanceMismatch",
    "ClosedPeriod",
    "DepartmentSettings",
    "InvalidPosting",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "Line",
    "Page",
    "PeriodClosed",
    "Posting",
    "Scope",
    "TrialBalance",
    "TrialBalanceLine",
    # Not public: the benchmark opens its own sub-accounts with it.
    "_create_accounts",
    "close_period",
    "department_fees_account",
    "department_of",
    "department_settings",
    "ensure_platform_accounts",
    "first_open_moment",
    "get_account",
    "get_account_by_code",
    "get_transaction",
    "list_accounts",
    "list_entries",
    "list_periods",
    "open_department_accounts",
    "post_transaction",
    "post_transactions",
    "refuse_closed",
    "refuse_closed_transactions",
    "require_department",
    "reverse_transaction",
    "transaction_for_key",
    "transactions_by_external_ref",
    "trial_balance",
    "validate_lines",
    "verify_balances",
]
