"""Ledger accounts: their codes, opening them, and resolving a posting's codes to ids.

Account ids are resolved from their codes inside the posting statement rather than from
an in-process cache: the statement has to visit the account rows to lock them anyway,
so a cache would save nothing and could only go stale (a test database rebuilt under a
running process, a rolled-back account creation).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ledger.models import FEES_BORNE_BY, accounts, ledger_departments
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
# Stripe money movement (issue 10): a payout leaves Stripe clearing for the bank and is
# in transit until the bank statement shows it; disputed funds Stripe withholds; Stripe's
# own corrections of the balance.
BANK_IN_TRANSIT = "platform:bank_in_transit"
STRIPE_DISPUTES = "platform:stripe_disputes"
STRIPE_ADJUSTMENTS = "platform:stripe_adjustments"

PLATFORM_ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    (STRIPE_CLEARING, "Stripe clearing (card payments awaiting payout)", "asset"),
    (STRIPE_FEES, "Stripe processing fees", "expense"),
    (COUNTER_CASH, "Cash taken at service counters", "asset"),
    (BANK, "Platform bank account", "asset"),
    (SUSPENSE, "Suspense (unidentified money)", "liability"),
    # Test-card payments in the sandbox gateway: never mixed with real money.
    (SANDBOX_CLEARING, "Sandbox clearing (test payments, no real money)", "asset"),
    (BANK_IN_TRANSIT, "Stripe payouts on their way to the bank", "asset"),
    (STRIPE_DISPUTES, "Funds Stripe withholds for disputed payments", "asset"),
    (STRIPE_ADJUSTMENTS, "Stripe balance adjustments", "expense"),
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
    session: AsyncSession,
    department: str,
    name: str,
    currency: str = "CNY",
    *,
    timezone: str | None = None,
    stripe_fees_borne_by: str | None = None,
) -> None:
    """Create `department`'s fees-payable account (and the platform's) unless they
    exist, and record the department's ledger settings (`department_settings`).

    A department seen for the first time is stored with the given settings, or the
    defaults (Asia/Shanghai, fees borne by the platform); for one already known, the
    settings given replace the stored ones and those left None stay as they are. Raises
    ValidationFailed for an unknown time zone or fee bearer.
    """
    _check_currency(currency)
    if not department or ":" in department:
        raise ValidationFailed(
            "a department code is needed (without ':')", code="invalid_department"
        )
    await _store_department(session, department, name, timezone, stripe_fees_borne_by)
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


# --- department settings -----------------------------------------------------------------

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_FEES_BORNE_BY = "platform"


@dataclass(frozen=True)
class DepartmentSettings:
    """What the ledger knows of a department: its IANA time zone (period cut-offs) and
    who bears Stripe's fees on its payments ("platform" | "department"). `known` is
    False for a department the ledger has no row for (the defaults are given then)."""

    code: str
    name: str
    timezone: str = DEFAULT_TIMEZONE
    stripe_fees_borne_by: str = DEFAULT_FEES_BORNE_BY
    known: bool = True


def _check_settings(timezone: str | None, stripe_fees_borne_by: str | None) -> None:
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed(
                "unknown time zone",
                code="invalid_timezone",
                errors=[{"field": "timezone", "message": "not an IANA time zone name"}],
            ) from None
    if stripe_fees_borne_by is not None and stripe_fees_borne_by not in FEES_BORNE_BY:
        raise ValidationFailed(
            f"stripe_fees_borne_by must be one of {', '.join(FEES_BORNE_BY)}",
            code="invalid_stripe_fees_borne_by",
            errors=[{"field": "stripe_fees_borne_by", "message": "must be platform or department"}],
        )


async def _store_department(
    session: AsyncSession,
    code: str,
    name: str,
    timezone: str | None,
    stripe_fees_borne_by: str | None,
) -> None:
    _check_settings(timezone, stripe_fees_borne_by)
    now = utcnow()
    changes: dict[str, Any] = {"name": name, "updated_at": now}
    if timezone is not None:
        changes["timezone"] = timezone
    if stripe_fees_borne_by is not None:
        changes["stripe_fees_borne_by"] = stripe_fees_borne_by
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(ledger_departments).values(
        code=code,
        name=name,
        timezone=timezone or DEFAULT_TIMEZONE,
        stripe_fees_borne_by=stripe_fees_borne_by or DEFAULT_FEES_BORNE_BY,
        updated_at=now,
    )
    statement = statement.on_conflict_do_update(index_elements=["code"], set_=changes)
    conn = await session.connection()
    await conn.execute(statement)


async def department_settings(
    session: AsyncSession | AsyncConnection, code: str
) -> DepartmentSettings:
    """The department's ledger settings; the defaults (Asia/Shanghai, platform-borne
    fees, `known=False`) for a department the ledger has never been told of."""
    row = (
        await session.execute(select(ledger_departments).where(ledger_departments.c.code == code))
    ).first()
    if row is None:
        return DepartmentSettings(code=code, name=code, known=False)
    return DepartmentSettings(
        code=row.code,
        name=row.name,
        timezone=row.timezone,
        stripe_fees_borne_by=row.stripe_fees_borne_by,
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
