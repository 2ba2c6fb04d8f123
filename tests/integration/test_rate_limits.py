"""Rate limits: a token bucket per API key (in this process, or shared through Redis),
and per client address on applicant pages; 429 problem+json with Retry-After."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from onetrip import ratelimit
from onetrip.ratelimit import LocalBuckets, RedisBuckets
from onetrip.settings import reset_settings
from tests.conftest import service_url
from tests.factories import auth, make_key


def limit(env: pytest.MonkeyPatch, per_second: str, **extra: str) -> None:
    env.setenv("ONETRIP_RATE_LIMIT", per_second)
    for name, value in extra.items():
        env.setenv(name, value)
    reset_settings()
    ratelimit.reset()


def assert_rate_limited(response: Any) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "rate_limited" and body["status"] == 429
    assert int(response.headers["retry-after"]) >= 1


async def test_a_key_gets_twice_its_rate_as_a_burst_then_429(app_client, env):
    limit(env, "2")
    key, other = await make_key("admin"), await make_key("admin")
    statuses = [
        (await app_client.get("/api/v1/departments", headers=auth(key))).status_code
        for _ in range(4)
    ]
    assert statuses == [200] * 4
    refused = await app_client.get("/api/v1/departments", headers=auth(key))
    assert_rate_limited(refused)
    assert refused.headers["retry-after"] == "1"  # half a second, rounded up
    # Another key has a bucket of its own.
    assert (await app_client.get("/api/v1/departments", headers=auth(other))).status_code == 200


async def test_a_key_is_limited_on_every_endpoint_and_role(app_client, env):
    limit(env, "1")
    finance = await make_key("finance")
    paths = ["/api/v1/ledger/accounts", "/api/v1/payments", "/api/v1/admin/keys"]
    responses = [await app_client.get(p, headers=auth(finance)) for p in paths]
    assert [r.status_code for r in responses] == [200, 200, 429]  # 403 after the limit check


async def test_applicant_pages_are_limited_per_client_address(app_client, env):
    limit(env, "100000", ONETRIP_PAGE_RATE_LIMIT="1")
    token = secrets.token_urlsafe(16)
    first = [await app_client.get(f"/track/{token}") for _ in range(2)]
    assert all(r.status_code != 429 for r in first), [r.status_code for r in first]
    assert_rate_limited(await app_client.get(f"/pay/{token}"))
    # The API, with a key, is not counted against the address.
    assert (await app_client.get("/health/live")).status_code == 200


def test_a_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = LocalBuckets(clock=lambda: now[0])
    assert [buckets.take_now("k", 2, 4) for _ in range(4)] == [0, 0, 0, 0]
    assert buckets.take_now("k", 2, 4) == pytest.approx(0.5)
    now[0] = 0.5
    assert buckets.take_now("k", 2, 4) == 0  # one token back
    assert buckets.take_now("k", 2, 4) == pytest.approx(0.5)
    now[0] = 100.0
    assert [buckets.take_now("k", 2, 4) for _ in range(5)][-1] > 0  # refilled to the burst only


def test_in_process_buckets_are_bounded() -> None:
    buckets = LocalBuckets(max_buckets=1000)
    for n in range(20_000):
        buckets.take_now(f"addr:10.0.{n // 256}.{n % 256}", 10, 20)
    assert len(buckets) == 1000
    assert ratelimit.MAX_LOCAL_BUCKETS <= 10_000


async def test_a_rate_of_0_turns_limiting_off(app_client, env):
    limit(env, "0")
    key = await make_key("admin")
    for _ in range(10):
        assert (await app_client.get("/api/v1/departments", headers=auth(key))).status_code == 200


# --- shared through Redis ---------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    return service_url("redis")


async def test_processes_share_a_keys_bucket_through_redis(app_client, env, redis_url):
    """Process A is the app; process B, another API process, has its own connection to
    the same Redis. Two local bucket sets would let the key through twice as often."""
    limit(env, "2", ONETRIP_RATE_LIMIT_URL=redis_url)
    key = await make_key("admin")
    key_id = key[4:20]
    other_process = RedisBuckets(redis_url)
    try:
        for _ in range(2):
            response = await app_client.get("/api/v1/departments", headers=auth(key))
            assert response.status_code == 200, response.text
        assert await other_process.take(f"key:{key_id}", 2, 4) == 0
        assert await other_process.take(f"key:{key_id}", 2, 4) == 0
        refused = await app_client.get("/api/v1/departments", headers=auth(key))
        assert_rate_limited(refused)
        assert await other_process.take(f"key:{key_id}", 2, 4) > 0
        assert isinstance(ratelimit.buckets(), RedisBuckets)
    finally:
        await other_process.close()
        await ratelimit.buckets().close()  # type: ignore[attr-defined]

    separate = [LocalBuckets(), LocalBuckets()]  # what each process would do alone
    assert [separate[n % 2].take_now("k", 2, 4) for n in range(8)] == [0] * 8


async def test_without_redis_the_process_limits_on_its_own(app_client, env):
    limit(env, "1", ONETRIP_RATE_LIMIT_URL="redis://127.0.0.1:1/0")  # nothing listens
    key = await make_key("admin")
    statuses = [
        (await app_client.get("/api/v1/departments", headers=auth(key))).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
