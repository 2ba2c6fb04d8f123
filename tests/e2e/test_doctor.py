"""`onetrip doctor`, and the one line `serve` and `demo` say at start without a CJK font.

Run as users run them: separate processes, against real PostgreSQL, RabbitMQ,
localstripe and an SMTP server (aiosmtpd). "No CJK font installed" is the Debian font
lists emptied in the child process (the fonts on the machine are the edge of the world).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from onetrip.pdf import MISSING_FONT_ADVICE
from tests import stripe_fixtures
from tests.conftest import service_url
from tests.e2e.test_processes_support import clean_env, free_port, run_onetrip
from tests.unit.test_receipt import require_embedded_cjk_font

localstripe = stripe_fixtures.localstripe

WITHOUT_CJK_FONTS = (
    "import onetrip.pdf.fonts as fonts; "
    "fonts.DEBIAN_CJK_FONTS = (); fonts.DEBIAN_FALLBACK_FONTS = (); "
    "from onetrip.cli import main; main()"
)


def without_cjk_fonts(*args: str) -> list[str]:
    """`onetrip ARGS` in a process that finds no CJK font on the machine."""
    return [sys.executable, "-c", WITHOUT_CJK_FONTS, *args]


def rows(output: str) -> dict[str, tuple[str, str]]:
    """The doctor's table: check → (status, detail)."""
    found = {}
    for line in output.splitlines()[1:]:
        for name in ("CJK font", "database", "broker", "Stripe", "SMTP"):
            if line.startswith(name + " "):
                status, _, detail = line[len(name) :].strip().partition(" ")
                found[name] = (status, detail.strip())
    return found


@pytest.fixture
def smtp_server() -> Iterator[str]:
    """An SMTP server (aiosmtpd) on a free local port; its URL."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


# --- doctor ---------------------------------------------------------------------------


def test_doctor_with_everything_configured_and_reachable_says_ok_and_exits_0(
    tmp_path: Path, postgres_database_url: str, localstripe: str, smtp_server: str
) -> None:
    require_embedded_cjk_font()
    env = clean_env(
        DATABASE_URL=postgres_database_url,
        BROKER_URL=service_url("rabbitmq"),
        STRIPE_API_KEY="sk_test_doctor",
        STRIPE_WEBHOOK_SECRET="whsec_doctor",
        STRIPE_API_BASE=localstripe,
        SMTP_URL=smtp_server,
    )
    done = run_onetrip("doctor", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert {name: status for name, (status, _) in table.items()} == {
        "CJK font": "ok",
        "database": "ok",
        "broker": "ok",
        "Stripe": "ok",
        "SMTP": "ok",
    }, done.stdout
    assert "migrated to" in table["database"][1]
    assert localstripe in table["Stripe"][1]


def test_doctor_names_what_fails_says_what_to_do_and_exits_1(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    env = clean_env(
        DATABASE_URL=f"postgresql://postgres:pg-pw-9f3@127.0.0.1:{closed}/nowhere",
        BROKER_URL=f"amqp://guest:guest@127.0.0.1:{closed}/%2F",
        STRIPE_API_KEY="sk_test_doctor",  # and no STRIPE_WEBHOOK_SECRET
        SMTP_URL=f"smtp://mailer:hunter2@127.0.0.1:{closed}",
    )
    done = run_onetrip("doctor", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    table = rows(done.stdout)
    for name in ("database", "broker", "Stripe", "SMTP"):
        assert table[name][0] == "failed", done.stdout
    assert "STRIPE_WEBHOOK_SECRET" in table["Stripe"][1]
    assert "→ set STRIPE_WEBHOOK_SECRET" in done.stdout
    assert "→ start the database, or fix DATABASE_URL" in done.stdout
    assert "pg-pw-9f3" not in done.stdout and "hunter2" not in done.stdout  # no passwords
    assert "Traceback" not in done.stdout + done.stderr


def test_doctor_on_a_fresh_folder_says_what_is_missing_and_exits_0(tmp_path: Path) -> None:
    done = run_onetrip("doctor", env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert table["database"][0] == "missing"
    assert "`onetrip serve` creates it" in done.stdout
    assert table["broker"][0] == "ok" and "embedded" in table["broker"][1]
    assert table["Stripe"][0] == "ok" and "sandbox" in table["Stripe"][1]
    assert table["SMTP"][0] == "missing"
    assert not (tmp_path / "onetrip.db").exists()  # the doctor looks, never creates


def test_doctor_sees_a_database_behind_this_codes_migrations(tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'old.db'}")
    old = run_onetrip("db", "upgrade", "--revision", "0006", env=env, cwd=tmp_path)
    assert old.returncode == 0, old.stdout + old.stderr
    done = run_onetrip("doctor", env=env, cwd=tmp_path)
    status, detail = rows(done.stdout)["database"]
    # Embedded, `serve` migrates first: missing, not failed.
    assert status == "missing" and "schema at 0006" in detail, done.stdout
    assert "run `onetrip db upgrade`" in done.stdout
    assert run_onetrip("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    assert rows(run_onetrip("doctor", env=env, cwd=tmp_path).stdout)["database"][0] == "ok"


def test_doctor_without_a_cjk_font_names_the_package_and_the_setting(tmp_path: Path) -> None:
    done = subprocess.run(
        without_cjk_fonts("doctor"),
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr  # PDFs still render
    status, detail = rows(done.stdout)["CJK font"]
    assert status == "missing" and "STSong-Light" in detail, done.stdout
    assert "apt-get install fonts-wqy-microhei" in done.stdout
    assert "ONETRIP_CJK_FONT" in done.stdout


def test_doctor_fails_a_configured_font_that_does_not_load(tmp_path: Path) -> None:
    not_a_font = tmp_path / "font.ttf"
    not_a_font.write_text("not a font")
    done = run_onetrip("doctor", env=clean_env(ONETRIP_CJK_FONT=str(not_a_font)), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    status, detail = rows(done.stdout)["CJK font"]
    assert status == "failed" and str(not_a_font) in detail, done.stdout


# --- the line at start ------------------------------------------------------------------


def advice_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "fonts-wqy-microhei" in line]


def test_demo_says_in_one_line_at_start_that_no_cjk_font_was_found(tmp_path: Path) -> None:
    done = subprocess.run(
        without_cjk_fonts("demo", "--no-serve"),
        env=clean_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [line] = advice_lines(done.stdout + done.stderr)
    assert MISSING_FONT_ADVICE in line and "ONETRIP_CJK_FONT" in line
    assert done.stderr.lstrip().startswith("WARNING: ")  # said first, before the seeding


def test_serve_says_it_once_and_nothing_when_a_font_is_installed(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            without_cjk_fonts("serve", "--port", str(port)),
            env=clean_env(),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 45
        ready = False
        while time.monotonic() < deadline and server.poll() is None and not ready:
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).is_success
            time.sleep(0.2)
        assert ready, log_path.read_text(errors="replace")
        [line] = advice_lines(log_path.read_text(errors="replace"))
        assert MISSING_FONT_ADVICE in line
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)

    require_embedded_cjk_font()
    done = run_onetrip("demo", "--no-serve", env=clean_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert advice_lines(done.stdout + done.stderr) == []
