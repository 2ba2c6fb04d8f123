"""HTTP edges of notifications: what a payment's applicant was told (thin)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.di import Provide

from notifications import service
from notifications.schemas import NOTIFICATION_PAGE_EXAMPLE, NotificationPage
from onetrip.auth import Principal, any_key, require_role
from onetrip.db import get_database
from onetrip.openapi import documented


class PaymentNotificationsController(Controller):
    path = "/api/v1/payments"
    tags = ["notifications"]

    @get(
        "/{payment_id:str}/notifications",
        summary="What the payment's applicant was told, newest first, with every attempt",
        dependencies={"principal": Provide(any_key)},
        opt=documented(
            errors={
                400: ["invalid_cursor"],
                403: ["wrong_role"],
                404: ["payment_not_found"],
                422: ["invalid_limit"],
            },
            response_example=NOTIFICATION_PAGE_EXAMPLE,
        ),
    )
    async def list_notifications(
        self,
        principal: Principal,
        payment_id: str,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> NotificationPage:
        # The keys that may read a payment (payments' own rule): not couriers.
        require_role(principal, "department", "finance", "admin")
        async with get_database().session() as session:
            found = await service.payment_notifications(
                session, principal, payment_id, cursor=cursor, limit=limit
            )
        return NotificationPage(data=found["data"], next_cursor=found["next_cursor"])


routes: list[Any] = [PaymentNotificationsController]
