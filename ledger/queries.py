"""Reading the ledger: accounts, entries, transactions, the trial balance, and the check
that cached balances equal the sum of entries.

Every reader passes a `scope` (the departments it may see, None for all): an account or
transaction outside it is NotFound, never a hint that it exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ledger.models import accounts, balance_snapshots, entries, transactions
from ledger.snapshots import BEGINNING, entry_sums, joined, latest_valid_cut_off, valid_until
from ledger.types import (
    BalanceMismatch,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Page,
    Scope,
    TrialBalance,
    TrialBalanceLine,
)
from onetrip.clock import utcnow
from onetrip.db import UTCDateTime
from onetrip.errors import Forbidden, NotFound, ValidationFailed
from onetrip.pagination import check_cursor, check_limit


def _visible(scope: Scope) -> Any:
    """The accounts a reader with `scope` may see (platform accounts only with None)."""
    if scope is None:
        return true()
    return accounts.c.department.in_(list(scope))


# --- accounts --------------------------------------------------------------------------

_ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.code,
    accounts.c.name,
    accounts.c.department,
    accounts.c.currency,
    accounts.c.kind,
    accounts.c.balance,
    accounts.c.created_at,
)


def _account(row: Any) -> LedgerAccount:
    return LedgerAccount(
        id=row.id,
        code=row.code,
        name=row.name,
        department=row.department,
        currency=row.currency,
        kind=row.kind,
        balance=int(row.balance),
        created_at=row.created_at,
    )


async def list_accounts(
    session: AsyncSession,
    *,
    scope: Scope = None,
    department: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[LedgerAccount]:
    """Accounts the reader may see, newest first; `department` narrows to one department."""
    limit = check_limit(limit)
    if department is not None and scope is not None and department not in scope:
        raise Forbidden(
            f"this key does not cover department {department}", code="department_not_allowed"
        )
    stmt = select(*_ACCOUNT_COLUMNS).where(_visible(scope))
    if department is not None:
        stmt = stmt.where(accounts.c.department == department)
    if cursor := check_cursor(cursor, "acct"):
        stmt = stmt.where(accounts.c.id < cursor)
    stmt = stmt.order_by(accounts.c.id.desc()).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    items = [_account(row) for row in rows[:limit]]
    return Page(items, items[-1].id if len(rows) > limit else None)


async def get_account(
    session: AsyncSession, account_id: str, *, scope: Scope = None
) -> LedgerAccount:
    """The account, or NotFound — also when it belongs to a department outside `scope`."""
    row = (
        await session.execute(
            select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id, _visible(scope))
        )
    ).first()
    if row is None:
        raise NotFound(f"no ledger account {account_id}", code="account_not_found")
    return _account(row)


async def get_account_by_code(
    session: AsyncSession, code: str, currency: str = "CNY"
) -> LedgerAccount:
    """The account with this code in `currency` (NotFound if there is none)."""
    row = (
        await session.execute(
            select(*_ACCOUNT_COLUMNS).where(
                accounts.c.code == code, accounts.c.currency == currency
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no ledger account {code} in {currency}", code="account_not_found")
    return _account(row)


async def require_department(session: AsyncSession | AsyncConnection, department: str) -> None:
    """NotFound (404 department_not_found, field `department`) unless the ledger holds
    accounts of `department`: the one check behind every finance endpoint that names one."""
    found = await session.execute(
        select(accounts.c.id).where(accounts.c.department == department).limit(1)
    )
    if found.first() is None:
        raise NotFound(
            f"the ledger has no department {department}",
            code="department_not_found",
            errors=[{"field": "department", "message": "is not a department of the ledger"}],
        )


# --- entries ---------------------------------------------------------------------------


def _parse_entry_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    # ASCII digits only ("²".isdigit() is true), and within a BIGINT
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
        raise ValidationFailed(
            "cursor is not one this list returned",
            code="invalid_cursor",
            errors=[{"field": "cursor", "message": "is not valid"}],
        )
    return int(cursor)


async def list_entries(
    session: AsyncSession,
    account_id: str,
    *,
    scope: Scope = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[LedgerEntry]:
    """An account's entries, newest first (NotFound for an account outside `scope`)."""
    limit = check_limit(limit)
    after = _parse_entry_cursor(cursor)
    account = await get_account(session, account_id, scope=scope)
    stmt = (
        select(
            entries.c.id,
            entries.c.transaction_id,
            entries.c.amount,
            entries.c.currency,
            entries.c.effective_at,
            transactions.c.description,
        )
        .join(transactions, transactions.c.id == entries.c.transaction_id)
        .where(entries.c.account_id == account_id)
    )
    if after is not None:
        stmt = stmt.where(entries.c.id < after)
    stmt = stmt.order_by(entries.c.id.desc()).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    items = [
        LedgerEntry(
            id=row.id,
            transaction_id=row.transaction_id,
            account_id=account.id,
            account_code=account.code,
            department=account.department,
            amount=row.amount,
            currency=row.currency,
            effective_at=row.effective_at,
            description=row.description,
        )
        for row in rows[:limit]
    ]
    return Page(items, str(items[-1].id) if len(rows) > limit else None)


# --- transactions ----------------------------------------------------------------------


async def load_transaction(
    conn: AsyncConnection | AsyncSession, where: Any, scope: Scope = None
) -> LedgerTransaction | None:
    """The one transaction matching `where` with its entries, or None."""
    found = await load_transactions(conn, where, scope)
    return found[0] if found else None


async def load_transactions_by_key(
    conn: AsyncConnection, keys: Sequence[str]
) -> dict[str, LedgerTransaction]:
    """The transactions recorded under `keys`, with their entries, in two queries."""
    found = await load_transactions(conn, transactions.c.idempotency_key.in_(keys))
    return {txn.idempotency_key: txn for txn in found}


async def load_transactions(
    conn: AsyncConnection | AsyncSession,
    where: Any,
    scope: Scope = None,
    order_by: Sequence[Any] = (),
) -> list[LedgerTransaction]:
    """The transactions matching `where`, each with its entries (those `scope` may see),
    in two queries."""
    txns = (await conn.execute(select(transactions).where(where).order_by(*order_by))).all()
    by_id: dict[str, list[LedgerEntry]] = {txn.id: [] for txn in txns}
    if by_id:
        descriptions = {txn.id: txn.description for txn in txns}
        rows = await conn.execute(
            select(
                entries.c.id,
                entries.c.transaction_id,
                entries.c.account_id,
                entries.c.amount,
                entries.c.currency,
                entries.c.effective_at,
                accounts.c.code,
                accounts.c.department,
            )
            .join(accounts, accounts.c.id == entries.c.account_id)
            .where(entries.c.transaction_id.in_(list(by_id)), _visible(scope))
            .order_by(entries.c.id)
        )
        for row in rows:
            by_id[row.transaction_id].append(
                LedgerEntry(
                    id=row.id,
                    transaction_id=row.transaction_id,
                    account_id=row.account_id,
                    account_code=row.code,
                    department=row.department,
                    amount=row.amount,
                    currency=row.currency,
                    effective_at=row.effective_at,
                    description=descriptions[row.transaction_id],
                )
            )
    return [
        LedgerTransaction(
            id=txn.id,
            idempotency_key=txn.idempotency_key,
            description=txn.description,
            effective_at=txn.effective_at,
            recorded_at=txn.recorded_at,
            metadata=dict(txn._mapping["metadata"] or {}),
            reverses_id=txn.reverses_id,
            entries=tuple(by_id[txn.id]),
            external_ref=txn.external_ref,
            external_source=txn.external_source,
            corrects_id=txn.corrects_id,
        )
        for txn in txns
    ]


async def transaction_for_key(session: AsyncSession, idempotency_key: str) -> LedgerTransaction:
    """The transaction posted under `idempotency_key` (NotFound if none was)."""
    txn = await load_transaction(session, transactions.c.idempotency_key == idempotency_key)
    if txn is None:
        raise NotFound(f"no ledger transaction for {idempotency_key}", code="transaction_not_found")
    return txn


async def get_transaction(
    session: AsyncSession, transaction_id: str, *, scope: Scope = None
) -> LedgerTransaction:
    """A transaction with its entries. A reader with a limited `scope` gets only the
    entries on accounts it may see, and NotFound when there are none."""
    txn = await load_transaction(session, transactions.c.id == transaction_id, scope)
    if txn is None or (scope is not None and not txn.entries):
        raise NotFound(f"no ledger transaction {transaction_id}", code="transaction_not_found")
    return txn


async def transactions_by_external_ref(
    session: AsyncSession,
    ref: str,
    *,
    source: str | None = None,
    scope: Scope = None,
) -> list[LedgerTransaction]:
    """Every transaction booking the outside record `ref`, oldest first (an empty list
    when there is none: several of ours may reference one Stripe payout, or none yet).

    `source` narrows to refs in that namespace ("stripe", "bank:ICBC"), for ids that are
    not unique across systems such as bank end-to-end ids. A limited `scope` sees only
    its entries and skips transactions with none (as in get_transaction).
    """
    where = transactions.c.external_ref == ref
    if source is not None:
        where = where & (transactions.c.external_source == source)
    found = await load_transactions(
        session,
        where,
        scope,
        order_by=(transactions.c.effective_at, transactions.c.id),
    )
    return [txn for txn in found if scope is None or txn.entries]


# --- reports ---------------------------------------------------------------------------


#: The trial balance's one line for every account a limited scope may not see in detail
#: (platform accounts and other departments'), per currency: not an account, so it has
#: no `acct_` id and no department.
OTHER_ACCOUNTS = "other"


async def trial_balance(
    session: AsyncSession, *, as_of: datetime | None = None, scope: Scope = None
) -> TrialBalance:
    """Debits and credits per account over entries effective up to `as_of` (default now).

    total_debits == total_credits for every scope: a limited scope gets its departments'
    accounts line by line, and everything else summed in one `OTHER_ACCOUNTS` line per
    currency, without its detail (the books balance only as a whole). Exact, and read
    without summing every entry (issue 10): see `account_totals`.
    """
    as_of = as_of or utcnow()
    if as_of.tzinfo is None:
        raise ValidationFailed("as_of must carry a UTC offset", code="invalid_as_of")
    lines: list[TrialBalanceLine] = []
    others: dict[str, list[int]] = {}  # currency -> [debits, credits]
    for row in await account_totals(session, as_of):
        if not (row.debits or row.credits):
            continue  # no entries by as_of (an entry is never zero)
        if scope is None or row.department in scope:
            lines.append(
                TrialBalanceLine(
                    account_id=row.id,
                    code=row.code,
                    department=row.department,
                    currency=row.currency,
                    debits=int(row.debits),
                    credits=int(row.credits),
                )
            )
        else:
            summed = others.setdefault(row.currency, [0, 0])
            summed[0] += int(row.debits)
            summed[1] += int(row.credits)
    lines.sort(key=lambda line: (line.code, line.currency))
    lines.extend(
        TrialBalanceLine(
            account_id=OTHER_ACCOUNTS,
            code=OTHER_ACCOUNTS,
            department=None,
            currency=currency,
            debits=summed_debits,
            credits=summed_credits,
        )
        for currency, (summed_debits, summed_credits) in sorted(others.items())
    )
    return TrialBalance(
        as_of=as_of,
        lines=lines,
        total_debits=sum(line.debits for line in lines),
        total_credits=sum(line.credits for line in lines),
        departments=None if scope is None else tuple(sorted(scope)),
    )


_TOTALS_COLUMNS = (accounts.c.id, accounts.c.code, accounts.c.department, accounts.c.currency)


async def account_totals(session: AsyncSession, as_of: datetime) -> Sequence[Any]:
    """Every account's (id, code, department, currency, debits, credits) over the entries
    effective up to `as_of`, in one statement (one consistent view of the books), from
    whichever is nearer to `as_of`:

    - the cached totals (ledger_accounts.debits/credits, kept by a trigger with every
      entry) minus the entries effective after `as_of` — for "now", a probe per account
      that finds nothing;
    - the latest valid snapshot (a quarter of an hour apart) at or before `as_of` plus
      the entries since;
    - with no snapshot, the sum of every entry up to `as_of`.
    """
    base = await latest_valid_cut_off(session, as_of)
    ago = utcnow() - as_of
    if base is None and ago > timedelta(days=1):
        return await _summed_entries(session, as_of)
    pg = session.get_bind().dialect.name == "postgresql"
    if base is None or as_of - base > ago:
        later, later_debits, later_credits = entry_sums(
            pg, entries.c.effective_at > literal(as_of, UTCDateTime())
        )
        stmt = select(
            *_TOTALS_COLUMNS,
            (accounts.c.debits - later_debits).label("debits"),
            (accounts.c.credits - later_credits).label("credits"),
        ).select_from(joined(accounts, later))
        return (await session.execute(stmt)).all()
    # The snapshot is looked up again inside the statement, so that the rows it adds and
    # the entries after it come from one view even if the snapshot job replaced it since.
    limit = func.coalesce(valid_until(), literal(as_of, UTCDateTime()))
    cut_off = func.coalesce(
        select(func.max(balance_snapshots.c.cut_off))
        .where(balance_snapshots.c.cut_off <= as_of, balance_snapshots.c.cut_off <= limit)
        .scalar_subquery(),
        literal(BEGINNING, UTCDateTime()),
    )
    since, since_debits, since_credits = entry_sums(
        pg,
        entries.c.effective_at >= cut_off,
        entries.c.effective_at <= literal(as_of, UTCDateTime()),
    )
    snap = balance_snapshots.alias("snap")
    stmt = select(
        *_TOTALS_COLUMNS,
        (func.coalesce(snap.c.debits, 0) + since_debits).label("debits"),
        (func.coalesce(snap.c.credits, 0) + since_credits).label("credits"),
    ).select_from(
        joined(
            accounts.outerjoin(
                snap, (snap.c.account_id == accounts.c.id) & (snap.c.cut_off == cut_off)
            ),
            since,
        )
    )
    return (await session.execute(stmt)).all()


async def _summed_entries(session: AsyncSession, as_of: datetime) -> Sequence[Any]:
    """Every entry up to `as_of`, summed in one pass (no snapshot to start from)."""
    debits = func.coalesce(func.sum(case((entries.c.amount > 0, entries.c.amount))), 0)
    credits = func.coalesce(func.sum(case((entries.c.amount < 0, -entries.c.amount))), 0)
    stmt = (
        select(*_TOTALS_COLUMNS, debits.label("debits"), credits.label("credits"))
        .join(entries, entries.c.account_id == accounts.c.id)
        .where(entries.c.effective_at <= as_of)
        .group_by(*_TOTALS_COLUMNS)
    )
    return (await session.execute(stmt)).all()


async def verify_balances(session: AsyncSession) -> list[BalanceMismatch]:
    """Accounts whose cached balance differs from the sum of their entries (should be none)."""
    total = func.coalesce(func.sum(entries.c.amount), 0)
    stmt = (
        select(
            accounts.c.id,
            accounts.c.code,
            accounts.c.currency,
            accounts.c.balance,
            total.label("sum_of_entries"),
        )
        .outerjoin(entries, entries.c.account_id == accounts.c.id)
        .group_by(accounts.c.id, accounts.c.code, accounts.c.currency, accounts.c.balance)
        .having(accounts.c.balance != total)
        .order_by(accounts.c.code)
    )
    return [
        BalanceMismatch(
            account_id=row.id,
            code=row.code,
            currency=row.currency,
            cached_balance=int(row.balance),
            sum_of_entries=int(row.sum_of_entries),
        )
        for row in await session.execute(stmt)
    ]
