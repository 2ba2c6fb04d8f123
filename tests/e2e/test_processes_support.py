"""Helpers for tests that run `onetrip` as separate OS processes (no tests in here).

- `isolated_broker_url`: a RabbitMQ vhost of its own per test session when
  `rabbitmqctl` can manage the local server, so other people's workers on the shared
  server never take our messages; otherwise the configured URL as it is (tests are
  written to tolerate leftover messages from other runs).
- `Process`: an `onetrip` subprocess whose output goes to a log file, stopped with
  SIGTERM (then SIGKILL) and whose log is printed when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

ONETRIP = str(Path(sys.executable).with_name("onetrip"))
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def onetrip_command(*args: str) -> list[str]:
    """The installed `onetrip` script, or `python -m onetrip.cli` when not installed."""
    if Path(ONETRIP).exists():
        return [ONETRIP, *args]
    return [sys.executable, "-m", "onetrip.cli", *args]


def free_port() -> int:
    """A port free now, below the kernel's ephemeral range: a port the kernel hands out
    (bind to 0) can be taken, before the server binds it, as the local end of any
    outgoing connection (the other test worker's database clients: seen in CI as
    "address already in use")."""
    low = _ephemeral_low()
    for _ in range(200):
        port = 10_000 + secrets.randbelow(max(low - 10_000, 1))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # nothing free down there: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without any OneTrip configuration, plus `overrides`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ONETRIP_", "STRIPE_"))
        and name not in ("DATABASE_URL", "BROKER_URL", "SMTP_URL")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def run_onetrip(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        onetrip_command(*args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_key(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start `onetrip keys create ...`; `key_of` waits for it (so several can overlap)."""
    return subprocess.Popen(
        onetrip_command("keys", "create", *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def key_of(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """The key a `start_key` process printed: its output's last line."""
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stdout + stderr
    return stdout.strip().splitlines()[-1]


def create_key(env: dict[str, str], *args: str) -> str:
    """`onetrip keys create ...` → the key (its output's last line)."""
    return key_of(start_key(env, *args))


# --- RabbitMQ isolation --------------------------------------------------------------


def _rabbitmqctl(*args: str) -> bool:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return False
    try:
        done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _with_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))


@contextlib.contextmanager
def isolated_broker_url(url: str) -> Iterator[tuple[str, str | None]]:
    """(broker URL, vhost we created or None). A RabbitMQ URL on this machine gets a
    fresh vhost, deleted afterwards; anything else is used as it is."""
    parts = urlsplit(url)
    vhost = f"onetrip_test_{os.getpid()}_{secrets.token_hex(3)}"
    user = parts.username or "guest"
    if (
        parts.scheme.startswith("amqp")
        and (parts.hostname or "") in LOCAL_HOSTS
        and _rabbitmqctl("add_vhost", vhost)
    ):
        try:
            if _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*"):
                yield _with_vhost(url, vhost), vhost
            else:
                yield url, None
        finally:
            _rabbitmqctl("delete_vhost", vhost)
    else:
        yield url, None


def delete_vhost(vhost: str) -> bool:
    return _rabbitmqctl("delete_vhost", vhost)


# --- processes -----------------------------------------------------------------------


class Process:
    """An `onetrip` subprocess logging to a file."""

    def __init__(
        self, name: str, args: Sequence[str], env: dict[str, str], cwd: Path, log_dir: Path
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            onetrip_command(*args),
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our signals reach it, the terminal's do not
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, wait, then SIGKILL the whole process group (uvicorn's workers too)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        # uvicorn's worker processes share the group; make sure none is left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()
        return self.popen.returncode


def print_logs(processes: Sequence[Process]) -> None:
    for process in processes:
        print(f"\n===== {process.name} (pid {process.pid}, exit {process.popen.poll()}) =====")
        print(process.output()[-20_000:])


def wait_ready(base_url: str, processes: Sequence[Process], timeout: float = 30) -> None:
    """Until GET /health/ready is 200; fails early if a process dies."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        for process in processes:
            if not process.alive():
                raise AssertionError(f"{process.name} exited with {process.popen.returncode}")
        try:
            response = httpx.get(f"{base_url}/health/ready", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise AssertionError(f"{base_url}/health/ready not ready in {timeout}s: {last}")
