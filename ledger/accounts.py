"""Ledger accounts: their codes, opening them, and resolving a posting's codes to ids.

Account ids are resolved from their codes inside the posting statement rather than from
an in-process cache: the statement has to visit the account rows to lock them anyway,
so a cache would save nothing and could only go stale (a test database rebuilt under a
running process, a rolled-back account creation).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ledger.models import accounts
from ledger.types import InvalidPosting
from onetrip.clock import utcnow
from onetrip.db import insert_ignoring_conflicts
from onetrip.errors import ValidationFailed
from onetrip.ids import new_id
from onetrip.money import valid_currency

# --- account codes ---------------------------------------------------------------------

STRIPE_CLEARING = "platform:stripe_clearing"
STRIPE_FEES = "platform:stripe_fees"
COUNTER_CASH = "platform:counter_cash"
BANK = "platform:bank"
SUSPENSE = "platform:suspense"
SANDBOX_CLEARING = "platform:sandbox_clearing"

PLATFORM_ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    (STRIPE_CLEARING, "Stripe clearing (card payments awaiting payout)", "asset"),
    (STRIPE_FEES, "Stripe processing fees", "expense"),
    (COUNTER_CASH, "Cash taken at service counters", "asset"),
    (BANK, "Platform bank account", "asset"),
    (SUSPENSE, "Suspense (unidentified money)", "liability"),
    # Test-card payments in the sandbox gateway: never mixed with real money.
    (SANDBOX_CLEARING, "Sandbox clearing (test payments, no real money)", "asset"),
)


def department_fees_account(department: str) -> str:
    """The code of the liability account holding fees owed to `department`."""
    return f"dept:{department}:fees_payable"


def department_of(code: str) -> str | None:
    """The department an account code belongs to (None for platform accounts)."""
    prefix, _, rest = code.partition(":")
    return rest.partition(":")[0] if prefix == "dept" else None


# --- opening accounts ------------------------------------------------------------------


def _check_currency(currency: str) -> None:
    if not valid_currency(currency):
        raise ValidationFailed(
            "currency must be an ISO 4217 code such as CNY",
            code="invalid_currency",
            errors=[{"field": "currency", "message": "must be three capital letters"}],
        )


async def _create_accounts(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    now = utcnow()
    values = [{"id": new_id("acct"), "balance": 0, "created_at": now, **row} for row in rows]
    stmt = insert_ignoring_conflicts(session, accounts, ["code", "currency"])
    conn = await session.connection()
    await conn.execute(stmt, values)


async def ensure_platform_accounts(session: AsyncSession, currency: str = "CNY") -> None:
    """Create the platform's own accounts in `currency` unless they exist (idempotent)."""
    _check_currency(currency)
    await _create_accounts(
        session,
        [
            {"code": code, "name": name, "kind": kind, "department": None, "currency": currency}
            for code, name, kind in PLATFORM_ACCOUNTS
        ],
    )


async def open_department_accounts(
    session: AsyncSession, department: str, name: str, currency: str = "CNY"
) -> None:
    """Create `department`'s fees-payable account (and the platform's) unless they exist."""
    _check_currency(currency)
    if not department or ":" in department:
        raise ValidationFailed(
            "a department code is needed (without ':')", code="invalid_department"
        )
    await ensure_platform_accounts(session, currency)
    await _create_accounts(
        session,
        [
            {
                "code": department_fees_account(department),
                "name": f"Fees payable to {name}",
                "kind": "liability",
                "department": department,
                "currency": currency,
            }
        ],
    )


# --- resolving -------------------------------------------------------------------------


async def resolve_accounts(
    conn: AsyncConnection, net: dict[tuple[str, str], int]
) -> dict[tuple[str, str], str]:
    """The posting's account ids by (code, currency); InvalidPosting for an unknown
    account or one held in another currency than its line."""
    keys = list(net)
    codes = sorted({code for code, _ in keys})
    found = await conn.execute(
        select(accounts.c.id, accounts.c.code, accounts.c.currency).where(
            accounts.c.code.in_(codes)
        )
    )
    by_code: dict[str, dict[str, str]] = defaultdict(dict)
    for account_id, code, currency in found:
        by_code[code][currency] = account_id
    ids: dict[tuple[str, str], str] = {}
    for code, currency in keys:
        in_currency = by_code.get(code)
        if not in_currency:
            raise InvalidPosting(
                f"there is no ledger account {code}",
                code="ledger_unknown_account",
                errors=[{"field": "account", "message": f"{code} does not exist"}],
            )
        if currency not in in_currency:
            held = ", ".join(sorted(in_currency))
            raise InvalidPosting(
                f"account {code} is held in {held}, not {currency}",
                code="ledger_currency_mismatch",
                errors=[{"field": "currency", "message": f"{code} is held in {held}"}],
            )
        ids[(code, currency)] = in_currency[currency]
    return ids
