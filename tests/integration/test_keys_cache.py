"""The key cache stays bounded, and a token not shaped like a key never reaches the database."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, update

from onetrip import auth
from onetrip.auth import ApiKey, KeyCache, key_cache, principal_for_key
from onetrip.clock import utcnow
from onetrip.db import Database, unit_of_work
from onetrip.errors import Unauthorized
from tests.factories import make_key


def random_token() -> str:
    """Shaped exactly like a key, with an id nobody issued."""
    return f"otk_{secrets.token_hex(8)}_{secrets.token_urlsafe(24)}"


@contextmanager
def counted_statements() -> Iterator[list[str]]:
    """Every SQL statement any engine of this process sends, as it is sent."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    # On the Engine class: the app may run on another event loop, with its own engine.
    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_known_keys_are_a_bounded_lru() -> None:
    cache = KeyCache(max_keys=10_000, max_unknown=100)
    entry = auth._Entry(
        fresh_until=1e12,
        key_hash="",
        principal=auth.Principal(key_id="x", role="admin"),
        revoked=False,
        expires_at=None,
        touch_after=1e12,
    )
    for n in range(20_000):
        cache.remember(f"{n:016x}", entry)
        if n % 1000 == 0:
            assert cache.lookup(f"{0:016x}", 0.0) is entry  # used: stays in
    assert len(cache) == 10_000
    assert cache.lookup(f"{0:016x}", 0.0) is entry
    assert cache.lookup(f"{1:016x}", 0.0) is None  # least recently used: gone
    assert cache.lookup(f"{19_999:016x}", 0.0) is entry


def test_20000_made_up_key_ids_leave_the_cache_at_its_bound() -> None:
    cache = KeyCache()
    for _ in range(20_000):
        cache.remember_unknown(secrets.token_hex(8), now=0.0)
    assert len(cache) == auth.MAX_UNKNOWN_IDS


async def test_made_up_keys_through_the_lookup_leave_the_cache_at_its_bound(db: Database) -> None:
    """Before, each new key id added an entry for good (37.7 MB per 5,000 requests).
    Three times the bound of made-up keys, each looked up in the database (20,000 of
    them take minutes on a busy machine; the bound is the same)."""
    real = await make_key("admin")
    await principal_for_key(real)

    async def refused(token: str) -> None:
        with pytest.raises(Unauthorized):
            await principal_for_key(token)

    for _ in range(3 * auth.MAX_UNKNOWN_IDS // 32):
        await asyncio.gather(*(refused(random_token()) for _ in range(32)))
        assert len(key_cache) <= auth.MAX_UNKNOWN_IDS + 1
    assert len(key_cache) == auth.MAX_UNKNOWN_IDS + 1  # the bound, plus the real key
    assert (await principal_for_key(real)).role == "admin"


MALFORMED = [
    "garbage",
    "otk_nosuchkey_0123456789abcdef",  # the old parser looked this id up
    "otk_0123456789abcdef",
    "otk_0123456789ABCDEF_" + "A" * 32,  # ids are lowercase hex
    "otk_0123456789abcdef_" + "A" * 31,
    "otk_0123456789abcdef_" + "A" * 33,
    "otk_0123456789abcdef_" + "A" * 31 + "=",
    "otk_0123456789abcdef_" + "A" * 10_000,
    "OTK_0123456789abcdef_" + "A" * 32,
    "otk_0123456789abcdeg_" + "A" * 32,
    "otk_0123456789abcdef_" + "密" * 32,
    "otk__0123456789abcdef" + "A" * 32,
    "x" * 60_000,
]


@pytest.mark.parametrize("token", MALFORMED, ids=range(len(MALFORMED)))
async def test_a_malformed_token_is_refused_before_any_query(app_client: Any, token: str) -> None:
    with counted_statements() as statements:
        response = await app_client.get(
            "/api/v1/payments", headers={"Authorization": f"Bearer {token}".encode()}
        )
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_api_key"
    assert statements == []
    assert len(key_cache) == 0


async def test_an_unknown_id_is_looked_up_once_per_cache_period(app_client: Any) -> None:
    token = random_token()
    with counted_statements() as statements:
        for _ in range(5):
            response = await app_client.get(
                "/api/v1/payments", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401
    assert len([s for s in statements if "api_keys" in s]) == 1


async def test_a_revoked_or_expired_key_is_refused_and_says_why(db: Database) -> None:
    revoked, expired = await make_key("admin"), await make_key("admin")
    async with unit_of_work() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == revoked[4:20]).values(revoked_at=utcnow())
        )
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == expired[4:20])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(Unauthorized) as caught:
        await principal_for_key(revoked)
    assert caught.value.code == "api_key_revoked"
    with pytest.raises(Unauthorized) as caught:
        await principal_for_key(expired)
    assert caught.value.code == "api_key_expired"
    forged = revoked[:-1] + ("A" if revoked[-1] != "A" else "B")
    with pytest.raises(Unauthorized) as caught:  # without the key, no hint it was revoked
        await principal_for_key(forged)
    assert caught.value.code == "invalid_api_key"


async def test_last_used_is_written_at_most_once_a_minute(db: Database) -> None:
    key = await make_key("admin")
    key_id = key[4:20]

    async def last_used() -> Any:
        async with db.session() as session:
            row = await session.get(ApiKey, key_id)
            return row.last_used_at if row else None

    assert await last_used() is None
    with counted_statements() as statements:
        for _ in range(20):
            await principal_for_key(key)
            key_cache.clear()  # even read from the database every time
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1
    first = await last_used()
    assert first is not None and abs((utcnow() - first).total_seconds()) < 30

    # A minute later (as the database sees it), the next use writes it again.
    async with unit_of_work() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(last_used_at=first - timedelta(minutes=2))
        )
    key_cache.clear()
    await principal_for_key(key)
    again = await last_used()
    assert again is not None and again >= first
