"""Department webhook endpoints (department key; its own department's endpoints only,
404 for another's): register, list, change, rotate the secret, read the delivery log,
retry a delivery by hand."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, get, patch, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from notifications.endpoints import service
from notifications.endpoints.schemas import (
    WebhookDeliveryOut,
    WebhookDeliveryPage,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointPage,
    WebhookEndpointPatch,
)
from onetrip.auth import Principal, department_key
from onetrip.db import get_database, unit_of_work
from onetrip.openapi import documented
from onetrip.pagination import envelope

DeliveryStatus = Literal["pending", "delivered", "failed", "disabled"]

ENDPOINT_EXAMPLE: dict[str, Any] = {
    "id": "whe_01jf0q8m3v6w9x2y4z5a7b8c9d",
    "department": "PSB",
    "url": "https://psb.hangzhou.gov.cn/onetrip/webhooks",
    "events": ["license.delivered", "payment.succeeded", "refund.succeeded"],
    "enabled": True,
    "disabled_reason": None,
    "disabled_at": None,
    "failing_since": None,
    "last_error": None,
    "previous_secret_until": None,
    "created_at": "2026-12-01T02:15:00Z",
    "updated_at": "2026-12-01T02:15:00Z",
}
SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ATTEMPT_EXAMPLE: dict[str, Any] = {
    "number": 1,
    "url": "https://psb.hangzhou.gov.cn/onetrip/webhooks",
    "started_at": "2026-12-01T02:16:00Z",
    "duration_ms": 143,
    "response_status": 503,
    "response_excerpt": "系统维护中",
    "error": None,
    "outcome": "retry",
    "retry_at": "2026-12-01T02:16:05Z",
}
DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": "whd_01jf0qa2b3c4d5e6f7g8h9j0k1",
    "endpoint_id": ENDPOINT_EXAMPLE["id"],
    "event_id": "evt_01jf0qa2a9b8c7d6e5f4g3h2j1",
    "event_type": "payment.succeeded",
    "url": "https://psb.hangzhou.gov.cn/onetrip/webhooks",
    "status": "delivered",
    "attempts": 2,
    "next_attempt_at": None,
    "last_attempt_at": "2026-12-01T02:16:06Z",
    "last_response_status": 200,
    "last_error": None,
    "created_at": "2026-12-01T02:16:00Z",
    "finished_at": "2026-12-01T02:16:06Z",
}
DELIVERY_DETAIL_EXAMPLE: dict[str, Any] = {
    **DELIVERY_EXAMPLE,
    "attempt_log": [
        ATTEMPT_EXAMPLE,
        {
            **ATTEMPT_EXAMPLE,
            "number": 2,
            "started_at": "2026-12-01T02:16:06Z",
            "response_status": 200,
            "response_excerpt": "ok",
            "outcome": "delivered",
            "retry_at": None,
        },
    ],
}

NOT_FOUND = {404: ["webhook_endpoint_not_found"]}
DELIVERY_NOT_FOUND = {404: ["webhook_endpoint_not_found", "webhook_delivery_not_found"]}
INVALID = {422: ["unknown_event_type", "invalid_webhook_url", "validation_failed"]}


class WebhookEndpointsController(Controller):
    path = "/api/v1/webhook-endpoints"
    tags = ["webhook endpoints"]
    dependencies = {"principal": Provide(department_key)}

    @post(
        "/",
        summary="Register a webhook endpoint (its signing secret is shown once)",
        status_code=HTTP_201_CREATED,
        opt=documented(
            errors={**INVALID, 409: ["endpoint_limit_reached"]},
            request_example={
                "url": "https://psb.hangzhou.gov.cn/onetrip/webhooks",
                "events": ["payment.succeeded", "refund.succeeded", "license.delivered"],
            },
            response_example={**ENDPOINT_EXAMPLE, "secret": SECRET_EXAMPLE},
        ),
    )
    async def create(self, principal: Principal, data: WebhookEndpointIn) -> WebhookEndpointOut:
        checked = await service.checked_new_endpoint(data)  # resolves the name: no transaction
        async with unit_of_work() as session:
            endpoint = await service.create_endpoint(session, principal.department, checked)
        return service.view(endpoint, with_secret=True)

    @get(
        "/",
        summary="The department's webhook endpoints, newest first",
        opt=documented(response_example={"data": [ENDPOINT_EXAMPLE], "next_cursor": None}),
    )
    async def list_endpoints(
        self, principal: Principal, limit: int | None = None, cursor: str | None = None
    ) -> WebhookEndpointPage:
        async with get_database().session() as session:
            found = await service.list_endpoints(
                session, principal.department, cursor=cursor, limit=limit
            )
        listed = envelope([service.view(e) for e in found], limit, id_of=lambda e: e.id)
        return WebhookEndpointPage(data=listed["data"], next_cursor=listed["next_cursor"])

    @get(
        "/{endpoint_id:str}",
        summary="One webhook endpoint",
        opt=documented(errors=NOT_FOUND, response_example=ENDPOINT_EXAMPLE),
    )
    async def retrieve(self, principal: Principal, endpoint_id: str) -> WebhookEndpointOut:
        async with get_database().session() as session:
            endpoint = await service.get_endpoint(session, principal.department, endpoint_id)
        return service.view(endpoint)

    @patch(
        "/{endpoint_id:str}",
        summary="Change an endpoint's URL or events, or disable or re-enable it",
        status_code=HTTP_200_OK,
        opt=documented(
            errors={**NOT_FOUND, **INVALID},
            request_example={"enabled": True},
            response_example=ENDPOINT_EXAMPLE,
        ),
    )
    async def change(
        self, principal: Principal, endpoint_id: str, data: WebhookEndpointPatch
    ) -> WebhookEndpointOut:
        checked = await service.checked_patch(data)  # resolves a new name: no transaction
        async with unit_of_work() as session:
            endpoint = await service.update_endpoint(
                session, principal.department, endpoint_id, checked
            )
        return service.view(endpoint)

    @post(
        "/{endpoint_id:str}/rotate-secret",
        summary="Give an endpoint a new secret (shown once; the old one signs beside it 24 h)",
        status_code=HTTP_201_CREATED,
        opt=documented(
            errors=NOT_FOUND,
            response_example={
                **ENDPOINT_EXAMPLE,
                "previous_secret_until": "2026-12-02T02:15:00Z",
                "secret": SECRET_EXAMPLE,
            },
        ),
    )
    async def rotate_secret(self, principal: Principal, endpoint_id: str) -> WebhookEndpointOut:
        async with unit_of_work() as session:
            endpoint = await service.rotate_secret(session, principal.department, endpoint_id)
        return service.view(endpoint, with_secret=True)

    @get(
        "/{endpoint_id:str}/deliveries",
        summary="The endpoint's deliveries, newest first (status and attempt count)",
        opt=documented(
            errors=NOT_FOUND,
            response_example={"data": [DELIVERY_EXAMPLE], "next_cursor": None},
        ),
    )
    async def list_deliveries(
        self,
        principal: Principal,
        endpoint_id: str,
        status: DeliveryStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> WebhookDeliveryPage:
        async with get_database().session() as session:
            found = await service.list_endpoint_deliveries(
                session,
                principal.department,
                endpoint_id,
                status=status,
                cursor=cursor,
                limit=limit,
            )
        listed = envelope([service.delivery_view(d) for d in found], limit, id_of=lambda d: d.id)
        return WebhookDeliveryPage(data=listed["data"], next_cursor=listed["next_cursor"])

    @get(
        "/{endpoint_id:str}/deliveries/{delivery_id:str}",
        summary="One delivery with every attempt (status, duration, response excerpt)",
        opt=documented(errors=DELIVERY_NOT_FOUND, response_example=DELIVERY_DETAIL_EXAMPLE),
    )
    async def retrieve_delivery(
        self, principal: Principal, endpoint_id: str, delivery_id: str
    ) -> WebhookDeliveryOut:
        async with get_database().session() as session:
            delivery = await service.get_endpoint_delivery(
                session, principal.department, endpoint_id, delivery_id
            )
        return service.delivery_view(delivery, with_attempts=True)

    @post(
        "/{endpoint_id:str}/deliveries/{delivery_id:str}/retry",
        summary="Send a failed or disabled delivery again now (its attempt log is kept)",
        status_code=HTTP_202_ACCEPTED,
        opt=documented(
            errors={
                **DELIVERY_NOT_FOUND,
                409: ["delivery_pending", "delivery_delivered", "endpoint_disabled"],
            },
            response_example={
                **DELIVERY_DETAIL_EXAMPLE,
                "status": "pending",
                "next_attempt_at": "2026-12-04T08:00:00Z",
                "finished_at": None,
            },
        ),
    )
    async def retry_delivery(
        self, principal: Principal, endpoint_id: str, delivery_id: str
    ) -> WebhookDeliveryOut:
        async with unit_of_work() as session:
            delivery = await service.retry_endpoint_delivery(
                session, principal.department, endpoint_id, delivery_id
            )
        return service.delivery_view(delivery, with_attempts=True)


routes: list[Any] = [WebhookEndpointsController]
