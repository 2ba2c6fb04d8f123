"""Print runs: what each cut-off gathered, sent where, and the printer's answer.

Admin keys see every run whole. A department key sees the runs that hold its licences,
with only its own items and its own pages of the PDF (a shared print station's run
also holds other departments' applicants); any other run is a 404.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Response, get
from litestar.di import Provide

from delivery import print_queries
from delivery.schemas import PrintRunOut, PrintRunPage
from onetrip.auth import Principal, any_key, require_role
from onetrip.db import get_database
from onetrip.openapi import documented

PrintRunStatus = Literal["pending", "sending", "sent", "failed"]

_RUN_EXAMPLE: dict[str, Any] = {
    "id": "prn_01m8ry76atc35je4zqpp04ekv1",
    "station": "default",
    "status": "sent",
    "printer": "ipp://127.0.0.1:631/printers/PDF",
    "sha256": "9f2c4a0b7d1e3f5a6b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c",
    "pages": 2,
    "license_count": 1,
    "printer_job_id": "42",
    "printer_state": "pending",
    "error": None,
    "attempts": 1,
    "created_at": "2026-12-01T09:00:00Z",
    "sent_at": "2026-12-01T09:00:02Z",
}
_ITEM_EXAMPLE: dict[str, Any] = {
    "license_id": "lic_01m8ry76br4a4xwy03t0eaw982",
    "license_no": "浙公驾-2026-000001",
    "department": "PSB",
    "print_no": 1,
    "position": 1,
    "sha256": "1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a",
    "pages": 1,
    "cover_sha256": "2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b",
    "cover_pages": 1,
}


class PrintRunController(Controller):
    path = "/api/v1/print-runs"
    tags = ["print runs"]
    dependencies = {"principal": Provide(any_key)}

    @get(
        "/",
        summary="Print runs, newest first",
        description="Admin: every run. Department key: the runs holding its licences.",
        opt=documented(
            errors={
                400: ["invalid_cursor"],
                403: ["wrong_role"],
                422: ["invalid_limit"],
            },
            response_example={"data": [_RUN_EXAMPLE], "next_cursor": None},
        ),
    )
    async def list_runs(
        self,
        principal: Principal,
        station: str | None = None,
        status: PrintRunStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> PrintRunPage:
        _reader(principal)
        async with get_database().session() as session:
            return await print_queries.list_runs(
                session, principal, station=station, status=status, limit=limit, cursor=cursor
            )

    @get(
        "/{run_id:str}",
        summary="One print run: its items in print order, SHA-256s, pages, printer's answer",
        description="A department key sees only its own licences' items.",
        opt=documented(
            errors={
                403: ["wrong_role"],
                404: ["print_run_not_found"],
            },
            response_example={**_RUN_EXAMPLE, "items": [_ITEM_EXAMPLE]},
        ),
    )
    async def retrieve(self, principal: Principal, run_id: str) -> PrintRunOut:
        _reader(principal)
        async with get_database().session() as session:
            return await print_queries.get_run(session, principal, run_id)

    @get(
        "/{run_id:str}/document.pdf",
        summary="The run's PDF as sent to the printer",
        description="A department key gets only the pages of its own licences.",
        media_type="application/pdf",
        opt=documented(
            errors={
                403: ["wrong_role"],
                404: ["print_run_not_found"],
                409: ["print_run_not_ready"],
            }
        ),
    )
    async def document(self, principal: Principal, run_id: str) -> Response[bytes]:
        _reader(principal)
        async with get_database().session() as session:
            pdf = await print_queries.run_document(session, principal, run_id)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="print-run-{run_id}.pdf"'},
        )


def _reader(principal: Principal) -> None:
    require_role(principal, "admin", "department")


routes: list[Any] = [PrintRunController]
