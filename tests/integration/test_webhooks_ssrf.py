"""The SSRF guard at send time: the address checked is the resolved one, and it is the
one connected to. DNS is patched at the world's edge (`socket.getaddrinfo`)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.settings import reset_settings
from onetrip.urls import check_webhook_url
from onetrip.webhooks import attempt_delivery, enqueue, get_delivery, new_secret, transport
from tests import webhook_receiver
from tests.webhook_receiver import Receiver, serving

receiver = webhook_receiver.receiver  # the fixture

_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, list[str]], list[str]]]:
    """`dns(name, addresses)` makes `name` resolve to `addresses`; returns the list of
    names looked up (other names resolve for real)."""
    answers: dict[str, list[str]] = {}
    lookups: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name in answers:
            lookups.append(name)
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (a, int(port or 0)),
                )
                for a in answers[name]
            ]
        return _real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def answer(name: str, addresses: list[str]) -> list[str]:
        answers[name] = addresses
        return lookups

    yield answer


def private_addresses_refused(env: pytest.MonkeyPatch) -> None:
    env.setenv("ONETRIP_WEBHOOK_ALLOW_PRIVATE", "false")
    reset_settings()


async def enqueue_one(url: str, secret: str) -> str:
    async with unit_of_work() as session:
        return await enqueue(
            session,
            target="endpoint:whe_ssrf",
            url=url,
            secrets=[secret],
            event_id="evt_ssrf",
            event_type="payment.succeeded",
            created_at=utcnow(),
            data={"payment_id": "pay_1"},
        )


async def final_state(delivery_id: str) -> Any:
    async with get_database().session() as session:
        return await get_delivery(session, delivery_id)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_loopback_is_refused_at_send_time_unless_private_addresses_are_allowed(
    db: Any, env: pytest.MonkeyPatch, receiver: Receiver, host: str
) -> None:
    secret = new_secret()
    receiver.secrets = [secret]
    # Registered while private addresses were allowed; no longer allowed when sending.
    delivery_id = await enqueue_one(receiver.url(host=host, scheme="https"), secret)
    private_addresses_refused(env)

    attempt = await attempt_delivery(delivery_id)

    assert attempt is not None and attempt.outcome == "failed"
    assert attempt.error is not None and attempt.error.startswith("refused: ")
    assert "public address" in attempt.error
    assert attempt.response_status is None
    assert receiver.received == []
    view = await final_state(delivery_id)
    assert view.status == "failed" and view.next_attempt_at is None
    assert await attempt_delivery(delivery_id) is None  # no retry


@pytest.mark.parametrize(
    "addresses", [["10.0.0.7"], ["203.0.113.9", "10.0.0.7"], ["169.254.169.254"], ["fd00::7"]]
)
async def test_a_public_looking_name_that_resolves_to_a_private_address_is_refused(
    db: Any, env: pytest.MonkeyPatch, dns: Any, addresses: list[str]
) -> None:
    private_addresses_refused(env)
    url = "https://hooks.sf-express.example/onetrip"
    check_webhook_url(url)  # it looked public when it was registered
    lookups = dns("hooks.sf-express.example", addresses)
    delivery_id = await enqueue_one(url, new_secret())

    attempt = await attempt_delivery(delivery_id)

    assert lookups == ["hooks.sf-express.example"]
    assert attempt is not None and attempt.outcome == "failed"
    assert attempt.error is not None and attempt.error.startswith("refused: ")
    assert "hooks.sf-express.example resolves to" in attempt.error
    assert (await final_state(delivery_id)).status == "failed"


async def test_an_unresolvable_name_is_refused(db: Any, env: pytest.MonkeyPatch, dns: Any) -> None:
    private_addresses_refused(env)
    dns("nowhere.invalid", [])
    delivery_id = await enqueue_one("https://nowhere.invalid/hook", new_secret())
    attempt = await attempt_delivery(delivery_id)
    assert attempt is not None and attempt.error == "refused: cannot resolve nowhere.invalid"


async def test_the_request_goes_to_the_checked_address_with_the_names_host_header(
    db: Any, receiver: Receiver, dns: Any
) -> None:
    secret = new_secret()
    receiver.secrets = [secret]
    lookups = dns("courier-hooks.test", ["127.0.0.1"])
    url = receiver.url(host="courier-hooks.test")
    delivery_id = await enqueue_one(url, secret)

    attempt = await attempt_delivery(delivery_id)

    assert attempt is not None and attempt.outcome == "delivered"
    # Resolved once, by the guard: the HTTP client connected to that answer.
    assert lookups == ["courier-hooks.test"]
    assert receiver.received[0].headers["Host"] == f"courier-hooks.test:{receiver.port}"
    assert receiver.received[0].verified_by == {secret}


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"),
            *("-addext", f"subjectAltName=DNS:{name}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_to_the_checked_address_sends_the_name_for_sni_and_the_certificate(
    db: Any, env: pytest.MonkeyPatch, dns: Any, tmp_path: Path
) -> None:
    cert, key = _certificate(tmp_path, "courier-hooks.test")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda _obj, name, _ctx: sni.append(name)  # type: ignore[assignment,misc,return-value]
    # Trust the test certificate: the client's TLS context is rebuilt from SSL_CERT_FILE.
    env.setenv("SSL_CERT_FILE", str(cert))
    env.setattr(transport, "_ssl_context", None)
    dns("courier-hooks.test", ["127.0.0.1"])
    dns("impostor.test", ["127.0.0.1"])
    secret = new_secret()

    async with serving(Receiver(), server_tls) as tls_receiver:
        tls_receiver.secrets = [secret]
        good = await enqueue_one(
            tls_receiver.url(host="courier-hooks.test", scheme="https"), secret
        )
        attempt = await attempt_delivery(good)
        assert attempt is not None and attempt.outcome == "delivered"
        assert sni == ["courier-hooks.test"]

        # A name the certificate is not for fails the TLS check (and is retried later).
        async with unit_of_work() as session:
            bad = await enqueue(
                session,
                target="endpoint:whe_impostor",
                url=tls_receiver.url(host="impostor.test", scheme="https"),
                secrets=[secret],
                event_id="evt_impostor",
                event_type="payment.succeeded",
                created_at=utcnow(),
                data={},
            )
        refused = await attempt_delivery(bad)
        assert refused is not None and refused.outcome == "retry"
        assert refused.error is not None and "CERTIFICATE_VERIFY_FAILED" in refused.error
        assert len(tls_receiver.received) == 1
