"""How validated postings reach the tables: the PostgreSQL and portable write paths.

On PostgreSQL a posting is one SQLAlchemy Core statement (one round trip) that locks the
accounts it touches in id order, so concurrent postings never deadlock and cached
balances always equal the sum of entries; on SQLite, where BEGIN IMMEDIATE serialises
writers, it is four plain ones. A batch is one such statement over many postings.

Every column of ledger_transactions is written here three times (two raw SQL statements
and the portable insert): a new column must be added to all three.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ledger.accounts import department_of, resolve_accounts
from ledger.models import accounts, entries, transactions
from ledger.types import InvalidPosting, LedgerEntry, LedgerTransaction, Line
from onetrip.db import UTCDateTime, insert_ignoring_conflicts


@dataclass(frozen=True)
class PreparedPosting:
    """A validated posting, normalised for writing (see journal.prepare)."""

    id: str
    idempotency_key: str
    description: str
    effective_at: datetime
    recorded_at: datetime
    metadata: dict[str, Any]
    reverses_id: str | None
    external_ref: str | None
    external_source: str | None
    lines: Sequence[Line]
    net: dict[tuple[str, str], int]
    corrects_id: str | None = None  # issue 10: the transaction this one corrects

    def transaction_values(self) -> dict[str, Any]:
        """The ledger_transactions row."""
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "description": self.description,
            "effective_at": self.effective_at,
            "recorded_at": self.recorded_at,
            "metadata": self.metadata,
            "reverses_id": self.reverses_id,
            "external_ref": self.external_ref,
            "external_source": self.external_source,
            "corrects_id": self.corrects_id,
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
                    department=department_of(line.account),
                    amount=line.amount,
                    currency=line.currency,
                    effective_at=self.effective_at,
                    description=self.description,
                )
                for (entry_id, account_id), line in zip(written, self.lines, strict=True)
            ),
            external_ref=self.external_ref,
            external_source=self.external_source,
            corrects_id=self.corrects_id,
        )


def in_batch(exc: InvalidPosting, index: int) -> InvalidPosting:
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
           (id, idempotency_key, description, effective_at, recorded_at, metadata, reverses_id,
            external_ref, external_source, corrects_id)
    VALUES (:id, :idempotency_key, :description, :effective_at, :recorded_at,
            CAST(:metadata AS json), :reverses_id, :external_ref, :external_source,
            :corrects_id)
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


async def write_postgresql(
    conn: AsyncConnection, posting: PreparedPosting
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
        await resolve_accounts(conn, posting.net)
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
    SELECT p.id, p.idempotency_key, p.description, p.effective_at, p.metadata, p.reverses_id,
           p.external_ref, p.external_source, p.corrects_id
      FROM unnest(CAST(:ids AS text[]), CAST(:keys AS text[]), CAST(:descriptions AS text[]),
                  CAST(:effective_ats AS timestamptz[]), CAST(:metadatas AS text[]),
                  CAST(:reverses_ids AS text[]), CAST(:external_refs AS text[]),
                  CAST(:external_sources AS text[]), CAST(:corrects_ids AS text[]))
           AS p(id, idempotency_key, description, effective_at, metadata, reverses_id,
                external_ref, external_source, corrects_id)
), line AS (
    SELECT l.transaction_id, l.code, l.currency, l.amount, l.n
      FROM unnest(CAST(:line_transactions AS text[]), CAST(:codes AS text[]),
                  CAST(:currencies AS text[]), CAST(:amounts AS bigint[]))
           WITH ORDINALITY AS l(transaction_id, code, currency, amount, n)
), claim AS (
    INSERT INTO ledger_transactions
           (id, idempotency_key, description, effective_at, recorded_at, metadata, reverses_id,
            external_ref, external_source, corrects_id)
    SELECT id, idempotency_key, description, effective_at, :recorded_at,
           CAST(metadata AS json), reverses_id, external_ref, external_source, corrects_id
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


async def write_many_postgresql(
    conn: AsyncConnection, batch: list[PreparedPosting], postings: list[PreparedPosting]
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
                "external_refs": [p.external_ref for p in postings],
                "external_sources": [p.external_source for p in postings],
                "corrects_ids": [p.corrects_id for p in postings],
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
                    await resolve_accounts(conn, posting.net)
                except InvalidPosting as exc:
                    raise in_batch(exc, batch.index(posting)) from exc
        raise AssertionError("every account resolved yet the batch did not match them")
    written: dict[str, list[tuple[int, str]] | None] = {
        p.id: ([] if p.id in claimed else None) for p in postings
    }
    for entry_id, txn_id, account_id in zip(
        row.entry_ids or (), row.transaction_ids or (), row.account_ids or (), strict=True
    ):
        written[txn_id].append((entry_id, account_id))  # type: ignore[union-attr]
    return written


async def write_portable(
    session: AsyncSession, conn: AsyncConnection, posting: PreparedPosting
) -> list[tuple[int, str]] | None:
    """The same posting in four plain statements (SQLite, where BEGIN IMMEDIATE has
    already serialised writers, so locking order does not arise)."""
    account_ids = await resolve_accounts(conn, posting.net)
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
