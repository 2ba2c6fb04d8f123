"""Admin endpoints for API keys: list, create (the key is shown once), revoke.

The kernel cannot tell whether a department or a courier partner exists (the domains
own them), so the wiring passes that check in: `admin_keys_controller(check_scope)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from onetrip.auth import ApiKey, Principal, admin_key, create_key, key_cache, list_keys, revoke_key
from onetrip.db import get_database, unit_of_work
from onetrip.openapi import documented
from onetrip.pagination import MAX_LIMIT

#: Refuses (ValidationFailed) departments or a partner that do not exist.
ScopeCheck = Callable[[AsyncSession, Sequence[str], str | None], Awaitable[None]]

Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["department", "finance", "courier", "admin"]
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    #: one for a department key; a finance key without any sees every department
    departments: Annotated[list[Code], msgspec.Meta(max_length=100)] = []
    partner: Code | None = None
    expires_at: datetime | None = None


class KeyOut(msgspec.Struct):
    """A key as the admin sees it: never the key itself, nor its hash."""

    id: str
    name: str | None
    role: str
    departments: list[str]
    all_departments: bool
    partner: str | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class CreatedKeyOut(KeyOut):
    key: str = ""  # shown this once


class KeyPage(msgspec.Struct):
    data: list[KeyOut]
    next_cursor: str | None


def key_view(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        role=row.role,
        departments=list(row.departments or []),
        all_departments=bool(row.all_departments),
        partner=row.partner,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def admin_keys_controller(check_scope: ScopeCheck) -> type[Controller]:
    """The admin key endpoints, checking new keys' scopes with `check_scope`."""

    class AdminKeysController(Controller):
        path = "/api/v1/admin/keys"
        tags = ["admin"]
        dependencies = {"principal": Provide(admin_key)}

        @get("/", summary="API keys, newest first (never the keys themselves)")
        async def list_api_keys(
            self,
            principal: Principal,
            limit: int | None = Parameter(ge=1, le=MAX_LIMIT, required=False),
            cursor: str | None = Parameter(required=False, max_length=40),
        ) -> KeyPage:
            async with get_database().session() as session:
                rows, next_cursor = await list_keys(session, limit=limit, cursor=cursor)
            return KeyPage(data=[key_view(row) for row in rows], next_cursor=next_cursor)

        @post(
            "/",
            summary="Create an API key (the key is in this response only)",
            status_code=HTTP_201_CREATED,
            opt=documented(
                errors={
                    422: [
                        "validation_failed",
                        "invalid_role",
                        "invalid_expiry",
                        "unknown_department",
                        "unknown_partner",
                    ]
                },
                request_example={
                    "role": "department",
                    "name": "出入境业务系统",
                    "departments": ["PSB"],
                },
            ),
        )
        async def create_api_key(self, principal: Principal, data: KeyIn) -> CreatedKeyOut:
            async with unit_of_work() as session:
                row, plain = await create_key(
                    session,
                    data.role,
                    departments=data.departments,
                    partner=data.partner,
                    name=data.name,
                    expires_at=data.expires_at,
                )
                await check_scope(session, data.departments, data.partner)  # else rolls back
            view = msgspec.structs.asdict(key_view(row))
            return CreatedKeyOut(**view, key=plain)

        @delete(
            "/{key_id:str}",
            summary="Revoke an API key (every process refuses it within 5 seconds)",
            status_code=HTTP_200_OK,
            opt=documented(errors={404: ["api_key_not_found"]}),
        )
        async def revoke_api_key(self, principal: Principal, key_id: str) -> KeyOut:
            async with unit_of_work() as session:
                row = await revoke_key(session, key_id)
            key_cache.forget(key_id)  # this process refuses it at once
            return key_view(row)

    return AdminKeysController


__all__ = ["CreatedKeyOut", "KeyIn", "KeyOut", "KeyPage", "ScopeCheck", "admin_keys_controller"]
