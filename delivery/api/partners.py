"""Admin endpoints for courier partners."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.status_codes import HTTP_201_CREATED

from delivery import service
from delivery.schemas import CourierPartnerIn, CourierPartnerOut, CourierPartnerPage
from onetrip.auth import Principal, admin_key
from onetrip.db import get_database, unit_of_work
from onetrip.openapi import documented


class AdminCourierPartnerController(Controller):
    path = "/api/v1/admin/courier-partners"
    tags = ["admin"]
    dependencies = {"principal": Provide(admin_key)}

    @post(
        "/",
        summary="Register a courier partner (its webhook secret is shown once)",
        status_code=HTTP_201_CREATED,
        opt=documented(
            errors={
                409: ["courier_partner_exists"],
                422: ["invalid_webhook_url", "invalid_timezone"],
            },
            request_example={
                "code": "SF",
                "name": "顺丰速运",
                "service_areas": [
                    {"province": "浙江省", "city": "杭州市", "district": "西湖区"},
                    {"province": "浙江省"},
                ],
                "daily_capacity": 500,
                "cutoff_time": "17:30",
                "timezone": "Asia/Shanghai",
                "webhook_url": "https://sf.example.cn/onetrip/events",
            },
        ),
    )
    async def create(self, principal: Principal, data: CourierPartnerIn) -> CourierPartnerOut:
        async with unit_of_work() as session:
            partner = await service.create_partner(session, data)
        return service.partner_view(partner, with_secret=True)

    @get("/", summary="Courier partners")
    async def list_partners(self, principal: Principal) -> CourierPartnerPage:
        async with get_database().session() as session:
            partners = await service.list_partners(session)
        return CourierPartnerPage(
            data=[service.partner_view(p) for p in partners], next_cursor=None
        )

    @post(
        "/{code:str}/rotate-secret",
        summary="Give a partner a new webhook secret (shown once; pending pushes carry both)",
        status_code=HTTP_201_CREATED,
        opt=documented(errors={404: ["courier_partner_not_found"]}),
    )
    async def rotate_secret(self, principal: Principal, code: str) -> CourierPartnerOut:
        async with unit_of_work() as session:
            partner = await service.rotate_partner_secret(session, code)
        return service.partner_view(partner, with_secret=True)


routes: list[Any] = [AdminCourierPartnerController]
