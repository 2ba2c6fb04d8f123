"""API keys: one role each, stored as a SHA-256 hash, shown once.

A key looks like `otk_<key id>_<secret>`. The key id finds the row; the hash of the
whole key must match. Keys have 190 bits of entropy, so a fast hash is the right one
(a slow password hash would only slow every request). Verified keys are cached for a
short while, since every request on the hot path carries one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from litestar.connection import ASGIConnection
from sqlalchemy import JSON, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from onetrip.clock import utcnow
from onetrip.db import Base, UTCDateTime, get_database
from onetrip.errors import Forbidden, Unauthorized, ValidationFailed

Role = Literal["department", "finance", "courier", "admin"]
ROLES: tuple[str, ...] = ("department", "finance", "courier", "admin")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    all_departments: Mapped[bool] = mapped_column(default=False)
    partner: Mapped[str | None] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: str
    departments: tuple[str, ...] = ()
    all_departments: bool = False
    partner: str | None = None

    @property
    def department(self) -> str:
        """The one department a department key is bound to."""
        return self.departments[0]

    def sees_department(self, code: str | None) -> bool:
        if self.role == "admin" or self.all_departments:
            return True
        return code is not None and code in self.departments


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    session: AsyncSession,
    role: str,
    *,
    departments: list[str] | None = None,
    partner: str | None = None,
    label: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never stored or shown again."""
    departments = departments or []
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    if role == "department" and len(departments) != 1:
        raise ValidationFailed("a department key is bound to exactly one department")
    if role == "courier" and not partner:
        raise ValidationFailed("a courier key is bound to one courier partner")
    key_id = secrets.token_hex(8)
    plain = f"otk_{key_id}_{secrets.token_urlsafe(24)}"
    row = ApiKey(
        id=key_id,
        key_hash=_hash(plain),
        role=role,
        departments=sorted(set(departments)),
        all_departments=role == "finance" and not departments,
        partner=partner,
        label=label,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row, plain


_CACHE_SECONDS = 30.0


@dataclass
class _KeyCache:
    entries: dict[str, tuple[float, str, Principal | None]] = field(default_factory=dict)

    def clear(self) -> None:
        self.entries.clear()


key_cache = _KeyCache()


async def principal_for_key(plain: str) -> Principal:
    parts = plain.split("_")
    if len(parts) < 3 or parts[0] != "otk":
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    key_id = parts[1]
    digest = _hash(plain)
    now = time.monotonic()
    cached = key_cache.entries.get(key_id)
    if cached is None or cached[0] < now:
        async with get_database().session() as session:
            row = (
                await session.execute(select(ApiKey).where(ApiKey.id == key_id))
            ).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            cached = (now + _CACHE_SECONDS, "", None)
        else:
            principal = Principal(
                key_id=row.id,
                role=row.role,
                departments=tuple(row.departments or ()),
                all_departments=bool(row.all_departments),
                partner=row.partner,
            )
            cached = (now + _CACHE_SECONDS, row.key_hash, principal)
        key_cache.entries[key_id] = cached
    _, key_hash, principal = cached
    if principal is None or not hmac.compare_digest(key_hash, digest):
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    return principal


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send `Authorization: Bearer <api key>`", code="missing_api_key")
    return await principal_for_key(token.strip())


def require_role(principal: Principal, *roles: str) -> Principal:
    if principal.role not in roles:
        raise Forbidden(f"this endpoint needs a {' or '.join(roles)} key", code="wrong_role")
    return principal


# Litestar dependencies, one per audience.
async def department_key(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    return require_role(await authenticate(request), "department")


async def finance_key(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    return require_role(await authenticate(request), "finance", "admin")


async def admin_key(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    return require_role(await authenticate(request), "admin")


async def courier_key(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    return require_role(await authenticate(request), "courier")


async def any_key(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    return await authenticate(request)
