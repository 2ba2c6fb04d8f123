"""The courier API (courier key): a partner's own dispatches, labels, manifests, and the
tracking events it reports. Another partner's dispatch is a 404, never a 403."""

from __future__ import annotations

from datetime import date
from typing import Any

from litestar import Controller, Response, get, post
from litestar.di import Provide
from litestar.params import Parameter

from delivery import labels, tracking
from delivery.models import CourierPartner
from delivery.schemas import CourierEventIn, DispatchOut, DispatchPage
from onetrip.auth import Principal, courier_key
from onetrip.db import get_database, unit_of_work
from onetrip.errors import NotFound, ValidationFailed
from onetrip.openapi import documented
from onetrip.pagination import envelope

PDF = "application/pdf"


def _partner(principal: Principal) -> str:
    assert principal.partner is not None  # a courier key is always bound to a partner
    return principal.partner


def _pdf(content: bytes, filename: str) -> Response[bytes]:
    return Response(
        content=content,
        media_type=PDF,
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


class CourierController(Controller):
    path = "/courier/v1"
    tags = ["courier"]
    dependencies = {"principal": Provide(courier_key)}

    @get(
        "/dispatches",
        summary="The partner's dispatches, newest first (?status=, cursor pagination)",
        opt=documented(errors={422: ["invalid_limit", "invalid_status"]}),
    )
    async def list_dispatches(
        self,
        principal: Principal,
        status: str | None = None,
        cursor: str | None = None,
        limit: int | None = Parameter(default=None, ge=1, le=200),
    ) -> DispatchPage:
        async with get_database().session() as session:
            rows = await tracking.list_dispatches(
                session, _partner(principal), status=status, cursor=cursor, limit=limit
            )
        page = envelope([tracking.dispatch_view(d) for d in rows], limit, lambda d: d.id)
        return DispatchPage(data=page["data"], next_cursor=page["next_cursor"])

    @get(
        "/dispatches/{dispatch_id:str}",
        summary="One dispatch with its tracking events",
        opt=documented(errors={404: ["dispatch_not_found"]}),
    )
    async def get_dispatch(self, principal: Principal, dispatch_id: str) -> DispatchOut:
        async with get_database().session() as session:
            dispatch = await tracking.partner_dispatch(session, _partner(principal), dispatch_id)
            return await tracking.full_view(session, dispatch)

    @get(
        "/dispatches/{dispatch_id:str}/label.pdf",
        summary="The parcel label (100 × 150 mm, Code 128 of the tracking number)",
        media_type=PDF,
        opt=documented(errors={404: ["dispatch_not_found"]}),
    )
    async def label(self, principal: Principal, dispatch_id: str) -> Response[bytes]:
        async with get_database().session() as session:
            dispatch = await tracking.partner_dispatch(session, _partner(principal), dispatch_id)
            content = await labels.label_for(session, dispatch)
        return _pdf(content, f"{dispatch.tracking_number}.pdf")

    @get(
        "/manifests/{name:str}",
        summary="A day's hand-over manifest: GET /courier/v1/manifests/YYYY-MM-DD.pdf",
        media_type=PDF,
        opt=documented(
            errors={404: ["not_found", "courier_partner_not_found"], 422: ["invalid_date"]}
        ),
    )
    async def manifest(self, principal: Principal, name: str) -> Response[bytes]:
        if not name.endswith(".pdf"):
            raise NotFound(
                "manifests are served as /courier/v1/manifests/YYYY-MM-DD.pdf", code="not_found"
            )
        try:
            day = date.fromisoformat(name.removesuffix(".pdf"))
        except ValueError:
            raise ValidationFailed(
                "the manifest's date is YYYY-MM-DD",
                code="invalid_date",
                errors=[{"field": "date", "message": "must be a date, YYYY-MM-DD"}],
            ) from None
        code = _partner(principal)
        async with get_database().session() as session:
            partner = await session.get(CourierPartner, code)
            if partner is None:
                raise NotFound(f"no courier partner {code}", code="courier_partner_not_found")
            dispatches = await tracking.dispatches_for_day(session, code, day)
            content = await labels.manifest_for(session, partner, day, dispatches)
        return _pdf(content, f"manifest-{code}-{day.isoformat()}.pdf")

    @post(
        "/dispatches/{dispatch_id:str}/events",
        summary="Report a tracking event (applied before the response; idempotent by event_id)",
        status_code=200,
        opt=documented(
            errors={
                404: ["dispatch_not_found"],
                409: ["invalid_state_transition"],
                422: ["invalid_courier_event"],
            },
            request_example={
                "event_id": "SF-20261201-000123",
                "status": "delivered",
                "occurred_at": "2026-12-01T08:30:00Z",
                "location": "浙江省杭州市西湖区文三路 90 号",
                "recipient_name": "张三",
            },
        ),
    )
    async def report_event(
        self, principal: Principal, dispatch_id: str, data: CourierEventIn
    ) -> DispatchOut:
        async with unit_of_work() as session:
            dispatch = await tracking.record_event(session, _partner(principal), dispatch_id, data)
            return await tracking.full_view(session, dispatch)


routes: list[Any] = [CourierController]
