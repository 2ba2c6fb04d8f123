"""Finance's read-only view of the ledger (finance or admin keys).

A finance key bound to departments sees only their accounts: anything else is a 404,
never a hint that it exists. Platform accounts are for all-department keys and admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import Parameter

from ledger import service
from ledger.schemas import (
    AccountOut,
    AccountPage,
    EntryOut,
    EntryPage,
    TransactionEntryOut,
    TransactionOut,
    TrialBalanceLineOut,
    TrialBalanceOut,
)
from onetrip.auth import Principal, finance_key
from onetrip.clock import in_utc
from onetrip.db import get_database
from onetrip.errors import ValidationFailed
from onetrip.openapi import documented
from onetrip.pagination import MAX_LIMIT

Limit = Parameter(ge=1, le=MAX_LIMIT, required=False, description=f"1..{MAX_LIMIT}, default 50")
Cursor = Parameter(required=False, description="next_cursor of the previous page")


def scope_of(principal: Principal) -> service.Scope:
    """None for keys that see everything, else the departments the key is bound to."""
    return None if principal.sees_department(None) else principal.departments


def parse_as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        as_of = in_utc(datetime.fromisoformat(value))
    except ValueError:
        as_of = None
    if as_of is None:
        raise ValidationFailed(
            "as_of must be an RFC 3339 timestamp with an offset, e.g. 2025-06-30T16:00:00Z",
            code="invalid_as_of",
            errors=[{"field": "as_of", "message": "must be an RFC 3339 timestamp"}],
        )
    return as_of


def account_out(account: service.LedgerAccount) -> AccountOut:
    return AccountOut(
        id=account.id,
        code=account.code,
        name=account.name,
        department=account.department,
        currency=account.currency,
        balance=account.balance,
        kind=account.kind,
        created_at=account.created_at,
    )


class LedgerController(Controller):
    path = "/api/v1/ledger"
    tags = ["finance"]
    dependencies = {"principal": Provide(finance_key)}

    @get(
        "/accounts",
        summary="Ledger accounts the key may see, newest first",
        opt=documented(errors={403: ["department_not_allowed"]}),
    )
    async def list_accounts(
        self,
        principal: Principal,
        department: str | None = Parameter(required=False, max_length=32),
        limit: int | None = Limit,
        cursor: str | None = Cursor,
    ) -> AccountPage:
        async with get_database().session() as session:
            page = await service.list_accounts(
                session,
                scope=scope_of(principal),
                department=department,
                cursor=cursor,
                limit=limit,
            )
        return AccountPage(data=[account_out(a) for a in page.items], next_cursor=page.next_cursor)

    @get(
        "/accounts/{account_id:str}",
        summary="One ledger account and its balance",
        opt=documented(errors={404: ["account_not_found"]}),
    )
    async def get_account(self, principal: Principal, account_id: str) -> AccountOut:
        async with get_database().session() as session:
            account = await service.get_account(session, account_id, scope=scope_of(principal))
        return account_out(account)

    @get(
        "/accounts/{account_id:str}/entries",
        summary="An account's entries, newest first",
        opt=documented(errors={404: ["account_not_found"]}),
    )
    async def list_entries(
        self,
        principal: Principal,
        account_id: str,
        limit: int | None = Limit,
        cursor: str | None = Cursor,
    ) -> EntryPage:
        async with get_database().session() as session:
            page = await service.list_entries(
                session, account_id, scope=scope_of(principal), cursor=cursor, limit=limit
            )
        return EntryPage(
            data=[
                EntryOut(
                    id=e.id,
                    transaction_id=e.transaction_id,
                    account_id=e.account_id,
                    amount=e.amount,
                    currency=e.currency,
                    effective_at=e.effective_at,
                    description=e.description,
                )
                for e in page.items
            ],
            next_cursor=page.next_cursor,
        )

    @get(
        "/transactions/{transaction_id:str}",
        summary="A ledger transaction and its entries",
        opt=documented(errors={404: ["transaction_not_found"]}),
    )
    async def get_transaction(self, principal: Principal, transaction_id: str) -> TransactionOut:
        scope = scope_of(principal)
        async with get_database().session() as session:
            txn = await service.get_transaction(session, transaction_id, scope=scope)
        return TransactionOut(
            id=txn.id,
            description=txn.description,
            effective_at=txn.effective_at,
            recorded_at=txn.recorded_at,
            metadata=txn.metadata,
            reverses_id=txn.reverses_id,
            corrects_id=txn.corrects_id,
            entries=[
                TransactionEntryOut(
                    id=e.id,
                    account_id=e.account_id,
                    code=e.account_code,
                    department=e.department,
                    amount=e.amount,
                    currency=e.currency,
                )
                for e in txn.entries
            ],
            departments=None if scope is None else sorted(scope),
        )

    @get(
        "/trial-balance",
        summary="Debits and credits per account as of a time",
        opt=documented(errors={422: ["invalid_as_of"]}),
    )
    async def trial_balance(
        self,
        principal: Principal,
        as_of: str | None = Parameter(
            required=False, description="RFC 3339 timestamp; default now"
        ),
    ) -> TrialBalanceOut:
        moment = parse_as_of(as_of)
        async with get_database().session() as session:
            report = await service.trial_balance(session, as_of=moment, scope=scope_of(principal))
        return TrialBalanceOut(
            as_of=report.as_of,
            lines=[
                TrialBalanceLineOut(
                    account_id=line.account_id,
                    code=line.code,
                    department=line.department,
                    currency=line.currency,
                    debits=line.debits,
                    credits=line.credits,
                )
                for line in report.lines
            ],
            total_debits=report.total_debits,
            total_credits=report.total_credits,
            departments=None if report.departments is None else list(report.departments),
        )


routes: list[Any] = [LedgerController]
