"""Idempotency-Key handling for every POST that moves money or goods.

The key is scoped to the API key that sent it and stored with a hash of the request.
Same key and same request → the first response again (status and body); same key and
another request → 422 `idempotency_key_reused`. The record is written in the same
transaction as the change, so either both exist or neither does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar import Response as LitestarResponse
from litestar.params import HeaderParameter
from sqlalchemy import JSON, Integer, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from onetrip.clock import utcnow
from onetrip.db import Base, UTCDateTime, get_database, insert_ignoring_conflicts, unit_of_work
from onetrip.errors import (
    BadRequest,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    OneTripError,
)
from onetrip.jsonbody import check_nesting

MAX_KEY_LENGTH = 255


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(40))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


Response = tuple[int, Any]


def canonical_body(body: bytes) -> bytes:
    """The same JSON however it is spelled (key order, whitespace, escapes), so a
    client's retry that serialises the same request differently is still a replay."""
    if not body:
        return body
    check_nesting(body)  # a body no handler decodes still must not recurse without end
    try:
        return msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except (msgspec.DecodeError, msgspec.EncodeError):
        return body


def fingerprint(method: str, path: str, body: bytes) -> str:
    body = canonical_body(body)
    digest = hashlib.sha256()
    digest.update(method.encode())
    digest.update(b"\0")
    digest.update(path.encode())
    digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def check_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise BadRequest(
            "this request moves money or goods: send an Idempotency-Key header",
            code="idempotency_key_required",
        )
    if len(key) > MAX_KEY_LENGTH:
        raise BadRequest(
            f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters",
            code="idempotency_key_invalid",
        )
    return key


class _Replay(Exception):
    pass


async def claim(
    session: AsyncSession,
    scope: str,
    key: str,
    request_fingerprint: str,
    *,
    resource_id: str | None = None,
    response: Response | None = None,
) -> bool:
    """Insert the record; False if it already exists (then nothing is written)."""
    table = IdempotencyRecord.__table__
    status_code, body = response if response else (None, None)
    stmt = (
        insert_ignoring_conflicts(session, table, ["scope", "key"])
        .values(
            scope=scope,
            key=key,
            fingerprint=request_fingerprint,
            resource_id=resource_id,
            status_code=status_code,
            response=body,
            created_at=utcnow(),
        )
        .returning(table.c.key)
    )
    return (await session.execute(stmt)).first() is not None


async def complete(session: AsyncSession, scope: str, key: str, response: Response) -> Response:
    """Store the response of a claimed key, unless one is stored already (a stalled
    request and its retry can both finish); returns the response that stands."""
    table = IdempotencyRecord.__table__
    written = await session.execute(
        update(table)
        .where(table.c.scope == scope, table.c.key == key, table.c.status_code.is_(None))
        .values(status_code=response[0], response=response[1])
    )
    if written.rowcount:
        return response
    row = (
        await session.execute(
            select(table.c.status_code, table.c.response).where(
                table.c.scope == scope, table.c.key == key
            )
        )
    ).one()
    return row.status_code, row.response


async def find_record(scope: str, key: str, request_fingerprint: str) -> IdempotencyRecord | None:
    """The record of this key, or None if the key is unused; 422 if the key was used
    for another request."""
    async with get_database().session() as session:
        row = (
            await session.execute(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
                )
            )
        ).scalar_one_or_none()
    if row is not None and row.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was already used with a different request")
    return row


async def stored_response(scope: str, key: str, request_fingerprint: str) -> Response | None:
    """The first response for this key, or None if the key is unused.

    Raises 422 if the key was used for another request, 409 if that request has not
    finished yet.
    """
    row = await find_record(scope, key, request_fingerprint)
    if row is None:
        return None
    if row.status_code is None:
        raise IdempotencyInProgress()
    return row.status_code, row.response


async def run_idempotent(
    scope: str,
    key: str | None,
    request_fingerprint: str,
    operation: Callable[[AsyncSession], Awaitable[Response]],
) -> Response:
    """Run `operation` in one unit of work, recording its response under the key.

    The record is inserted at the end of the same transaction: the common case (a new
    key) costs one statement, and a concurrent duplicate waits on the key's unique index
    and then finds the first response. If the operation fails, a stored response for the
    key still wins (a replayed cancel must not turn into a 409).
    """
    key = check_key(key)
    try:
        async with unit_of_work() as session:
            response = await operation(session)
            if not await claim(session, scope, key, request_fingerprint, response=response):
                raise _Replay
        return response
    except (_Replay, OneTripError) as exc:
        stored = await stored_response(scope, key, request_fingerprint)
        if stored is None:
            if isinstance(exc, _Replay):  # the other request rolled back meanwhile
                raise IdempotencyInProgress() from None
            raise
        return stored


# --- the HTTP edge ------------------------------------------------------------------

#: The header as a controller parameter. Optional here: `run_idempotent` refuses a
#: missing key where one is required (400 idempotency_key_required), and the OpenAPI
#: post-processor marks it required there.
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", required=False, description="Makes retries safe"),
]


async def idempotent_response(
    request: Request[Any, Any, Any],
    scope: str,
    key: str | None,
    operation: Callable[[AsyncSession], Awaitable[Any]],
    status_code: int,
) -> LitestarResponse[Any]:
    """Run `operation` (returning a view) in one unit of work, answered with
    `status_code`, and replayed under the Idempotency-Key (same status, same body)."""
    print_ = fingerprint(request.method, request.url.path, await request.body())

    async def run(session: AsyncSession) -> tuple[int, Any]:
        return status_code, msgspec.to_builtins(await operation(session))

    status, body = await run_idempotent(scope, key, print_, run)
    return LitestarResponse(body, status_code=status)
