"""`/api/v1/ledger/periods`: closing a department's day or month (finance keys for that
department, or admin keys), and listing what is closed.

Once closed, postings effective inside the period on the department's accounts are
refused with 409 `period_closed` (ledger/periods.py); corrections post in an open
period with `corrects_id`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED
from msgspec import Meta, Struct

from ledger import periods
from ledger.api import scope_of
from onetrip.auth import Principal, finance_key
from onetrip.db import get_database, unit_of_work
from onetrip.openapi import documented
from onetrip.pagination import MAX_LIMIT

DepartmentCode = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class PeriodIn(Struct, forbid_unknown_fields=True):
    department: DepartmentCode
    # "YYYY-MM" closes a month, "YYYY-MM-DD" a day, in the department's timezone.
    period: Annotated[str, Meta(min_length=7, max_length=10)]


class PeriodOut(Struct):
    id: str
    department: str
    period: str  # "2026-11" or "2026-11-30"
    kind: str  # month | day
    timezone: str  # the department's, whose midnights bound the period
    starts_at: datetime  # first instant inside (UTC)
    ends_at: datetime  # first instant after (UTC)
    closed_by: str  # "key:<api key id>" or "cli:<operator>"
    closed_at: datetime


class PeriodPage(Struct):
    data: list[PeriodOut]
    next_cursor: str | None


PERIOD_EXAMPLE = {
    "id": "lper_01JDX4ZQ8T0000000000000000",
    "department": "PSB",
    "period": "2026-11",
    "kind": "month",
    "timezone": "Asia/Shanghai",
    "starts_at": "2026-10-31T16:00:00Z",
    "ends_at": "2026-11-30T16:00:00Z",
    "closed_by": "key:3f9a1c0e5b7d2a48",
    "closed_at": "2026-12-01T02:00:00Z",
}


def period_out(found: periods.ClosedPeriod) -> PeriodOut:
    return PeriodOut(
        id=found.id,
        department=found.department,
        period=found.period,
        kind=found.kind,
        timezone=found.timezone,
        starts_at=found.starts_at,
        ends_at=found.ends_at,
        closed_by=found.closed_by,
        closed_at=found.closed_at,
    )


class PeriodsController(Controller):
    path = "/api/v1/ledger/periods"
    tags = ["finance"]
    dependencies = {"principal": Provide(finance_key)}

    @post(
        "/",
        summary="Close a department's month or day (closing it again returns it unchanged)",
        status_code=HTTP_201_CREATED,
        opt=documented(
            errors={
                403: ["department_not_allowed"],
                404: ["department_not_found"],
                409: ["period_already_closed"],
                422: ["invalid_period", "period_not_ended"],
            },
            request_example={"department": "PSB", "period": "2026-11"},
            response_example=PERIOD_EXAMPLE,
        ),
    )
    async def close_period(self, principal: Principal, data: PeriodIn) -> PeriodOut:
        async with unit_of_work() as session:
            closed, _ = await periods.close_period(
                session,
                department=data.department,
                period=data.period,
                closed_by=f"key:{principal.key_id}",
                scope=scope_of(principal),
            )
        return period_out(closed)

    @get(
        "/",
        summary="Closed periods, most recently closed first",
        opt=documented(errors={403: ["department_not_allowed"], 404: ["department_not_found"]}),
    )
    async def list_periods(
        self,
        principal: Principal,
        department: str | None = Parameter(required=False, max_length=32),
        limit: int | None = Parameter(
            ge=1, le=MAX_LIMIT, required=False, description=f"1..{MAX_LIMIT}, default 50"
        ),
        cursor: str | None = Parameter(
            required=False, description="next_cursor of the previous page"
        ),
    ) -> PeriodPage:
        async with get_database().session() as session:
            items, next_cursor = await periods.list_periods(
                session,
                scope=scope_of(principal),
                department=department,
                cursor=cursor,
                limit=limit,
            )
        return PeriodPage(data=[period_out(p) for p in items], next_cursor=next_cursor)


routes: list[Any] = [PeriodsController]
