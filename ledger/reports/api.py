"""`GET /api/v1/reports/settlement`: a department's settlement over local dates, as JSON
(minor units, like the whole API) or as a CSV, XLSX or PDF file — every format from the
same SettlementReport (finance keys for that department, or admin keys)."""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Controller, Response, get
from litestar.di import Provide
from litestar.params import Parameter

from ledger.api import scope_of
from ledger.reports.formats import MEDIA_TYPES, file_name, render
from ledger.reports.schemas import SETTLEMENT_SCHEMA
from ledger.reports.settlement import build_settlement
from onetrip.auth import Principal, finance_key
from onetrip.db import get_database
from onetrip.errors import ValidationFailed
from onetrip.openapi import documented


def _date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            f"{name} must be a date like 2026-11-01",
            code="invalid_date",
            errors=[{"field": name, "message": "must be YYYY-MM-DD"}],
        ) from None


class ReportsController(Controller):
    path = "/api/v1/reports"
    tags = ["finance"]
    dependencies = {"principal": Provide(finance_key)}

    @get(
        "/settlement",
        summary="A department's settlement over a period (JSON, CSV, XLSX or PDF)",
        opt=documented(
            errors={
                403: ["department_not_allowed"],
                404: ["department_not_found"],
                422: [
                    "report_parameter_required",
                    "invalid_date",
                    "invalid_report_period",
                    "invalid_format",
                    "invalid_currency",
                    "currency_required",
                ],
            },
            response_content={
                "application/json": SETTLEMENT_SCHEMA,
                "text/csv": {"type": "string"},
                MEDIA_TYPES["xlsx"]: {"type": "string", "format": "binary"},
                "application/pdf": {"type": "string", "format": "binary"},
            },
        ),
    )
    async def settlement(
        self,
        principal: Principal,
        # Required, but checked here rather than by the framework: a caller without a
        # key hears 401 first, never which parameters are missing.
        department: str | None = Parameter(
            required=False, min_length=1, max_length=32, description="required"
        ),
        date_from: str | None = Parameter(
            required=False, description="required: the first day, in the department's timezone"
        ),
        date_to: str | None = Parameter(
            required=False, description="required: the last day (inclusive)"
        ),
        format: str | None = Parameter(
            required=False, description="json (default) | csv | xlsx | pdf"
        ),
        currency: str | None = Parameter(
            required=False, pattern=r"^[A-Z]{3}$", description="when it holds several"
        ),
    ) -> Response[bytes]:
        fmt = format or "json"
        if fmt not in MEDIA_TYPES:
            raise ValidationFailed(
                "format must be json, csv, xlsx or pdf",
                code="invalid_format",
                errors=[{"field": "format", "message": "must be json, csv, xlsx or pdf"}],
            )
        missing = [
            name
            for name, value in (
                ("department", department),
                ("date_from", date_from),
                ("date_to", date_to),
            )
            if not value
        ]
        if missing:
            raise ValidationFailed(
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required",
                code="report_parameter_required",
                errors=[{"field": name, "message": "is required"} for name in missing],
            )
        assert department and date_from and date_to
        first, last = _date(date_from, "date_from"), _date(date_to, "date_to")
        async with get_database().session() as session:
            report = await build_settlement(
                session,
                department=department,
                date_from=first,
                date_to=last,
                currency=currency,
                scope=scope_of(principal),
            )
        headers = {}
        if fmt != "json":
            headers["Content-Disposition"] = f'attachment; filename="{file_name(report, fmt)}"'
        return Response(render(report, fmt), media_type=MEDIA_TYPES[fmt], headers=headers)


routes: list[Any] = [ReportsController]
