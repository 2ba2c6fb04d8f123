"""Keys across real processes: two `onetrip serve` on one database refuse a key revoked
by `onetrip keys revoke` within 5 seconds, and share its rate-limit bucket in Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import service_url
from tests.e2e.test_processes_support import (
    Process,
    clean_env,
    create_key,
    free_port,
    print_logs,
    run_onetrip,
    wait_ready,
)

#: one request every 2 seconds per key, bursts of one: a second request at once is
#: refused, by whichever server takes it, if the servers share the bucket
RATE = "0.5"


@dataclass
class Servers:
    env: dict[str, str]
    urls: list[str] = field(default_factory=list)
    processes: list[Process] = field(default_factory=list)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    workdir = tmp_path_factory.mktemp("keys-processes")
    env = clean_env(
        DATABASE_URL=f"sqlite:///{workdir / 'onetrip.db'}",
        ONETRIP_SPOOL_DIR=str(workdir / "spool"),
        ONETRIP_LOG_LEVEL="WARNING",
        ONETRIP_RATE_LIMIT=RATE,
    )
    redis = os.environ.get("ONETRIP_TEST_REDIS_URL")
    if redis:
        env["ONETRIP_RATE_LIMIT_URL"] = redis
    done = run_onetrip("db", "upgrade", env=env, cwd=workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    found = Servers(env)
    try:
        for name in ("api-a", "api-b"):
            port = free_port()
            args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
            found.processes.append(Process(name, args, env, workdir, workdir))
            found.urls.append(f"http://127.0.0.1:{port}")
        for url in found.urls:
            wait_ready(url, found.processes)
        yield found
    except BaseException:
        print_logs(found.processes)
        raise
    finally:
        for process in found.processes:
            process.stop()


def get(url: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{url}/api/v1/departments", headers=headers, timeout=10).status_code


def test_a_key_revoked_on_the_command_line_is_refused_by_every_server_within_5_s(
    servers: Servers,
) -> None:
    key = create_key(servers.env, "--role", "finance", "--name", "对账脚本")
    # Both verify it, and hold it as valid (the second may be past the rate limit).
    assert [get(url, key) for url in servers.urls] in ([200, 200], [200, 429])
    done = run_onetrip("keys", "revoke", key[4:20], env=servers.env)
    assert done.returncode == 0, done.stdout + done.stderr
    revoked_at = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < len(servers.urls):
        for url in servers.urls:
            if url not in refused and get(url, key) == 401:
                refused[url] = time.monotonic() - revoked_at
        assert time.monotonic() - revoked_at < 5, f"still accepted 5 s after: {refused}"
        time.sleep(0.5)
    listed = run_onetrip("keys", "list", env=servers.env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(key[4:20]))
    assert "对账脚本" in row and not row.rstrip().endswith("-")  # revoked, and last used


def test_two_servers_share_a_keys_bucket_through_redis(servers: Servers) -> None:
    service_url("redis")
    key = create_key(servers.env, "--role", "admin")
    headers = {"Authorization": f"Bearer {key}"}
    first, second = (
        httpx.get(f"{url}/api/v1/departments", headers=headers) for url in servers.urls
    )
    assert first.status_code == 200, first.text
    # Apart, the second server would have a full bucket of its own.
    assert second.status_code == 429, second.text
    assert second.json()["code"] == "rate_limited"
    assert second.headers["retry-after"] in ("1", "2")
