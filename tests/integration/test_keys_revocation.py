"""Admin key endpoints and the CLI: list, create with a name and expiry, revoke; a revoked
key is refused by every process within 5 seconds."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from onetrip.auth import KeyCache, principal_for_key
from onetrip.cli import main, parse_duration
from onetrip.clock import utcnow
from onetrip.db import Database, set_database
from onetrip.errors import Unauthorized
from onetrip.settings import async_database_url, reset_settings
from tests.factories import auth, make_key, seed_catalogue

KEY_FIELDS = {
    "id",
    "name",
    "role",
    "departments",
    "all_departments",
    "partner",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
}


@pytest.fixture
async def admin(app_client: Any) -> str:
    key = await make_key("admin")
    await seed_catalogue(app_client, key)
    return key


async def create(client: Any, admin: str, **body: Any) -> Any:
    return await client.post("/api/v1/admin/keys", json=body, headers=auth(admin))


async def test_an_admin_creates_a_named_key_shown_once_that_works(app_client, admin):
    response = await create(
        app_client, admin, role="department", departments=["PSB"], name="出入境"
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == KEY_FIELDS | {"key"}
    assert created["name"] == "出入境" and created["departments"] == ["PSB"]
    assert created["revoked_at"] is None and created["last_used_at"] is None
    used = await app_client.get("/api/v1/payments", headers=auth(created["key"]))
    assert used.status_code == 200, used.text

    listed = await app_client.get("/api/v1/admin/keys", headers=auth(admin))
    assert listed.status_code == 200
    rows = {row["id"]: row for row in listed.json()["data"]}
    assert set(rows[created["id"]]) == KEY_FIELDS  # never the key, nor its hash
    assert created["key"] not in listed.text
    assert rows[created["id"]]["last_used_at"] is not None
    assert len(rows) == 2 and listed.json()["next_cursor"] is None


async def test_the_key_list_pages_newest_first(app_client, admin):
    ids = [
        (await create(app_client, admin, role="finance", name=f"f{n}")).json()["id"]
        for n in range(5)
    ]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await app_client.get("/api/v1/admin/keys", params=query, headers=auth(admin))
        assert page.status_code == 200, page.text
        seen += [row["id"] for row in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len(set(seen)) == 6
    assert [i for i in seen if i in ids] == list(reversed(ids))


@pytest.mark.parametrize(
    ("body", "field_or_code"),
    [
        ({"role": "department", "departments": ["NOPE"]}, "unknown_department"),
        ({"role": "courier", "partner": "NOPE"}, "unknown_partner"),
        ({"role": "department"}, "validation_failed"),
        ({"role": "root"}, "validation_failed"),
        ({"role": "admin", "expires_at": "2020-01-01T00:00:00Z"}, "invalid_expiry"),
        ({"role": "admin", "key": "otk_mine"}, "validation_failed"),
    ],
)
async def test_a_key_that_could_never_work_is_refused(app_client, admin, body, field_or_code):
    response = await create(app_client, admin, **body)
    assert response.status_code in (400, 422), response.text
    assert response.json()["code"] == field_or_code
    listed = await app_client.get("/api/v1/admin/keys", headers=auth(admin))
    assert len(listed.json()["data"]) == 1  # only the admin's own


async def test_an_expiring_key_stops_working_when_it_expires(app_client, admin):
    expires = (utcnow() + timedelta(seconds=2)).isoformat()
    created = (await create(app_client, admin, role="finance", expires_at=expires)).json()
    assert created["expires_at"] is not None
    ok = await app_client.get("/api/v1/ledger/accounts", headers=auth(created["key"]))
    assert ok.status_code == 200, ok.text
    await asyncio.sleep(2.2)
    refused = await app_client.get("/api/v1/ledger/accounts", headers=auth(created["key"]))
    assert refused.status_code == 401 and refused.json()["code"] == "api_key_expired"


async def test_revoking_a_key_refuses_it_at_once_here_and_again_is_no_change(app_client, admin):
    created = (await create(app_client, admin, role="finance")).json()
    assert (
        await app_client.get("/api/v1/ledger/accounts", headers=auth(created["key"]))
    ).status_code == 200
    revoked = await app_client.delete(f"/api/v1/admin/keys/{created['id']}", headers=auth(admin))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None and "key" not in revoked.json()
    refused = await app_client.get("/api/v1/ledger/accounts", headers=auth(created["key"]))
    assert refused.status_code == 401 and refused.json()["code"] == "api_key_revoked"
    again = await app_client.delete(f"/api/v1/admin/keys/{created['id']}", headers=auth(admin))
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    unknown = await app_client.delete("/api/v1/admin/keys/0123456789abcdef", headers=auth(admin))
    assert unknown.status_code == 404 and unknown.json()["code"] == "api_key_not_found"


async def test_another_process_refuses_a_revoked_key_within_5_seconds(app_client, admin, db_url):
    """Process B: its own database engine and key cache, on the same database, holding
    the key as verified; the key is revoked through process A's admin endpoint."""
    created = (await create(app_client, admin, role="department", departments=["PSB"])).json()
    other = Database(async_database_url(db_url))
    other_cache = KeyCache()
    try:
        assert (await principal_for_key(created["key"], cache=other_cache, database=other)).role
        revoked = await app_client.delete(
            f"/api/v1/admin/keys/{created['id']}", headers=auth(admin)
        )
        assert revoked.status_code == 200
        started = time.monotonic()
        while True:
            try:
                await principal_for_key(created["key"], cache=other_cache, database=other)
            except Unauthorized as refused:
                assert refused.code == "api_key_revoked"
                break
            assert time.monotonic() - started < 5, "still accepted 5 s after revocation"
            await asyncio.sleep(0.05)
        assert time.monotonic() - started > 0.5  # it was B's cache that held it, not luck
    finally:
        await other.dispose()


# --- the command line -----------------------------------------------------------------


def test_durations() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("1d12h") == timedelta(days=1, hours=12)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    for bad in ("", "30", "d", "1x", "1d 2h", "-1d", "0s"):
        with pytest.raises(Exception, match="duration"):
            parse_duration(bad)


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_keys_list_and_revoke_on_the_command_line(db_url: str, env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_URL", db_url)
    reset_settings()
    set_database(None)
    try:
        made = cli(
            "keys", "create", "--role", "admin", "--label", "ops 值班", "--expires-in", "30d"
        )
        assert made.exit_code == 0, made.output
        key = made.output.strip().splitlines()[-1]
        finance = cli("keys", "create", "--role", "finance", "--name", "财务处")
        assert finance.exit_code == 0, finance.output
        key_id = key[4:20]

        listed = cli("keys", "list")
        assert listed.exit_code == 0, listed.output
        lines = listed.output.strip().splitlines()
        assert lines[0].split() == [
            "ID", "NAME", "ROLE", "SCOPE", "CREATED", "LAST", "USED", "EXPIRES", "REVOKED"
        ]  # fmt: skip
        assert len(lines) == 3 and key not in listed.output
        mine = next(line for line in lines if line.startswith(key_id))
        assert "ops 值班" in mine and " admin " in mine and " all " in mine
        expiry = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%d")
        assert expiry in mine and mine.rstrip().endswith("-")  # not revoked

        revoked = cli("keys", "revoke", key_id)
        assert revoked.exit_code == 0, revoked.output
        assert f"key {key_id} (ops 值班) revoked at" in revoked.output
        mine = next(
            line for line in cli("keys", "list").output.splitlines() if line.startswith(key_id)
        )
        assert not mine.rstrip().endswith("-")

        unknown = CliRunner().invoke(main, ["keys", "revoke", "0123456789abcdef"])
        assert unknown.exit_code != 0 and "there is no API key 0123456789abcdef" in unknown.output
    finally:
        set_database(None)
