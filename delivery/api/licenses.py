"""Licence endpoints for departments (and admins, who read every department's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from delivery import licenses, rendering
from delivery.schemas import (
    CollectIn,
    LicenseIn,
    LicenseOut,
    LicensePage,
    LicenseTimeline,
    RedispatchIn,
    RevokeIn,
)
from onetrip.auth import Principal, any_key, department_key, require_role
from onetrip.db import get_database, unit_of_work
from onetrip.errors import Conflict, NotFound
from onetrip.idempotency import IdempotencyKey, idempotent_response
from onetrip.openapi import documented

LicenseStatus = Literal[
    "issued",
    "rendered",
    "printed",
    "dispatched",
    "delivered",
    "pickup_ready",
    "collected",
    "returned",
    "needs_attention",
    "revoked",
]

Operation = Callable[[AsyncSession], Awaitable[LicenseOut]]

ADDRESS_EXAMPLE = {
    "recipient": "张三",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "line1": "文三路 90 号",
    "postal_code": "310012",
}
LICENSE_IN_EXAMPLE = {
    "payment_id": "pay_01jf0q8m3v6w9x2y4z5a7b8c9d",
    "license_no": "浙公驾 330106-2026-0001",
    "title": "机动车驾驶证",
    "holder_name": "张三",
    "fields": {"准驾车型": "C1", "住址": "浙江省杭州市西湖区文三路 90 号"},
    "valid_from": "2026-12-01",
    "valid_until": "2032-12-01",
}
LICENSE_EXAMPLE = {
    "id": "lic_01jf0qa2b3c4d5e6f7g8h9j0k1",
    "status": "dispatched",
    "license_no": "浙公驾 330106-2026-0001",
    "title": "机动车驾驶证",
    "holder_name": "张三",
    "fields": {"准驾车型": "C1", "住址": "浙江省杭州市西湖区文三路 90 号"},
    "valid_from": "2026-12-01",
    "valid_until": "2032-12-01",
    "payment_id": "pay_01jf0q8m3v6w9x2y4z5a7b8c9d",
    "department": "PSB",
    "matter_code": "driving-licence",
    "delivery_method": "courier",
    "address": ADDRESS_EXAMPLE,
    "print_station": "default",
    "verify_url": "https://onetrip.example.gov.cn/verify/AQFQU0ItMjAyNi0wMDAx",
    "revoked_at": None,
    "revoke_reason": None,
    "collected_by": None,
    "collected_at": None,
    "dispatch": {
        "id": "dsp_01jf0qc5d6e7f8g9h0j1k2m3n4",
        "partner": "sf-express",
        "tracking_number": "OT482019374651",
        "status": "created",
    },
    "created_at": "2026-12-01T02:15:00Z",
    "updated_at": "2026-12-01T03:00:00Z",
}
TIMELINE_EXAMPLE = {
    "data": [
        {
            "occurred_at": "2026-12-01T02:15:00Z",
            "source": "license",
            "event": "issue",
            "status": "issued",
            "previous_status": None,
            "applied": True,
            "reason": None,
            "dispatch_id": None,
            "partner": None,
            "tracking_number": None,
            "location": None,
            "note": None,
            "recipient_name": None,
        },
        {
            "occurred_at": "2026-12-01T09:30:00Z",
            "source": "dispatch",
            "event": "picked_up",
            "status": "picked_up",
            "previous_status": None,
            "applied": True,
            "reason": None,
            "dispatch_id": "dsp_01jf0qc5d6e7f8g9h0j1k2m3n4",
            "partner": "sf-express",
            "tracking_number": "OT482019374651",
            "location": "杭州西湖营业部",
            "note": None,
            "recipient_name": None,
        },
    ],
    "next_cursor": None,
}

NOT_FOUND = {404: ["license_not_found"]}
READER = {403: ["wrong_role"]}
MOVE = {**NOT_FOUND, 409: ["invalid_state_transition"]}


def _reader(principal: Principal) -> Principal:
    return require_role(principal, "department", "admin")


async def _once(
    request: Request[Any, Any, Any],
    principal: Principal,
    key: str | None,
    operation: Operation,
    status_code: int,
) -> Response[LicenseOut]:
    """Run `operation` in one unit of work, replayed under the Idempotency-Key."""
    return await idempotent_response(request, principal.key_id, key, operation, status_code)


async def _maybe_once(
    request: Request[Any, Any, Any],
    principal: Principal,
    key: str | None,
    operation: Operation,
) -> Response[LicenseOut]:
    """Moves that neither create nor move goods take an Idempotency-Key when sent."""
    if key is not None:
        return await _once(request, principal, key, operation, HTTP_200_OK)
    async with unit_of_work() as session:
        body = msgspec.to_builtins(await operation(session))
    return Response(body, status_code=HTTP_200_OK)


class LicensesController(Controller):
    path = "/api/v1/licenses"
    tags = ["licences"]

    @post(
        "/",
        summary="Issue the licence of a paid payment",
        status_code=HTTP_201_CREATED,
        dependencies={"principal": Provide(department_key)},
        opt=documented(
            errors={
                404: ["payment_not_found"],
                409: [
                    "payment_not_paid",
                    "payment_refunded",
                    "matter_not_deliverable",
                    "license_exists",
                    "license_no_exists",
                ],
                422: ["invalid_validity"],
            },
            idempotency_key="required",
            request_example=LICENSE_IN_EXAMPLE,
            response_example={**LICENSE_EXAMPLE, "status": "issued", "dispatch": None},
        ),
    )
    async def issue(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        data: LicenseIn,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[LicenseOut]:
        async def operation(session: AsyncSession) -> LicenseOut:
            license = await licenses.issue_license(session, principal, data)
            return await licenses.view(session, license)

        return await _once(request, principal, idempotency_key, operation, HTTP_201_CREATED)

    @get(
        "/",
        summary="Licences, newest first (status=needs_attention: waiting for a partner)",
        dependencies={"principal": Provide(any_key)},
        opt=documented(
            errors={**READER, 422: ["invalid_limit"]},
            response_example={"data": [LICENSE_EXAMPLE], "next_cursor": None},
        ),
    )
    async def list_licenses(
        self,
        principal: Principal,
        status: LicenseStatus | None = None,
        payment_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> LicensePage:
        _reader(principal)
        async with get_database().session() as session:
            found = await licenses.list_licenses(
                session, principal, status=status, payment_id=payment_id, limit=limit, cursor=cursor
            )
        return LicensePage(data=found["data"], next_cursor=found["next_cursor"])

    @get(
        "/{license_id:str}",
        summary="One licence",
        dependencies={"principal": Provide(any_key)},
        opt=documented(errors={**READER, **NOT_FOUND}, response_example=LICENSE_EXAMPLE),
    )
    async def retrieve(self, principal: Principal, license_id: str) -> LicenseOut:
        _reader(principal)
        async with get_database().session() as session:
            license = await licenses.get_license(session, principal, license_id)
            return await licenses.view(session, license)

    @get(
        "/{license_id:str}/events",
        summary="Everything that happened to the licence and its parcels, oldest first",
        dependencies={"principal": Provide(any_key)},
        opt=documented(errors={**READER, **NOT_FOUND}, response_example=TIMELINE_EXAMPLE),
    )
    async def events(self, principal: Principal, license_id: str) -> LicenseTimeline:
        _reader(principal)
        async with get_database().session() as session:
            entries = await licenses.timeline(session, principal, license_id)
        return LicenseTimeline(data=entries, next_cursor=None)

    @get(
        "/{license_id:str}/document.pdf",
        summary="The rendered licence (PDF)",
        media_type="application/pdf",
        dependencies={"principal": Provide(any_key)},
        opt=documented(errors={**READER, **NOT_FOUND, 409: ["license_not_rendered"]}),
    )
    async def document(self, principal: Principal, license_id: str) -> Response[bytes]:
        _reader(principal)
        async with get_database().session() as session:
            license = await licenses.get_license(session, principal, license_id)
            try:
                pdf = await rendering.current_document(session, license.id, "license")
            except NotFound:
                raise Conflict(
                    f"licence {license_id} has not been rendered yet", code="license_not_rendered"
                ) from None
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{license_id}.pdf"'},
        )

    @post(
        "/{license_id:str}/revoke",
        summary="Revoke a licence (its verification page says so from then on)",
        status_code=HTTP_200_OK,
        dependencies={"principal": Provide(department_key)},
        opt=documented(
            errors=MOVE,
            idempotency_key="optional",
            request_example={"reason": "证件信息有误，重新核发"},
            response_example={
                **LICENSE_EXAMPLE,
                "status": "revoked",
                "revoked_at": "2026-12-02T01:00:00Z",
                "revoke_reason": "证件信息有误，重新核发",
            },
        ),
    )
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        license_id: str,
        data: RevokeIn,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[LicenseOut]:
        async def operation(session: AsyncSession) -> LicenseOut:
            license = await licenses.revoke(session, principal, license_id, data.reason)
            return await licenses.view(session, license)

        return await _maybe_once(request, principal, idempotency_key, operation)

    @post(
        "/{license_id:str}/collect",
        summary="Record that the licence was collected at the window",
        status_code=HTTP_200_OK,
        dependencies={"principal": Provide(department_key)},
        opt=documented(
            errors=MOVE,
            idempotency_key="optional",
            request_example={"collected_by": "张三"},
            response_example={
                **LICENSE_EXAMPLE,
                "status": "collected",
                "delivery_method": "pickup",
                "address": None,
                "dispatch": None,
                "collected_by": "张三",
                "collected_at": "2026-12-02T01:00:00Z",
            },
        ),
    )
    async def collect(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        license_id: str,
        data: CollectIn,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[LicenseOut]:
        async def operation(session: AsyncSession) -> LicenseOut:
            license = await licenses.collect(session, principal, license_id, data.collected_by)
            return await licenses.view(session, license)

        return await _maybe_once(request, principal, idempotency_key, operation)

    @post(
        "/{license_id:str}/redispatch",
        summary="Dispatch a returned licence (or one no partner served) again",
        status_code=HTTP_200_OK,
        dependencies={"principal": Provide(department_key)},
        opt=documented(
            errors={**MOVE, 422: ["invalid_address"]},
            idempotency_key="required",
            request_example={"address": {**ADDRESS_EXAMPLE, "line1": "文三路 90 号 2 幢 301 室"}},
            response_example=LICENSE_EXAMPLE,
        ),
    )
    async def redispatch(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        license_id: str,
        data: RedispatchIn,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[LicenseOut]:
        async def operation(session: AsyncSession) -> LicenseOut:
            license = await licenses.redispatch(session, principal, license_id, data)
            return await licenses.view(session, license)

        return await _once(request, principal, idempotency_key, operation, HTTP_200_OK)


routes: list[Any] = [LicensesController]
