"""The ledger's rules: accounts, balanced postings, reversals and the reports built on them.

Callers pass their session and commit it themselves (their unit of work), so a payment's
state change and its ledger transaction commit together. On PostgreSQL a posting is one
SQLAlchemy Core statement (one round trip) that locks the accounts it touches in id
order, so concurrent postings never deadlock and cached balances always equal the sum of
entries; on SQLite, where BEGIN IMMEDIATE serialises writers, it is four plain ones.
Batch producers use post_transactions: many postings in one such statement.

Account ids are resolved from their codes inside that statement rather than from an
in-process cache: the statement has to visit the account rows to lock them anyway, so a
cache would save nothing and could only go stale (a test database rebuilt under a
running process, a rolled-back account creation).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import bindparam, case, func, insert, select, text, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ledger.models import UTCDateTime, accounts, entries, transactions
from onetrip.clock import utcnow
from onetrip.db import insert_ignoring_conflicts
from onetrip.errors import (
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    ValidationFailed,
)
from onetrip.ids import new_id
from onetrip.money import valid_currency
from onetrip.pagination import check_limit

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

MAX_IDEMPOTENCY_KEY = 255
MAX_DESCRIPTION = 500


def department_fees_account(department: str) -> str:
    """The code of the liability account holding fees owed to `department`."""
    return f"dept:{department}:fees_payable"


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
    # None: every account. Otherwise only these departments' accounts are included, so
    # the totals need not be equal.
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


# --- accounts --------------------------------------------------------------------------


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


# --- posting ---------------------------------------------------------------------------


def validate_lines(lines: Sequence[Line]) -> dict[tuple[str, str], int]:
    """Check a posting's lines; returns the net amount per (account code, currency).

    At least two lines, each a non-zero int in a valid currency, summing to zero in each
    currency. Raises InvalidPosting with a stable code otherwise.
    """
    if len(lines) < 2:
        raise InvalidPosting(
            "a ledger transaction needs at least two lines", code="ledger_too_few_lines"
        )
    totals: dict[str, int] = defaultdict(int)
    net: dict[tuple[str, str], int] = defaultdict(int)
    for index, line in enumerate(lines):
        if type(line.amount) is not int:
            raise InvalidPosting(
                f"line {index}: amount must be an int of minor units",
                code="ledger_amount_not_int",
                errors=[{"field": f"lines[{index}].amount", "message": "must be an integer"}],
            )
        if line.amount == 0:
            raise InvalidPosting(
                f"line {index} ({line.account}) has a zero amount",
                code="ledger_zero_amount",
                errors=[{"field": f"lines[{index}].amount", "message": "must not be zero"}],
            )
        if not valid_currency(line.currency):
            raise InvalidPosting(
                f"line {index}: {line.currency!r} is not an ISO 4217 currency code",
                code="ledger_invalid_currency",
                errors=[{"field": f"lines[{index}].currency", "message": "must be like CNY"}],
            )
        if not line.account:
            raise InvalidPosting(f"line {index} names no account", code="ledger_unknown_account")
        totals[line.currency] += line.amount
        net[(line.account, line.currency)] += line.amount
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        detail = ", ".join(
            f"{currency} {total:+d}" for currency, total in sorted(unbalanced.items())
        )
        raise InvalidPosting(
            f"the lines do not sum to zero per currency ({detail})", code="ledger_unbalanced"
        )
    return net


async def post_transaction(
    session: AsyncSession,
    *,
    idempotency_key: str,
    description: str,
    lines: list[Line],
    effective_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    reverses_id: str | None = None,
) -> LedgerTransaction:
    """Record a balanced transaction and update the cached balances; never commits.

    A naive `effective_at` is taken as UTC (what SQLite returns for stored timestamps).
    Idempotent on `idempotency_key`: a second call with the same key (concurrent ones
    too) returns the first transaction and changes nothing; the same key with other
    lines raises IdempotencyKeyReused. Unknown accounts, or an account in another
    currency than its line, raise InvalidPosting.
    """
    posting = _prepare(
        idempotency_key=idempotency_key,
        description=description,
        lines=lines,
        effective_at=effective_at,
        metadata=metadata,
        reverses_id=reverses_id,
        recorded_at=utcnow(),
    )
    conn = await session.connection()
    try:
        if conn.dialect.name == "postgresql":
            account_ids = await _write_postgresql(conn, posting)
        else:
            account_ids = await _write_portable(session, conn, posting)
    except IntegrityError as exc:
        if reverses_id is not None and "reverses_id" in str(exc.orig):
            raise AlreadyReversed(f"transaction {reverses_id} has already been reversed") from exc
        raise
    if account_ids is None:
        # The key was used before (or by a concurrent posting, which PostgreSQL waited
        # for): that transaction is the answer, provided it moved the same money.
        existing = await _load_transaction(conn, transactions.c.idempotency_key == idempotency_key)
        assert existing is not None
        _check_replay(existing, lines)
        return existing
    return posting.result(account_ids)


@dataclass(frozen=True)
class Posting:
    """One transaction for post_transactions (any object with these attributes will do)."""

    idempotency_key: str
    description: str
    lines: Sequence[Line]
    effective_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    reverses_id: str | None = None


def _prepare(
    *,
    idempotency_key: str,
    description: str,
    lines: Sequence[Line],
    effective_at: datetime | None,
    metadata: dict[str, Any] | None,
    reverses_id: str | None,
    recorded_at: datetime,
) -> _Posting:
    """Validate one posting and normalise it for writing (InvalidPosting otherwise)."""
    net = validate_lines(lines)
    if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidPosting(
            f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
            code="ledger_invalid_idempotency_key",
        )
    if effective_at is None:
        effective_at = recorded_at
    elif effective_at.tzinfo is None:
        # SQLite hands back stored timestamps without their offset; they are UTC.
        effective_at = effective_at.replace(tzinfo=UTC)
    else:
        effective_at = effective_at.astimezone(UTC)
    return _Posting(
        id=new_id("txn"),
        idempotency_key=idempotency_key,
        description=description[:MAX_DESCRIPTION],
        effective_at=effective_at,
        recorded_at=recorded_at,
        metadata=metadata or {},
        reverses_id=reverses_id,
        lines=lines,
        net=net,
    )


async def post_transactions(
    session: AsyncSession, postings: Sequence[Posting]
) -> list[LedgerTransaction]:
    """Record many balanced transactions at once, for batch producers (reconciliation
    imports, payout settlement, counter uploads); never commits.

    Each posting is validated and idempotent on its key exactly as in post_transaction,
    and the result lists their transactions in the order given (the first transaction
    again for a key used before, or repeated in the batch with the same lines). The
    batch is all or nothing: one invalid posting raises InvalidPosting (its index in the
    message and error fields) and the caller's unit of work rolls back. On PostgreSQL the
    batch is one statement that claims the keys in key order and then locks the union of
    the accounts in id order, so concurrent batches and single postings (one call per
    unit of work) cannot deadlock one another. Measured: ~5,000 postings/s in batches of
    50, against ~600/s one per unit of work (benchmarks/RESULTS.md).
    """
    recorded_at = utcnow()
    prepared: list[_Posting] = []
    for index, item in enumerate(postings):
        try:
            prepared.append(
                _prepare(
                    idempotency_key=item.idempotency_key,
                    description=item.description,
                    lines=item.lines,
                    effective_at=getattr(item, "effective_at", None),
                    metadata=getattr(item, "metadata", None),
                    reverses_id=getattr(item, "reverses_id", None),
                    recorded_at=recorded_at,
                )
            )
        except InvalidPosting as exc:
            raise _in_batch(exc, index) from exc
    if not prepared:
        return []
    # A key repeated within the batch is a replay of its first posting.
    unique: dict[str, _Posting] = {}
    for posting in prepared:
        first = unique.setdefault(posting.idempotency_key, posting)
        if first is not posting and _line_set(first.lines) != _line_set(posting.lines):
            raise IdempotencyKeyReused(
                f"idempotency key {posting.idempotency_key} is used twice in the batch"
                " with other lines",
                code="ledger_idempotency_key_reused",
            )
    conn = await session.connection()
    try:
        if conn.dialect.name == "postgresql":
            written = await _write_many_postgresql(conn, prepared, list(unique.values()))
        else:
            written = {}
            for posting in unique.values():
                try:
                    written[posting.id] = await _write_portable(session, conn, posting)
                except InvalidPosting as exc:
                    raise _in_batch(exc, prepared.index(posting)) from exc
    except IntegrityError as exc:
        reversed_ids = [p.reverses_id for p in unique.values() if p.reverses_id is not None]
        if reversed_ids and "reverses_id" in str(exc.orig):
            raise AlreadyReversed(
                "a transaction of the batch has already been reversed"
                f" (one of {', '.join(reversed_ids)})"
            ) from exc
        raise
    replays = [p.idempotency_key for p in unique.values() if written.get(p.id) is None]
    existing = await _load_transactions_by_key(conn, replays) if replays else {}
    results: dict[str, LedgerTransaction] = {}
    for key, posting in unique.items():
        account_ids = written.get(posting.id)
        if account_ids is None:
            earlier = existing[key]
            _check_replay(earlier, posting.lines)
            results[key] = earlier
        else:
            results[key] = posting.result(account_ids)
    return [results[posting.idempotency_key] for posting in prepared]


def _in_batch(exc: InvalidPosting, index: int) -> InvalidPosting:
    """The same refusal, saying which posting of a batch it is about."""
    return InvalidPosting(
        f"postings[{index}]: {exc.detail}",
        code=exc.code,
        errors=[
            {**error, "field": f"postings[{index}].{error.get('field', '')}"}
            for error in exc.errors or []
        ]
        or None,
    )


def _line_set(lines: Sequence[Line]) -> list[tuple[str, str, int]]:
    return sorted((line.account, line.currency, line.amount) for line in lines)


@dataclass(frozen=True)
class _Posting:
    id: str
    idempotency_key: str
    description: str
    effective_at: datetime
    recorded_at: datetime
    metadata: dict[str, Any]
    reverses_id: str | None
    lines: Sequence[Line]
    net: dict[tuple[str, str], int]

    def transaction_values(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "description": self.description,
            "effective_at": self.effective_at,
            "recorded_at": self.recorded_at,
            "metadata": self.metadata,
            "reverses_id": self.reverses_id,
        }

    def result(self, written: list[tuple[int, str]]) -> LedgerTransaction:
        """The posted transaction, from the (entry id, account id) written per line."""
        return LedgerTransaction(
            id=self.id,
            idempotency_key=self.idempotency_key,
            description=self.description,
            effective_at=self.effective_at,
            recorded_at=self.recorded_at,
            metadata=self.metadata,
            reverses_id=self.reverses_id,
            entries=tuple(
                LedgerEntry(
                    id=entry_id,
                    transaction_id=self.id,
                    account_id=account_id,
                    account_code=line.account,
                    department=_department_of(line.account),
                    amount=line.amount,
                    currency=line.currency,
                    effective_at=self.effective_at,
                    description=self.description,
                )
                for (entry_id, account_id), line in zip(written, self.lines, strict=True)
            ),
        )


# The whole posting in one round trip: claim the idempotency key; lock the accounts in
# id order (PostgreSQL locks rows as they leave the sort, so concurrent postings always
# queue in the same order and never deadlock); add the deltas to the cached balances;
# insert the entries. Nothing but the claim is written unless every line found its
# account, and the claim alone cannot commit (the deferred balance trigger refuses a
# transaction without entries).
_POSTGRES_POST = text(
    """
WITH line AS (
    SELECT l.code, l.currency, l.amount, l.n
      FROM unnest(CAST(:codes AS text[]), CAST(:currencies AS text[]),
                  CAST(:amounts AS bigint[])) WITH ORDINALITY AS l(code, currency, amount, n)
), claim AS (
    INSERT INTO ledger_transactions
           (id, idempotency_key, description, effective_at, recorded_at, metadata, reverses_id)
    VALUES (:id, :idempotency_key, :description, :effective_at, :recorded_at,
            CAST(:metadata AS json), :reverses_id)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), account AS MATERIALIZED (
    SELECT a.id, a.code, a.currency
      FROM ledger_accounts a
     WHERE a.code = ANY(CAST(:codes AS text[])) AND EXISTS (SELECT FROM claim)
     ORDER BY a.id
       FOR NO KEY UPDATE
), matched AS MATERIALIZED (
    SELECT line.n, line.amount, line.currency, account.id AS account_id
      FROM line JOIN account ON account.code = line.code AND account.currency = line.currency
), complete AS (
    SELECT count(*) = cardinality(CAST(:codes AS text[])) AS ok FROM matched
), balance AS (
    UPDATE ledger_accounts a
       SET balance = a.balance + delta.amount
      FROM (SELECT account_id, sum(amount) AS amount FROM matched GROUP BY account_id) delta
     WHERE a.id = delta.account_id AND (SELECT ok FROM complete)
), entry AS (
    INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, effective_at)
    SELECT claim.id, matched.account_id, matched.amount, matched.currency, :effective_at
      FROM claim, matched
     WHERE (SELECT ok FROM complete)
     ORDER BY matched.n
    RETURNING id, account_id
)
SELECT (SELECT count(*) FROM claim) AS claimed,
       (SELECT ok FROM complete) AS complete,
       (SELECT array_agg(id ORDER BY id) FROM entry) AS entry_ids,
       (SELECT array_agg(account_id ORDER BY id) FROM entry) AS account_ids
"""
).bindparams(
    bindparam("effective_at", type_=UTCDateTime()),
    bindparam("recorded_at", type_=UTCDateTime()),
)


async def _write_postgresql(
    conn: AsyncConnection, posting: _Posting
) -> list[tuple[int, str]] | None:
    """Write the posting in one statement; None when the key was already used."""
    row = (
        await conn.execute(
            _POSTGRES_POST,
            {
                **posting.transaction_values(),
                "metadata": json.dumps(posting.metadata, ensure_ascii=False),
                "codes": [line.account for line in posting.lines],
                "currencies": [line.currency for line in posting.lines],
                "amounts": [line.amount for line in posting.lines],
            },
        )
    ).one()
    if not row.claimed:
        return None
    if not row.complete:
        # Only the error path pays for a second look, to say exactly what is wrong.
        await _resolve_accounts(conn, posting.net)
        raise AssertionError("every account resolved yet the posting did not match them")
    return list(zip(row.entry_ids, row.account_ids, strict=True))


# Many postings in one round trip, the same steps as _POSTGRES_POST over all of them:
# claim the keys (in key order, so two batches sharing keys wait for each other instead
# of deadlocking), then lock the union of the claimed postings' accounts once in id
# order, add each account's summed delta once, and insert every entry. Nothing but the
# claims is written unless every line of every claimed posting found its account.
_POSTGRES_POST_MANY = text(
    """
WITH posting AS (
    SELECT p.id, p.idempotency_key, p.description, p.effective_at, p.metadata, p.reverses_id
      FROM unnest(CAST(:ids AS text[]), CAST(:keys AS text[]), CAST(:descriptions AS text[]),
                  CAST(:effective_ats AS timestamptz[]), CAST(:metadatas AS text[]),
                  CAST(:reverses_ids AS text[]))
           AS p(id, idempotency_key, description, effective_at, metadata, reverses_id)
), line AS (
    SELECT l.transaction_id, l.code, l.currency, l.amount, l.n
      FROM unnest(CAST(:line_transactions AS text[]), CAST(:codes AS text[]),
                  CAST(:currencies AS text[]), CAST(:amounts AS bigint[]))
           WITH ORDINALITY AS l(transaction_id, code, currency, amount, n)
), claim AS (
    INSERT INTO ledger_transactions
           (id, idempotency_key, description, effective_at, recorded_at, metadata, reverses_id)
    SELECT id, idempotency_key, description, effective_at, :recorded_at,
           CAST(metadata AS json), reverses_id
      FROM posting
     ORDER BY idempotency_key
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, effective_at
), claimed_line AS MATERIALIZED (
    SELECT line.transaction_id, line.code, line.currency, line.amount, line.n, claim.effective_at
      FROM line JOIN claim ON claim.id = line.transaction_id
), account AS MATERIALIZED (
    SELECT a.id, a.code, a.currency
      FROM ledger_accounts a
     WHERE a.code = ANY(ARRAY(SELECT DISTINCT code FROM claimed_line))
     ORDER BY a.id
       FOR NO KEY UPDATE
), matched AS MATERIALIZED (
    SELECT l.transaction_id, l.n, l.amount, l.currency, l.effective_at, account.id AS account_id
      FROM claimed_line l JOIN account ON account.code = l.code AND account.currency = l.currency
), complete AS (
    SELECT (SELECT count(*) FROM matched) = (SELECT count(*) FROM claimed_line) AS ok
), balance AS (
    UPDATE ledger_accounts a
       SET balance = a.balance + delta.amount
      FROM (SELECT account_id, sum(amount) AS amount FROM matched GROUP BY account_id) delta
     WHERE a.id = delta.account_id AND (SELECT ok FROM complete)
), entry AS (
    INSERT INTO ledger_entries (transaction_id, account_id, amount, currency, effective_at)
    SELECT transaction_id, account_id, amount, currency, effective_at
      FROM matched
     WHERE (SELECT ok FROM complete)
     ORDER BY n
    RETURNING id, transaction_id, account_id
)
SELECT (SELECT array_agg(id) FROM claim) AS claimed,
       (SELECT ok FROM complete) AS complete,
       (SELECT array_agg(id ORDER BY id) FROM entry) AS entry_ids,
       (SELECT array_agg(transaction_id ORDER BY id) FROM entry) AS transaction_ids,
       (SELECT array_agg(account_id ORDER BY id) FROM entry) AS account_ids
"""
).bindparams(bindparam("recorded_at", type_=UTCDateTime()))


async def _write_many_postgresql(
    conn: AsyncConnection, batch: list[_Posting], postings: list[_Posting]
) -> dict[str, list[tuple[int, str]] | None]:
    """Write `postings` (the batch's, each key once) in one statement; by posting id,
    the (entry id, account id) written per line, or None for a posting whose key was
    already used."""
    lines = [(posting.id, line) for posting in postings for line in posting.lines]
    row = (
        await conn.execute(
            _POSTGRES_POST_MANY,
            {
                "ids": [p.id for p in postings],
                "keys": [p.idempotency_key for p in postings],
                "descriptions": [p.description for p in postings],
                "effective_ats": [p.effective_at for p in postings],
                "metadatas": [json.dumps(p.metadata, ensure_ascii=False) for p in postings],
                "reverses_ids": [p.reverses_id for p in postings],
                "recorded_at": postings[0].recorded_at,
                "line_transactions": [txn_id for txn_id, _ in lines],
                "codes": [line.account for _, line in lines],
                "currencies": [line.currency for _, line in lines],
                "amounts": [line.amount for _, line in lines],
            },
        )
    ).one()
    claimed = set(row.claimed or ())
    if claimed and not row.complete:
        # Only the error path pays for a second look, to say which posting is wrong.
        for posting in postings:
            if posting.id in claimed:
                try:
                    await _resolve_accounts(conn, posting.net)
                except InvalidPosting as exc:
                    raise _in_batch(exc, batch.index(posting)) from exc
        raise AssertionError("every account resolved yet the batch did not match them")
    written: dict[str, list[tuple[int, str]] | None] = {
        p.id: ([] if p.id in claimed else None) for p in postings
    }
    for entry_id, txn_id, account_id in zip(
        row.entry_ids or (), row.transaction_ids or (), row.account_ids or (), strict=True
    ):
        written[txn_id].append((entry_id, account_id))  # type: ignore[union-attr]
    return written


async def _write_portable(
    session: AsyncSession, conn: AsyncConnection, posting: _Posting
) -> list[tuple[int, str]] | None:
    """The same posting in four plain statements (SQLite, where BEGIN IMMEDIATE has
    already serialised writers, so locking order does not arise)."""
    account_ids = await _resolve_accounts(conn, posting.net)
    claim = (
        insert_ignoring_conflicts(session, transactions, ["idempotency_key"])
        .values(**posting.transaction_values())
        .returning(transactions.c.id)
    )
    if (await conn.execute(claim)).first() is None:
        return None
    deltas: dict[str, int] = defaultdict(int)
    for key, amount in posting.net.items():
        deltas[account_ids[key]] += amount
    await conn.execute(
        update(accounts)
        .where(accounts.c.id.in_(sorted(deltas)))
        .values(balance=accounts.c.balance + case(deltas, value=accounts.c.id))
    )
    rows = [
        {
            "transaction_id": posting.id,
            "account_id": account_ids[(line.account, line.currency)],
            "amount": line.amount,
            "currency": line.currency,
            "effective_at": posting.effective_at,
        }
        for line in posting.lines
    ]
    result = await conn.execute(
        insert(entries).returning(entries.c.id, sort_by_parameter_order=True), rows
    )
    return [
        (entry_id, row["account_id"]) for entry_id, row in zip(result.scalars(), rows, strict=True)
    ]


def _department_of(code: str) -> str | None:
    prefix, _, rest = code.partition(":")
    return rest.partition(":")[0] if prefix == "dept" else None


async def _resolve_accounts(
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


def _check_replay(existing: LedgerTransaction, lines: Sequence[Line]) -> None:
    posted = sorted((e.account_code, e.currency, e.amount) for e in existing.entries)
    if posted != _line_set(lines):
        raise IdempotencyKeyReused(
            f"ledger transaction {existing.id} was posted with this key and other lines",
            code="ledger_idempotency_key_reused",
        )


async def reverse_transaction(
    session: AsyncSession, transaction_id: str, *, idempotency_key: str, description: str
) -> LedgerTransaction:
    """Post the mirror image of a transaction (the ledger's only correction).

    Each transaction can be reversed once (AlreadyReversed otherwise); repeating the call
    with the same idempotency key returns the reversal again.
    """
    conn = await session.connection()
    original = await _load_transaction(conn, transactions.c.id == transaction_id)
    if original is None:
        raise NotFound(f"no ledger transaction {transaction_id}", code="transaction_not_found")
    earlier = (
        await conn.execute(
            select(transactions.c.idempotency_key).where(
                transactions.c.reverses_id == transaction_id
            )
        )
    ).scalar_one_or_none()
    if earlier is not None and earlier != idempotency_key:
        raise AlreadyReversed(f"transaction {transaction_id} has already been reversed")
    return await post_transaction(
        session,
        idempotency_key=idempotency_key,
        description=description,
        lines=[Line(e.account_code, -e.amount, e.currency) for e in original.entries],
        metadata={**original.metadata, "reverses": transaction_id},
        reverses_id=transaction_id,
    )


# --- reading ---------------------------------------------------------------------------


def _visible(scope: Scope) -> Any:
    """The accounts a reader with `scope` may see (platform accounts only with None)."""
    if scope is None:
        return true()
    return accounts.c.department.in_(list(scope))


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
    if cursor:
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


async def _load_transaction(
    conn: AsyncConnection | AsyncSession, where: Any, scope: Scope = None
) -> LedgerTransaction | None:
    found = await _load_transactions(conn, where, scope)
    return found[0] if found else None


async def _load_transactions_by_key(
    conn: AsyncConnection, keys: Sequence[str]
) -> dict[str, LedgerTransaction]:
    """The transactions recorded under `keys`, with their entries, in two queries."""
    found = await _load_transactions(conn, transactions.c.idempotency_key.in_(keys))
    return {txn.idempotency_key: txn for txn in found}


async def _load_transactions(
    conn: AsyncConnection | AsyncSession, where: Any, scope: Scope = None
) -> list[LedgerTransaction]:
    """The transactions matching `where`, each with its entries (those `scope` may see),
    in two queries."""
    txns = (await conn.execute(select(transactions).where(where))).all()
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
        )
        for txn in txns
    ]


async def transaction_for_key(session: AsyncSession, idempotency_key: str) -> LedgerTransaction:
    """The transaction posted under `idempotency_key` (NotFound if none was)."""
    txn = await _load_transaction(session, transactions.c.idempotency_key == idempotency_key)
    if txn is None:
        raise NotFound(f"no ledger transaction for {idempotency_key}", code="transaction_not_found")
    return txn


async def get_transaction(
    session: AsyncSession, transaction_id: str, *, scope: Scope = None
) -> LedgerTransaction:
    """A transaction with its entries. A reader with a limited `scope` gets only the
    entries on accounts it may see, and NotFound when there are none."""
    txn = await _load_transaction(session, transactions.c.id == transaction_id, scope)
    if txn is None or (scope is not None and not txn.entries):
        raise NotFound(f"no ledger transaction {transaction_id}", code="transaction_not_found")
    return txn


async def trial_balance(
    session: AsyncSession, *, as_of: datetime | None = None, scope: Scope = None
) -> TrialBalance:
    """Debits and credits per account over entries effective up to `as_of` (default now).

    Over every account (scope None) total_debits == total_credits; a limited scope
    covers only its departments' accounts and says so in `departments`.
    """
    as_of = as_of or utcnow()
    if as_of.tzinfo is None:
        raise ValidationFailed("as_of must carry a UTC offset", code="invalid_as_of")
    debits = func.coalesce(func.sum(case((entries.c.amount > 0, entries.c.amount))), 0)
    credits = func.coalesce(func.sum(case((entries.c.amount < 0, -entries.c.amount))), 0)
    stmt = (
        select(
            accounts.c.id,
            accounts.c.code,
            accounts.c.department,
            accounts.c.currency,
            debits.label("debits"),
            credits.label("credits"),
        )
        .join(entries, entries.c.account_id == accounts.c.id)
        .where(entries.c.effective_at <= as_of, _visible(scope))
        .group_by(accounts.c.id, accounts.c.code, accounts.c.department, accounts.c.currency)
        .order_by(accounts.c.code, accounts.c.currency)
    )
    lines = [
        TrialBalanceLine(
            account_id=row.id,
            code=row.code,
            department=row.department,
            currency=row.currency,
            debits=int(row.debits),
            credits=int(row.credits),
        )
        for row in await session.execute(stmt)
    ]
    return TrialBalance(
        as_of=as_of,
        lines=lines,
        total_debits=sum(line.debits for line in lines),
        total_credits=sum(line.credits for line in lines),
        departments=None if scope is None else tuple(sorted(scope)),
    )


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
