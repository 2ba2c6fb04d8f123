"""`/api/v1/reconciliation/runs` and `/exceptions`: reconciliation runs, the exceptions
queue, and resolving it (finance or admin keys).

A finance key bound to departments runs, reads and resolves only its departments'
payments and refunds: a run needs its `department`, and runs and exceptions of other
departments — and the platform-wide ones (payouts, bank lines) — are a 404 to it,
never a hint that they exist. Keys for all departments and admin keys see everything.
Every run and resolution records who did it (`key:<api key id>`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import Parameter
from litestar.response import Response
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from msgspec import Meta, Struct
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.periods import check_day, check_scope
from ledger.queries import require_department
from ledger.reconciliation import exceptions as queue
from ledger.reconciliation import runs
from onetrip.auth import Principal, finance_key
from onetrip.db import get_database, unit_of_work
from onetrip.errors import Forbidden
from onetrip.idempotency import IdempotencyKey, idempotent_response
from onetrip.openapi import documented
from onetrip.pagination import MAX_LIMIT, check_limit

Department = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
Limit = Parameter(ge=1, le=MAX_LIMIT, required=False, description=f"1..{MAX_LIMIT}, default 50")
Cursor = Parameter(required=False, description="next_cursor of the previous page")


# --- request and response shapes ---------------------------------------------------------


class RunIn(Struct, forbid_unknown_fields=True):
    date_from: date  # first day (UTC) of the range, inclusive
    date_to: date  # last day, inclusive; at most 366 days after date_from
    department: Department | None = None  # none: everything, payouts and bank lines too
    dry_run: bool = False  # compute and report; write no match and no exception


class RuleOut(Struct):
    name: str
    tolerance: int  # minor units the amounts may differ by (0: exactly)
    window_days: int  # days either side the dates may differ by
    score: int  # the score of a perfect pair under the rule
    description: str


class PayoutTotalsOut(Struct):
    """A payout's control totals: gross − fees − refunds − disputes + other = net."""

    payout_id: str
    currency: str
    gross: int
    fees: int
    refunds: int
    disputes: int
    other: int
    net: int
    transactions: int
    payout_amount: int | None  # the payout's own balance transaction, if imported
    balanced: bool


class RunOut(Struct):
    id: str
    department: str | None
    date_from: date
    date_to: date
    dry_run: bool
    status: str  # completed
    matched: int  # pairs matched over the range (this run's and earlier ones)
    unmatched_ledger: int  # open: missing_in_stripe + missing_in_bank
    unmatched_external: int  # open: missing_in_ledger
    discrepancies: int  # open: amount_differs, outside_date_window, duplicate, ambiguous
    new_matches: int  # made by this run (a dry run: what it would have made)
    new_exceptions: int
    by_reason: dict[str, int]  # open exceptions over the range, per reason
    rules: list[RuleOut]
    payouts: list[PayoutTotalsOut]  # payouts arriving in the range (runs without department)
    started_by: str
    started_at: datetime
    finished_at: datetime | None


class RunPage(Struct):
    data: list[RunOut]
    next_cursor: str | None


class CandidateOut(Struct):
    kind: str  # ledger | stripe | bank | payout
    id: str
    amount: int
    currency: str
    on_date: str
    score: int
    reason: str


class ExceptionOut(Struct):
    id: str
    run_id: str  # the run that found it
    reason: str  # missing_in_bank | missing_in_ledger | missing_in_stripe | amount_differs
    # | outside_date_window | duplicate | ambiguous
    status: str  # open | resolved
    item_kind: str  # ledger | stripe | bank | payout
    item_id: str
    department: str | None
    currency: str
    amount: int
    counterpart_amount: int | None
    on_date: date
    detail: str
    candidates: list[CandidateOut]
    created_at: datetime
    resolution: str | None  # match | adjust | accept | matched (by a later run)
    resolution_reason: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    adjustment_id: str | None  # the correcting ledger transaction of an adjust


class ExceptionPage(Struct):
    data: list[ExceptionOut]
    next_cursor: str | None


ItemId = Annotated[str, Meta(min_length=1, max_length=100)]


class ResolveIn(Struct, forbid_unknown_fields=True):
    action: Literal["match", "adjust", "accept"]
    reason: Annotated[str, Meta(min_length=1, max_length=500)]  # kept with the resolution
    # match: ledger transaction or payout ids (for an external record), or one record id
    match_with: Annotated[list[ItemId], Meta(max_length=20)] | None = None


def run_out(view: runs.RunView) -> RunOut:
    return RunOut(
        id=view.id,
        department=view.department,
        date_from=view.date_from,
        date_to=view.date_to,
        dry_run=view.dry_run,
        status=view.status,
        matched=view.matched,
        unmatched_ledger=view.unmatched_ledger,
        unmatched_external=view.unmatched_external,
        discrepancies=view.discrepancies,
        new_matches=view.new_matches,
        new_exceptions=view.new_exceptions,
        by_reason=view.by_reason,
        rules=[RuleOut(**rule) for rule in view.rules],
        payouts=[PayoutTotalsOut(**payout) for payout in view.payouts],
        started_by=view.started_by,
        started_at=view.started_at,
        finished_at=view.finished_at,
    )


def exception_out(view: queue.ExceptionView) -> ExceptionOut:
    return ExceptionOut(
        id=view.id,
        run_id=view.run_id,
        reason=view.reason,
        status=view.status,
        item_kind=view.item_kind,
        item_id=view.item_id,
        department=view.department,
        currency=view.currency,
        amount=view.amount,
        counterpart_amount=view.counterpart_amount,
        on_date=view.on_date,
        detail=view.detail,
        candidates=[CandidateOut(**candidate) for candidate in view.candidates],
        created_at=view.created_at,
        resolution=view.resolution,
        resolution_reason=view.resolution_reason,
        resolved_by=view.resolved_by,
        resolved_at=view.resolved_at,
        adjustment_id=view.adjustment_id,
    )


def scope_of(principal: Principal) -> list[str] | None:
    return None if principal.sees_department(None) else list(principal.departments)


def who(principal: Principal) -> str:
    return f"key:{principal.key_id}"


def _exception_page(items: list[queue.ExceptionView], limit: int | None) -> ExceptionPage:
    size = check_limit(limit)
    more = len(items) > size
    items = items[:size]
    return ExceptionPage(
        data=[exception_out(item) for item in items],
        next_cursor=items[-1].id if more and items else None,
    )


RUN_EXAMPLE = {
    "id": "recrun_01jf3k2m9q8w7e6r5t4y3u2i1o",
    "department": None,
    "date_from": "2026-11-01",
    "date_to": "2026-11-30",
    "dry_run": False,
    "status": "completed",
    "matched": 56,
    "unmatched_ledger": 1,
    "unmatched_external": 0,
    "discrepancies": 2,
    "new_matches": 56,
    "new_exceptions": 3,
    "by_reason": {"amount_differs": 1, "duplicate": 1, "missing_in_bank": 1},
    "rules": [
        {
            "name": "bank_amount",
            "tolerance": 100,
            "window_days": 3,
            "score": 80,
            "description": "the only payout within the tolerance and the date window",
        }
    ],
    "payouts": [
        {
            "payout_id": "po_1QnovP1a2b3c4d5e",
            "currency": "CNY",
            "gross": 868014,
            "fees": 34552,
            "refunds": 12000,
            "disputes": 0,
            "other": 0,
            "net": 821462,
            "transactions": 29,
            "payout_amount": None,
            "balanced": True,
        }
    ],
    "started_by": "key:3f9a1c0e5b7d2a48",
    "started_at": "2026-12-01T02:15:00Z",
    "finished_at": "2026-12-01T02:15:01Z",
}
EXCEPTION_EXAMPLE = {
    "id": "recexc_01jf3k2m9q8w7e6r5t4y3u2i1o",
    "run_id": "recrun_01jf3k2m9q8w7e6r5t4y3u2i1o",
    "reason": "amount_differs",
    "status": "open",
    "item_kind": "bank",
    "item_id": "rec_01jf3k2m9q8w7e6r5t4y3u2i1p",
    "department": None,
    "currency": "CNY",
    "amount": 821461,
    "counterpart_amount": 821462,
    "on_date": "2026-11-16",
    "detail": "bank_reference: 821461 against 821462 of po_1QnovP1a2b3c4d5e (-1)",
    "candidates": [
        {
            "kind": "payout",
            "id": "po_1QnovP1a2b3c4d5e",
            "amount": 821462,
            "currency": "CNY",
            "on_date": "2026-11-16",
            "score": 99,
            "reason": "bank_reference: amounts differ by -1, 0 day(s) apart",
        }
    ],
    "created_at": "2026-12-01T02:15:01Z",
    "resolution": None,
    "resolution_reason": None,
    "resolved_by": None,
    "resolved_at": None,
    "adjustment_id": None,
}

NOT_VISIBLE = ["department_not_allowed"]
RESOLVE_ERRORS = [
    "invalid_action",
    "reason_required",
    "match_with_required",
    "match_with_not_found",
    "adjust_not_applicable",
    "amounts_differ",
    "payout_currency_differs",
    "payout_amount_differs",
]


class ReconciliationRunsController(Controller):
    path = "/api/v1/reconciliation"
    tags = ["finance"]
    dependencies = {"principal": Provide(finance_key)}

    @post(
        "/runs",
        summary="Reconcile a range of dates (a dry run reports without writing)",
        status_code=HTTP_201_CREATED,
        opt=documented(
            errors={
                403: NOT_VISIBLE,
                404: ["department_not_found", "payout_not_booked", "bank_record_not_found"],
                409: ["payout_already_arrived", "period_closed"],
                422: [
                    "invalid_date",
                    "invalid_date_range",
                    "payout_currency_differs",
                    "payout_amount_differs",
                ],
            },
            idempotency_key="optional",
            request_example={"date_from": "2026-11-01", "date_to": "2026-11-30"},
            response_example=RUN_EXAMPLE,
        ),
    )
    async def create_run(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        data: RunIn,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RunOut]:
        scope = scope_of(principal)
        if scope is not None and (data.department is None or data.department not in scope):
            raise Forbidden(
                "this key covers only its departments: run with one of "
                f"{', '.join(scope)} as department",
                code="department_not_allowed",
            )

        check_day(data.date_from, "date_from")
        check_day(data.date_to, "date_to")

        async def operation(session: AsyncSession) -> RunOut:
            if data.department is not None:
                await require_department(session, data.department)
            view = await runs.run(
                session,
                date_from=data.date_from,
                date_to=data.date_to,
                department=data.department,
                dry_run=data.dry_run,
                started_by=who(principal),
            )
            return run_out(view)

        if idempotency_key is not None:
            return await idempotent_response(
                request, principal.key_id, idempotency_key, operation, HTTP_201_CREATED
            )
        async with unit_of_work() as session:
            body = await operation(session)
        return Response(body, status_code=HTTP_201_CREATED)

    @get(
        "/runs",
        summary="Reconciliation runs the key may see, newest first",
        opt=documented(errors={422: ["invalid_limit"]}),
    )
    async def list_runs(
        self, principal: Principal, limit: int | None = Limit, cursor: str | None = Cursor
    ) -> RunPage:
        async with get_database().session() as session:
            found = await runs.list_runs(
                session, scope=scope_of(principal), cursor=cursor, limit=limit
            )
        size = check_limit(limit)
        more = len(found) > size
        found = found[:size]
        return RunPage(
            data=[run_out(view) for view in found],
            next_cursor=found[-1].id if more and found else None,
        )

    @get(
        "/runs/{run_id:str}",
        summary="One reconciliation run: who, when, the rules, and what it found",
        opt=documented(errors={404: ["run_not_found"]}, response_example=RUN_EXAMPLE),
    )
    async def get_run(self, principal: Principal, run_id: str) -> RunOut:
        async with get_database().session() as session:
            return run_out(await runs.get_run(session, run_id, scope=scope_of(principal)))

    @get(
        "/runs/{run_id:str}/exceptions",
        summary="The exceptions a run found, newest first",
        opt=documented(errors={404: ["run_not_found"], 422: ["invalid_limit"]}),
    )
    async def run_exceptions(
        self,
        principal: Principal,
        run_id: str,
        limit: int | None = Limit,
        cursor: str | None = Cursor,
    ) -> ExceptionPage:
        scope = scope_of(principal)
        async with get_database().session() as session:
            await runs.get_run(session, run_id, scope=scope)
            items = await queue.list_exceptions(
                session, scope=scope, run_id=run_id, cursor=cursor, limit=limit
            )
        return _exception_page(items, limit)

    @get(
        "/exceptions",
        summary="The exceptions queue, newest first (status=open: what is left to resolve)",
        opt=documented(
            errors={
                403: NOT_VISIBLE,
                404: ["department_not_found"],
                422: ["invalid_status", "invalid_reason", "invalid_limit"],
            },
            response_example={"data": [EXCEPTION_EXAMPLE], "next_cursor": None},
        ),
    )
    async def list_exceptions(
        self,
        principal: Principal,
        status: str | None = Parameter(required=False, description="open | resolved"),
        department: str | None = Parameter(required=False, max_length=32),
        reason: str | None = Parameter(required=False, description="a reason code"),
        limit: int | None = Limit,
        cursor: str | None = Cursor,
    ) -> ExceptionPage:
        scope = scope_of(principal)
        async with get_database().session() as session:
            if department is not None:
                check_scope(department, scope)  # before the lookup: no hint it exists
                await require_department(session, department)
            items = await queue.list_exceptions(
                session,
                scope=scope,
                status=status,
                department=department,
                reason=reason,
                cursor=cursor,
                limit=limit,
            )
        return _exception_page(items, limit)

    @get(
        "/exceptions/{exception_id:str}",
        summary="One exception: the item, the reason, the candidates, and its resolution",
        opt=documented(errors={404: ["exception_not_found"]}, response_example=EXCEPTION_EXAMPLE),
    )
    async def get_exception(self, principal: Principal, exception_id: str) -> ExceptionOut:
        async with get_database().session() as session:
            view = await queue.get_exception(session, exception_id, scope=scope_of(principal))
        return exception_out(view)

    @post(
        "/exceptions/{exception_id:str}/resolve",
        summary="Resolve an exception: match by hand, adjust through suspense, or accept",
        status_code=HTTP_200_OK,
        opt=documented(
            errors={
                404: ["exception_not_found", "payout_not_booked", "bank_record_not_found"],
                409: [
                    "exception_already_resolved",
                    "already_matched",
                    "payout_already_arrived",
                    "period_closed",
                ],
                422: RESOLVE_ERRORS,
            },
            idempotency_key="required",
            request_example={
                "action": "adjust",
                "reason": "建设银行少入账 0.01 元，已去函核实，差额暂挂待查",
            },
            response_example={
                **EXCEPTION_EXAMPLE,
                "status": "resolved",
                "resolution": "adjust",
                "resolution_reason": "建设银行少入账 0.01 元，已去函核实，差额暂挂待查",
                "resolved_by": "key:3f9a1c0e5b7d2a48",
                "resolved_at": "2026-12-01T03:00:00Z",
                "adjustment_id": "txn_01jf3k2m9q8w7e6r5t4y3u2i1q",
            },
        ),
    )
    async def resolve(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        exception_id: str,
        data: ResolveIn,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[ExceptionOut]:
        async def operation(session: AsyncSession) -> ExceptionOut:
            view = await queue.resolve(
                session,
                exception_id,
                action=data.action,
                reason=data.reason,
                match_with=data.match_with,
                resolved_by=who(principal),
                scope=scope_of(principal),
            )
            return exception_out(view)

        return await idempotent_response(
            request, principal.key_id, idempotency_key, operation, HTTP_200_OK
        )


routes: list[Any] = [ReconciliationRunsController]
