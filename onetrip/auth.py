"""API keys: one role each, stored as a SHA-256 hash, shown once; revocable, may expire.

A key looks like `otk_<key id>_<secret>` (16 hex digits, then 32 URL-safe base64
characters). The key id finds the row; the hash of the whole key must match. Keys have
190 bits of entropy, so a fast hash is the right one (a slow password hash would only
slow every request).

Verified keys are cached, since every request on the hot path carries one, but the
cache is bounded (an LRU of `MAX_KEYS` entries, unknown ids in a separate, smaller one)
and every entry is read again after `CACHE_SECONDS`, which bounds how long another
process keeps accepting a key that was revoked. A token not shaped like a key is
refused before any lookup or cache entry.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from litestar.connection import ASGIConnection
from sqlalchemy import JSON, String, and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from onetrip import ratelimit
from onetrip.clock import in_utc, utcnow
from onetrip.db import Base, Database, UTCDateTime, get_database
from onetrip.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from onetrip.pagination import check_limit

log = logging.getLogger(__name__)

Role = Literal["department", "finance", "courier", "admin"]
ROLES: tuple[str, ...] = ("department", "finance", "courier", "admin")

#: The one shape of a key; anything else is refused without touching the database.
KEY_PATTERN = re.compile(r"otk_(?P<id>[0-9a-f]{16})_[A-Za-z0-9_-]{32}")
KEY_LENGTH = 53
#: Seconds a cached key is trusted before it is read again: a revoked key is refused by
#: every process within this (API.md: within 5 seconds).
CACHE_SECONDS = 2.0
MAX_KEYS = 10_000
MAX_UNKNOWN_IDS = 256  # only absorbs retries of one unknown id; each is looked up anyway
#: last_used_at is written at most this often per key, not on every request.
LAST_USED_EVERY = timedelta(minutes=1)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    all_departments: Mapped[bool] = mapped_column(default=False)
    partner: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
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
    name: str | None = None,
    label: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never stored or shown again.

    `label` is the old name of `name`, still accepted. `expires_at` (aware, in the
    future) makes the key stop working then.
    """
    departments = departments or []
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    if role == "department" and len(departments) != 1:
        raise ValidationFailed("a department key is bound to exactly one department")
    if role == "courier" and not partner:
        raise ValidationFailed("a courier key is bound to one courier partner")
    if expires_at is not None and ((at := in_utc(expires_at)) is None or at <= utcnow()):
        raise ValidationFailed(
            "expires_at must be a time in the future, with a UTC offset",
            code="invalid_expiry",
            errors=[{"field": "expires_at", "message": "must be in the future"}],
        )
    key_id = secrets.token_hex(8)
    plain = f"otk_{key_id}_{secrets.token_urlsafe(24)}"
    row = ApiKey(
        id=key_id,
        key_hash=_hash(plain),
        role=role,
        departments=sorted(set(departments)),
        all_departments=role == "finance" and not departments,
        partner=partner,
        name=name if name is not None else label,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row, plain


async def list_keys(
    session: AsyncSession, *, limit: int | None = None, cursor: str | None = None
) -> tuple[list[ApiKey], str | None]:
    """Keys newest first (revoked ones too), a page at a time; the cursor is a key id."""
    size = check_limit(limit)
    stmt = select(ApiKey)
    if cursor:
        after = await session.get(ApiKey, cursor)
        if after is None:
            raise ValidationFailed(
                "cursor is not a key id from the previous page",
                code="invalid_cursor",
                errors=[{"field": "cursor", "message": "unknown cursor"}],
            )
        stmt = stmt.where(
            or_(
                ApiKey.created_at < after.created_at,
                and_(ApiKey.created_at == after.created_at, ApiKey.id < after.id),
            )
        )
    stmt = stmt.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()).limit(size + 1)
    rows = list((await session.execute(stmt)).scalars())
    more = len(rows) > size
    rows = rows[:size]
    return rows, rows[-1].id if more and rows else None


async def revoke_key(session: AsyncSession, key_id: str) -> ApiKey:
    """Revoke a key (again is no change). Other processes refuse it within CACHE_SECONDS;
    call `key_cache.forget` after commit so this one refuses it at once."""
    row = await session.get(ApiKey, key_id, with_for_update=True) if key_id else None
    if row is None:
        raise NotFound(f"there is no API key {key_id}", code="api_key_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


# --- verifying a key, through a bounded cache -----------------------------------------


@dataclass
class _Entry:
    """What one read of a key's row says, valid until `fresh_until` (monotonic)."""

    fresh_until: float
    key_hash: str
    principal: Principal
    revoked: bool
    expires_at: float | None  # monotonic deadline, from the row's expires_at
    touch_after: float  # monotonic: when last_used_at is worth writing again


class KeyCache:
    """Keys by id: a bounded LRU of known keys, and a smaller one of ids not found.

    Both evict their least recently used entry when full, and every entry expires
    after `ttl` seconds, so memory stays bounded however many ids clients make up.
    """

    def __init__(
        self,
        max_keys: int = MAX_KEYS,
        max_unknown: int = MAX_UNKNOWN_IDS,
        ttl: float = CACHE_SECONDS,
    ) -> None:
        self.max_keys = max_keys
        self.max_unknown = max_unknown
        self.ttl = ttl
        self._keys: OrderedDict[str, _Entry] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys) + len(self._unknown)

    def lookup(self, key_id: str, now: float) -> _Entry | bool | None:
        """The fresh entry, False for an id known not to exist, None to read the row."""
        entry = self._keys.get(key_id)
        if entry is not None:
            if entry.fresh_until > now:
                self._keys.move_to_end(key_id)
                return entry
            del self._keys[key_id]
        missing_until = self._unknown.get(key_id)
        if missing_until is not None:
            if missing_until > now:
                return False
            del self._unknown[key_id]
        return None

    def remember(self, key_id: str, entry: _Entry) -> None:
        self._keys[key_id] = entry
        self._keys.move_to_end(key_id)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def remember_unknown(self, key_id: str, now: float) -> None:
        self._unknown[key_id] = now + self.ttl
        self._unknown.move_to_end(key_id)
        while len(self._unknown) > self.max_unknown:
            self._unknown.popitem(last=False)

    def forget(self, key_id: str) -> None:
        self._keys.pop(key_id, None)
        self._unknown.pop(key_id, None)

    def clear(self) -> None:
        self._keys.clear()
        self._unknown.clear()


key_cache = KeyCache()


def _invalid() -> Unauthorized:
    return Unauthorized("the API key is not valid", code="invalid_api_key")


def _seconds_until(moment: datetime | None, wall: datetime, now: float) -> float | None:
    return None if moment is None else now + (moment - wall).total_seconds()


_KEYS = ApiKey.__table__


async def _read(database: Database, key_id: str, cache: KeyCache, now: float) -> _Entry | None:
    # Core, not the ORM: this runs for every id the cache does not hold.
    async with database.engine.connect() as conn:
        row = (await conn.execute(select(_KEYS).where(_KEYS.c.id == key_id))).first()
    if row is None:
        cache.remember_unknown(key_id, now)
        return None
    wall = utcnow()
    last_used = row.last_used_at or wall - LAST_USED_EVERY
    entry = _Entry(
        fresh_until=now + cache.ttl,
        key_hash=row.key_hash,
        principal=Principal(
            key_id=row.id,
            role=row.role,
            departments=tuple(row.departments or ()),
            all_departments=bool(row.all_departments),
            partner=row.partner,
        ),
        revoked=row.revoked_at is not None,
        expires_at=_seconds_until(row.expires_at, wall, now),
        touch_after=now + (last_used + LAST_USED_EVERY - wall).total_seconds(),
    )
    cache.remember(key_id, entry)
    return entry


async def _touch(database: Database, key_id: str) -> None:
    """Record that the key was used; guarded so processes racing write about once."""
    wall = utcnow()
    try:
        async with database.session() as session, session.begin():
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id)
                .where(
                    or_(
                        ApiKey.last_used_at.is_(None),
                        ApiKey.last_used_at < wall - LAST_USED_EVERY,
                    )
                )
                .values(last_used_at=wall)
            )
    except SQLAlchemyError:  # advisory: a failed write must not fail the request
        log.warning("could not record the last use of API key %s", key_id, exc_info=True)


async def principal_for_key(
    plain: str, *, cache: KeyCache | None = None, database: Database | None = None
) -> Principal:
    """The principal of a valid key, or Unauthorized (before any lookup for a token not
    shaped like a key). `cache` and `database` default to the process's own."""
    match = KEY_PATTERN.fullmatch(plain) if len(plain) == KEY_LENGTH else None
    if match is None:
        raise _invalid()
    key_id = match["id"]
    cache = key_cache if cache is None else cache
    database = database or get_database()
    now = time.monotonic()
    entry = cache.lookup(key_id, now)
    if entry is None:
        entry = await _read(database, key_id, cache, now)
    if not entry or not hmac.compare_digest(entry.key_hash, _hash(plain)):
        raise _invalid()
    # Only the holder of the key itself learns why it stopped working.
    if entry.revoked:
        raise Unauthorized("this API key has been revoked", code="api_key_revoked")
    if entry.expires_at is not None and entry.expires_at <= now:
        raise Unauthorized("this API key has expired", code="api_key_expired")
    if entry.touch_after <= now:
        entry.touch_after = now + LAST_USED_EVERY.total_seconds()
        await _touch(database, key_id)
    return entry.principal


_PRINCIPAL = "onetrip.principal"


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The request's principal, once per request (then remembered on the connection):
    a valid key, within its rate limit (429 past it)."""
    known = connection.scope.get(_PRINCIPAL)  # type: ignore[call-overload]
    if known is not None:
        return known  # type: ignore[no-any-return]
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send `Authorization: Bearer <api key>`", code="missing_api_key")
    principal = await principal_for_key(token)
    await ratelimit.check_key(principal.key_id)
    connection.scope[_PRINCIPAL] = principal  # type: ignore[literal-required]
    return principal


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
