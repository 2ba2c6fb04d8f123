"""The `onetrip` command line, run as users run it: a separate process in a folder."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_processes_support import (
    Process,
    clean_env,
    free_port,
    onetrip_command,
    print_logs,
    run_onetrip,
    wait_ready,
)


def sqlite_env(path: Path, **extra: str) -> dict[str, str]:
    return clean_env(DATABASE_URL=f"sqlite:///{path}", **extra)


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def query(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_db_upgrade_creates_the_schema_in_a_fresh_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    done = run_onetrip("db", "upgrade", env=sqlite_env(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "database at head" in done.stdout
    assert {"alembic_version", "api_keys", "departments", "matters", "payments"} <= tables(path)
    assert {"outbox_events", "consumed_events", "payment_receipts"} <= tables(path)
    # and again: nothing to do, no error
    again = run_onetrip("db", "upgrade", env=sqlite_env(path), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr


async def test_keys_create_prints_the_key_alone_on_the_last_line_and_it_works(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.db"
    assert run_onetrip("db", "upgrade", env=sqlite_env(path), cwd=tmp_path).returncode == 0
    with sqlite3.connect(path) as connection:  # the department the key is bound to
        connection.execute(
            "INSERT INTO departments (code, name, timezone, created_at)"
            " VALUES ('PSB', '市公安局', 'Asia/Shanghai', '2026-11-26 08:00:00')"
        )
    done = run_onetrip(
        "keys", "create", "--role", "department", "--department", "PSB",
        env=sqlite_env(path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    key = lines[-1]
    assert re.fullmatch(r"otk_[0-9a-z]+_[A-Za-z0-9_-]+", key), done.stdout
    assert key not in "\n".join(lines[:-1])  # shown once
    assert "PSB" in "\n".join(lines[:-1])

    # The key authenticates against an app on the same database.
    from litestar.testing import AsyncTestClient

    from onetrip.app import create_app
    from onetrip.broker import configure_broker
    from onetrip.db import set_database
    from onetrip.settings import get_settings, reset_settings

    env.setenv("DATABASE_URL", f"sqlite:///{path}")
    reset_settings()
    try:
        app = create_app(get_settings(), embedded_worker=False)
        async with AsyncTestClient(app=app) as client:
            ok = await client.get("/api/v1/payments", headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200, ok.text
            assert ok.json()["data"] == []
            forged = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
            bad = await client.get(
                "/api/v1/payments", headers={"Authorization": f"Bearer {forged}"}
            )
            assert bad.status_code == 401
    finally:
        set_database(None)
        configure_broker(None)


BAD_KEYS = [
    (["--role", "superuser"], "Invalid value for '--role'"),
    (["--role", "department"], "a department key is bound to exactly one department"),
    (
        ["--role", "department", "--department", "PSB", "--department", "NRB"],
        "a department key is bound to exactly one department",
    ),
    (["--role", "courier"], "a courier key is bound to one courier partner"),
    (["--role", "department", "--department", "NOPE"], "there is no department NOPE"),
    (["--role", "courier", "--partner", "NOPE"], "there is no courier partner NOPE"),
]


def test_keys_create_refuses_bad_input_clearly(tmp_path: Path) -> None:
    """A non-zero exit and one clear line, no traceback, no key (all run at once)."""
    running = [
        subprocess.Popen(
            onetrip_command("keys", "create", *args),
            env=sqlite_env(tmp_path / f"keys{n}.db"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, (args, _) in enumerate(BAD_KEYS)
    ]
    for process, (args, message) in zip(running, BAD_KEYS, strict=True):
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode != 0, (args, stdout)
        assert message in stderr, (args, stdout + stderr)
        assert "Traceback" not in stderr
        assert "otk_" not in stdout


@pytest.mark.parametrize("command", ["worker", "relay"])
def test_worker_and_relay_need_a_broker_url(tmp_path: Path, command: str) -> None:
    done = run_onetrip(command, env=sqlite_env(tmp_path / "x.db"), cwd=tmp_path, timeout=30)
    assert done.returncode != 0
    assert "set BROKER_URL" in done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["worker", "relay", "serve"])
def test_a_broker_url_of_another_kind_is_a_clear_error(tmp_path: Path, command: str) -> None:
    env = sqlite_env(tmp_path / "x.db", BROKER_URL="http://127.0.0.1:1/")
    done = run_onetrip(command, env=env, cwd=tmp_path, timeout=30)
    assert done.returncode != 0
    assert "BROKER_URL must be amqp:// or redis://" in done.stderr, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_demo_no_serve_seeds_and_prints_how_to_try_it(tmp_path: Path) -> None:
    done = run_onetrip("demo", "--no-serve", env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    database = tmp_path / "onetrip.db"  # the default: a SQLite file in the working folder
    assert database.exists()

    departments = {code for (code,) in query(database, "SELECT code FROM departments")}
    assert {"PSB", "NRB", "HCB"} <= departments
    splits = [json.loads(s) for (s,) in query(database, "SELECT fee_split FROM matter_fees")]
    assert len(splits) >= 3
    joint = [s for s in splits if len({share["department"] for share in s}) > 1]
    assert joint, splits  # at least one matter is paid once and shared by departments
    assert all(sum(share["share_bps"] for share in s) == 10000 for s in splits)

    assert "http://127.0.0.1:8000/api/v1" in out
    assert "http://127.0.0.1:8000/health/ready" in out
    assert re.search(r"key admin\s+otk_", out)
    assert re.search(r"key department:PSB\s+otk_", out)
    assert "curl -s -X POST http://127.0.0.1:8000/api/v1/payments" in out
    assert "4242 4242 4242 4242" in out

    # Seeding twice keeps one catalogue (and shows the same keys again).
    again = run_onetrip("demo", "--no-serve", env=clean_env(), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert query(database, "SELECT count(*) FROM departments") == [(len(departments),)]


def demo_payment_request(output: str) -> tuple[str, dict[str, Any]]:
    """The PSB key and the JSON body of the curl line `onetrip demo` printed."""
    key = re.search(r"Authorization: Bearer (otk_\S+)'", output)
    body = re.search(r"-d '(\{.*\})'", output)
    assert key and body, output
    return key.group(1), json.loads(body.group(1))


def test_demo_serves_the_whole_flow_with_no_configuration(tmp_path: Path) -> None:
    """The README's run command: `onetrip demo`, in an empty folder, nothing configured."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    demo = Process("demo", ["demo", "--port", str(port)], clean_env(), tmp_path, tmp_path)
    try:
        wait_ready(base, [demo], timeout=45)
        output = demo.output()
        assert f"{base}/api/v1" in output  # the printed URLs are where it serves
        key, body = demo_payment_request(output)
        client = httpx.Client(base_url=base, timeout=15)

        created = client.post(
            "/api/v1/payments",
            json=body,
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "demo-1"},
        )
        assert created.status_code == 201, created.text
        payment = created.json()
        assert payment["matter_code"] == "passport" and payment["amount"] == 12000
        assert payment["payment_url"].startswith(f"{base}/pay/")

        page = client.get(payment["payment_url"])
        assert page.status_code == 200 and "4242424242424242" in page.text
        token = payment["payment_url"].rsplit("/", 1)[1]
        paid = client.post(
            f"/pay/{token}/sandbox",
            data={"card_number": "4242 4242 4242 4242"},
            follow_redirects=False,
        )
        assert paid.status_code == 303, paid.text
        current = client.get(
            f"/api/v1/payments/{payment['id']}", headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert current["status"] == "succeeded"

        # The in-process worker renders the receipt (before anyone asks for it).
        database = tmp_path / "onetrip.db"
        deadline = time.monotonic() + 15
        sql = "SELECT count(*) FROM payment_receipts WHERE payment_id = ?"
        while query(database, sql, payment["id"]) != [(1,)]:
            assert time.monotonic() < deadline, "the in-process worker rendered no receipt"
            assert demo.alive()
            time.sleep(0.1)
        pdf = client.get(
            f"/api/v1/payments/{payment['id']}/receipt.pdf",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    except BaseException:
        print_logs([demo])
        raise
    finally:
        code = demo.stop()
    # uvicorn shuts down gracefully, then re-raises SIGTERM (so it may exit by it)
    assert code in (0, -15), demo.output()
    assert "Application shutdown complete" in demo.output()


def test_the_demo_carries_a_licence_from_payment_to_the_door(tmp_path: Path) -> None:
    """`onetrip demo` with nothing configured shows the whole journey: a paid passport's
    licence is issued, rendered, printed to the spool, dispatched to the demo partner and
    moved to `delivered` by the simulated courier through the courier API. (Its cut-off
    and the simulator's steps are shortened; by default they take a minute or two.)"""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(ONETRIP_PRINT_INTERVAL="1", ONETRIP_COURIER_SIMULATOR_STEP="1")
    demo = Process("demo", ["demo", "--port", str(port)], env, tmp_path, tmp_path)
    try:
        wait_ready(base, [demo], timeout=45)
        # the signing key exists from the first start, beside the database, mode 600
        key_file = tmp_path / "signing-key.pem"
        assert key_file.exists() and key_file.stat().st_mode & 0o777 == 0o600
        key, body = demo_payment_request(demo.output())
        client = httpx.Client(base_url=base, timeout=15)
        headers = {"Authorization": f"Bearer {key}"}
        payment = client.post(
            "/api/v1/payments", json=body, headers={**headers, "Idempotency-Key": "door-1"}
        ).json()
        token = payment["payment_url"].rsplit("/", 1)[1]
        client.get(f"/pay/{token}")
        client.post(f"/pay/{token}/sandbox", data={"card_number": "4242424242424242"})
        issued = client.post(
            "/api/v1/licenses",
            json={
                "payment_id": payment["id"],
                "license_no": "浙公出 330100-2026-000001",
                "title": "中华人民共和国普通护照",
                "holder_name": body["applicant"]["name"],
                "fields": {"护照号码": "E12345678"},
            },
            headers={**headers, "Idempotency-Key": "door-licence-1"},
        )
        assert issued.status_code == 201, issued.text
        licence = issued.json()

        deadline = time.monotonic() + 60
        status = licence["status"]
        while status != "delivered":
            assert time.monotonic() < deadline, f"the licence stopped at {status}"
            assert demo.alive()
            time.sleep(0.5)
            status = client.get(f"/api/v1/licenses/{licence['id']}", headers=headers).json()[
                "status"
            ]
        events = client.get(f"/api/v1/licenses/{licence['id']}/events", headers=headers).text
        for step in ("rendered", "printed", "dispatched", "out_for_delivery", "delivered"):
            assert step in events, (step, events)
        assert list((tmp_path / "spool").rglob("*.pdf")), "the print run went to the spool"
        dispatch = client.get(f"/api/v1/licenses/{licence['id']}", headers=headers).json()
        track = client.get(f"/track/{token}").text
        assert "顺丰" in track and json.dumps(dispatch, ensure_ascii=False).count("OT") >= 1
        tracking = re.search(r"OT\d{12}", json.dumps(dispatch))
        assert tracking and tracking.group(0) in track, "the track page names the parcel"
    except BaseException:
        print_logs([demo])
        raise
    finally:
        demo.stop()
