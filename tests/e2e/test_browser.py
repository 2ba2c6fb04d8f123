"""The applicant's pay page in a real browser (Debian's Chromium driven by Playwright).

Screenshots land in the test's tmp folder (and in $ONETRIP_TEST_SCREENSHOTS if set) so
a person can look at what the applicant sees.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import stripe_fixtures
from tests.conftest import REQUIRE
from tests.factories import auth, make_key, payment_body, seed_catalogue
from tests.stripe_fixtures import _ServerThread, free_port, wait_for

localstripe = stripe_fixtures.localstripe
stripe_stack = stripe_fixtures.stripe_stack

# Dialect-independent: the browser only sees pages. One run on SQLite is enough.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

CARD_3DS = "4000002760003184"  # localstripe asks Stripe.js for 3-D Secure on this one

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if REQUIRE:
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed")
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


def keep_screenshot(path: Path) -> None:
    folder = os.environ.get("ONETRIP_TEST_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


@pytest.fixture
def sandbox_server(db_url: str, env: pytest.MonkeyPatch) -> Iterator[str]:
    """The app with the sandbox gateway (no Stripe key), served for real."""
    from onetrip.app import create_app
    from onetrip.db import set_database
    from onetrip.settings import get_settings, reset_settings

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env.setenv("DATABASE_URL", db_url)
    env.setenv("ONETRIP_PUBLIC_URL", base_url)
    reset_settings()
    server = _ServerThread(create_app(get_settings()), port)
    server.start()
    try:
        server.wait_started()
        yield base_url
    finally:
        server.stop()
        set_database(None)
        reset_settings()


async def test_applicant_pays_with_a_sandbox_test_card_in_the_browser(
    sandbox_server: str, browser: Any, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_server) as client:
        await seed_catalogue(client, await make_key("admin"))
        psb = await make_key("department", ["PSB"])
        created = await client.post(
            "/api/v1/payments", json=payment_body(), headers=auth(psb, "browser-sandbox-1")
        )
        assert created.status_code == 201, created.text
        payment = created.json()

        page = await browser.new_page(viewport={"width": 800, "height": 1000})
        await page.goto(payment["payment_url"])
        assert await page.inner_text("#amount") == "¥120.00"
        assert "普通护照签发" in await page.content()
        await page.screenshot(path=str(tmp_path / "sandbox-pay.png"), full_page=True)
        keep_screenshot(tmp_path / "sandbox-pay.png")

        await page.fill("#card_number", "4242 4242 4242 4242")
        await page.click("#pay")
        await page.wait_for_selector("#status.succeeded")
        assert await page.inner_text("#status") == "缴费成功"
        await page.screenshot(path=str(tmp_path / "sandbox-paid.png"), full_page=True)
        keep_screenshot(tmp_path / "sandbox-paid.png")

        current = await client.get(f"/api/v1/payments/{payment['id']}", headers=auth(psb))
        assert current.json()["status"] == "succeeded"


async def test_a_declined_sandbox_card_shows_the_failure_and_books_nothing(
    sandbox_server: str, browser: Any
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_server) as client:
        await seed_catalogue(client, await make_key("admin"))
        psb = await make_key("department", ["PSB"])
        finance = await make_key("finance")
        payment = (
            await client.post(
                "/api/v1/payments",
                json=payment_body(applicant={"name": "李娜", "language": "en"}),
                headers=auth(psb, "browser-sandbox-2"),
            )
        ).json()
        page = await browser.new_page()
        await page.goto(payment["payment_url"])
        await page.fill("#card_number", "4000000000000002")
        await page.click("#pay")
        await page.wait_for_selector("#status.failed")
        assert "did not go through" in await page.content()  # the applicant chose English
        balance = (await client.get("/api/v1/ledger/trial-balance", headers=auth(finance))).json()
        assert balance["total_debits"] == 0


async def test_stripe_js_confirms_the_card_payment_and_the_page_moves_to_tracking(
    stripe_stack: Any, browser: Any, tmp_path: Path
) -> None:
    payment = await stripe_stack.create_payment()
    page = await browser.new_page(viewport={"width": 800, "height": 1000})
    await page.goto(payment["payment_url"])  # creates the PaymentIntent
    _, secret = stripe_fixtures.intent_in_page(await page.content())
    intent_id = secret.split("_secret_")[0]
    # localstripe's Stripe.js cannot read a card from its element; do what Stripe.js
    # would (attach the card), with a card that needs 3-D Secure in the browser.
    intent = stripe_stack.pay_with_card(intent_id, CARD_3DS)
    assert intent.status == "requires_action"

    await page.click("#pay")
    await page.click("text=Complete authentication")  # localstripe's 3-D Secure dialog
    await page.wait_for_url("**/track/**")
    await page.screenshot(path=str(tmp_path / "stripe-tracking.png"), full_page=True)
    keep_screenshot(tmp_path / "stripe-tracking.png")
    paid = await stripe_stack.wait_for_status(payment["id"], "succeeded")
    assert paid["gateway"] == "stripe"
    await wait_for(
        lambda: _tracking_shows_paid(page), 10, "the tracking page never showed the payment"
    )


async def _tracking_shows_paid(page: Any) -> bool:
    await page.reload()
    return (await page.inner_text("#status")) == "缴费成功"
