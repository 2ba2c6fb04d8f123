"""Fixtures for the Stripe path against localstripe (a stateful fake Stripe).

- `localstripe`: one localstripe process per test session, bound to 127.0.0.1 on a
  free port (its CLI would listen on every interface), its store flushed per test.
- `stripe_stack`: the real app served by uvicorn in a background thread (so
  localstripe can POST webhooks to it), configured for Stripe, on each database
  dialect (`db_url`), with keys and the catalogue seeded. Tests drive it over HTTP
  with httpx and talk to localstripe with the real stripe SDK.

A test module makes them its own by name (no `pytest_plugins`):
`localstripe = stripe_fixtures.localstripe; stripe_stack = stripe_fixtures.stripe_stack`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import stripe

from tests.factories import auth, make_key, payment_body, seed_catalogue

API_KEY = "sk_test_onetrip"
WEBHOOK_SECRET = "whsec_test_onetrip"
#: where localstripe sends webhooks when a test wants them lost (nothing listens there)
BLACK_HOLE = "http://127.0.0.1:9/webhooks/stripe"

CARD_OK = "4242424242424242"
#: Stripe's "charge is declined" test card. (4000000000000002 is declined by
#: localstripe only when attached to a customer; a PaymentIntent confirm succeeds.)
CARD_DECLINED = "4000000000000341"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Run localstripe's aiohttp app on loopback only, and keep its store in memory: by
# default it pickles the whole store to /tmp/localstripe.pickle on every write, which
# is slow and shared with any other localstripe on the machine. It also waits a whole
# second before sending each webhook, which every test waiting for one paid; a short
# wait still sends it after the API call that caused it has answered, as Stripe does.
_LOCALSTRIPE = """
import asyncio
import sys
import types
from aiohttp import web
from localstripe import resources, webhooks
resources.Store.dump_to_disk = lambda self: None
webhooks.asyncio = types.SimpleNamespace(
    sleep=lambda delay: asyncio.sleep(min(delay, 0.2)), ensure_future=asyncio.ensure_future
)
# Stripe lets a declined PaymentIntent take a new PaymentMethod and be confirmed again
# (the applicant's retry); localstripe keeps the failed charge and refuses: forget it.
_update = resources.PaymentIntent._update
def _retry_after_decline(self, **data):
    _update(self, **data)
    if data.get("payment_method") and getattr(self.latest_charge, "status", None) == "failed":
        self.latest_charge = None
resources.PaymentIntent._update = _retry_after_decline
from localstripe.server import app
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


class _Localstripe:
    """One process per test session, even when several modules import the fixture."""

    url: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls) -> str:
        if cls.url is not None:
            return cls.url
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tempfile.TemporaryFile(prefix="localstripe-")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-c", _LOCALSTRIPE, str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        cls.proc = proc
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                log.seek(0)
                cls.proc = None
                pytest.fail(f"localstripe exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                answer = httpx.get(f"{url}/v1/balance", auth=(API_KEY, ""), timeout=1)
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                cls.stop()
                pytest.fail("localstripe did not answer within 20 s")
            time.sleep(0.1)
        cls.url = url
        return url

    @classmethod
    def stop(cls) -> None:
        proc, cls.proc, cls.url = cls.proc, None, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def localstripe() -> Iterator[str]:
    """The base URL of the localstripe process shared by the whole session."""
    owner = _Localstripe.url is None
    url = _Localstripe.start()
    yield url
    if owner:
        _Localstripe.stop()


def stripe_sdk(localstripe_url: str) -> stripe.StripeClient:
    """A real (synchronous) stripe SDK client pointed at localstripe."""
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": localstripe_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
        max_network_retries=0,
    )


def sign(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header for `body`, as Stripe computes it."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event_body(event: dict[str, Any]) -> bytes:
    """Serialise an event the way localstripe does when it sends a webhook."""
    return json.dumps(event, indent=2, sort_keys=True).encode()


class _ServerThread(threading.Thread):
    """uvicorn serving the app on its own event loop in a daemon thread."""

    def __init__(self, app: Any, port: int) -> None:
        super().__init__(name="onetrip-uvicorn", daemon=True)
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", loop="asyncio"
        )
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # reported by the fixture
            self.error = exc

    def wait_started(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.is_alive():
                raise RuntimeError(f"uvicorn did not start: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start in time")
            time.sleep(0.02)

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        self.join(timeout)


@dataclass
class StripeStack:
    """The running app, its keys, and handles on localstripe."""

    base_url: str
    localstripe_url: str
    client: httpx.AsyncClient
    sdk: stripe.StripeClient
    keys: dict[str, str] = field(default_factory=dict)
    #: payment id → the key (name) of the department that created it
    owners: dict[str, str] = field(default_factory=dict)

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhooks/stripe"

    # --- localstripe ------------------------------------------------------------------

    async def point_webhooks(self, url: str) -> None:
        """Tell localstripe where to send its (signed) webhooks; `BLACK_HOLE` loses them."""
        async with httpx.AsyncClient() as raw:
            answer = await raw.post(
                f"{self.localstripe_url}/_config/webhooks/onetrip",
                data={"url": url, "secret": WEBHOOK_SECRET},
            )
        assert answer.status_code == 200, answer.text

    def events_of(self, intent_id: str, type_: str) -> list[dict[str, Any]]:
        """localstripe's events of one type about one PaymentIntent, as sent."""
        answer = httpx.get(
            f"{self.localstripe_url}/v1/events",
            params={"type": type_, "limit": 100},
            auth=(API_KEY, ""),
        )
        assert answer.status_code == 200, answer.text
        return [e for e in answer.json()["data"] if e["data"]["object"]["id"] == intent_id]

    def pay_with_card(self, intent_id: str, number: str) -> Any:
        """What Stripe.js does on the pay page: a card PaymentMethod, then confirm.

        localstripe refuses `confirm(payment_method=…)`, so the PaymentIntent is
        updated with the PaymentMethod first. A declined card raises CardError."""
        method = self.sdk.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},  # type: ignore[typeddict-item]
            }
        )
        self.sdk.v1.payment_intents.update(intent_id, params={"payment_method": method.id})
        return self.sdk.v1.payment_intents.confirm(intent_id)

    # --- the app ----------------------------------------------------------------------

    async def create_payment(
        self, key: str = "psb", idempotency_key: str | None = None, **body: Any
    ) -> dict[str, Any]:
        idem = idempotency_key or f"create-{time.monotonic_ns()}"
        answer = await self.client.post(
            "/api/v1/payments", json=payment_body(**body), headers=auth(self.keys[key], idem)
        )
        assert answer.status_code == 201, answer.text
        payment = dict(answer.json())
        self.owners[payment["id"]] = key
        return payment

    async def open_pay_page(self, payment: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """GET /pay/{token}; returns the page and the payment as it is afterwards."""
        token = payment["payment_url"].rsplit("/", 1)[1]
        page = await self.client.get(f"/pay/{token}")
        assert page.status_code == 200, page.text
        return page.text, await self.payment(payment["id"])

    def owner(self, payment_id: str) -> str:
        """The department key that may read the payment."""
        return self.keys[self.owners.get(payment_id, "psb")]

    async def payment(self, payment_id: str) -> dict[str, Any]:
        answer = await self.client.get(
            f"/api/v1/payments/{payment_id}", headers=auth(self.owner(payment_id))
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def wait_for_status(
        self, payment_id: str, status: str, within: float = 15.0
    ) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            current = await self.payment(payment_id)
            return current if current["status"] == status else None

        return await wait_for(reached, within, f"payment {payment_id} never became {status}")

    async def events(self, payment_id: str) -> list[dict[str, Any]]:
        answer = await self.client.get(
            f"/api/v1/payments/{payment_id}/events", headers=auth(self.owner(payment_id))
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"])

    async def trial_balance(self) -> dict[str, Any]:
        answer = await self.client.get(
            "/api/v1/ledger/trial-balance", headers=auth(self.keys["finance"])
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def balances(self) -> dict[str, int]:
        """Every ledger account's balance by code (debits − credits, minor units)."""
        answer = await self.client.get(
            "/api/v1/ledger/accounts", params={"limit": 200}, headers=auth(self.keys["finance"])
        )
        assert answer.status_code == 200, answer.text
        return {a["code"]: a["balance"] for a in answer.json()["data"]}

    async def ledger_transaction_count(self) -> int:
        from sqlalchemy import text

        from onetrip.db import get_database

        async with get_database().session() as session:
            return int(
                (
                    await session.execute(text("SELECT count(*) FROM ledger_transactions"))
                ).scalar_one()
            )

    async def post_webhook(self, body: bytes, signature: str | None = None) -> httpx.Response:
        return await self.client.post(
            "/webhooks/stripe",
            content=body,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature if signature is not None else sign(body),
            },
        )


CLIENT_SECRET = re.compile(r"\b(pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+\b")


def intent_in_page(page: str) -> tuple[str, str]:
    """The PaymentIntent id and client secret that the pay page hands to Stripe.js."""
    match = CLIENT_SECRET.search(page)
    assert match, "the pay page carries no PaymentIntent client secret"
    return match.group(1), match.group(0)


async def paid_by_card(stack: StripeStack, **body: Any) -> tuple[dict[str, Any], str]:
    """Create a payment, open its page, pay with the 4242 card; wait for the webhook."""
    payment = await stack.create_payment(**body)
    page, _ = await stack.open_pay_page(payment)
    intent_id, _ = intent_in_page(page)
    stack.pay_with_card(intent_id, CARD_OK)
    return await stack.wait_for_status(payment["id"], "succeeded"), intent_id


async def wait_for(
    predicate: Callable[[], Awaitable[Any]],
    within: float = 15.0,
    message: str = "condition not met",
) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {within} s")
        await asyncio.sleep(0.1)


@pytest.fixture
async def stripe_stack(
    api_app: Any, db_url: str, env: pytest.MonkeyPatch, localstripe: str
) -> AsyncIterator[StripeStack]:
    """The app on Stripe (localstripe), served for real, with webhooks pointed at it."""
    from onetrip.broker import configure_broker
    from onetrip.db import Database, get_database, set_database
    from onetrip.settings import get_settings, reset_settings
    from onetrip.stripe_client import forget_clients

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env.setenv("DATABASE_URL", db_url)
    env.setenv("STRIPE_API_KEY", API_KEY)
    env.setenv("STRIPE_API_BASE", localstripe)
    env.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    env.setenv("ONETRIP_PUBLIC_URL", base_url)
    env.setenv("STRIPE_JS_URL", f"{localstripe}/js.stripe.com/v3/")  # its fake Stripe.js
    reset_settings()
    forget_clients()

    async with httpx.AsyncClient() as raw:
        assert (await raw.delete(f"{localstripe}/_config/data")).status_code == 200

    settings = get_settings()
    assert settings.gateway == "stripe"
    # The session's app (conftest `api_app`), on this test's database and broker. It has
    # no embedded worker: every Stripe effect here happens in a request (webhooks
    # included), and a periodic sweep on a worker would race the ones tests call.
    set_database(Database(settings.database_url))
    configure_broker(None)
    server = _ServerThread(api_app, port)
    server.start()
    try:
        await asyncio.to_thread(server.wait_started)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            stack = StripeStack(
                base_url=base_url,
                localstripe_url=localstripe,
                client=client,
                sdk=stripe_sdk(localstripe),
            )
            await stack.point_webhooks(stack.webhook_url)
            admin = await make_key("admin")
            await seed_catalogue(client, admin)
            stack.keys = {
                "admin": admin,
                "psb": await make_key("department", ["PSB"]),
                "nrb": await make_key("department", ["NRB"]),
                "finance": await make_key("finance"),
            }
            yield stack
            # Late webhooks of this test must not reach the next test's server.
            await stack.point_webhooks(BLACK_HOLE)
    finally:
        await asyncio.to_thread(server.stop)
        assert not server.is_alive(), "uvicorn did not stop"
        await get_database().dispose()  # the test loop's engine
        set_database(None)
        forget_clients()
        reset_settings()
