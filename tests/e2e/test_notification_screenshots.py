"""Every kind of email, in zh-CN and en, as Chromium draws it on a desktop mail client's
width and on a phone: nothing is fetched from outside (every request but data: is
aborted and recorded), what the plain-text part says is on screen, and nothing spills
sideways on a phone. Then the rating the delivered email invites, given on the track
page with a tap on a star.

PNGs (`email-{kind}-{language}-{desktop|phone}.png`) go to $ONETRIP_SCREENSHOTS (or
$ONETRIP_TEST_SCREENSHOTS) when set, else to the test's tmp folder, for a person to
look at.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifications.messages import KINDS, render, sample_context
from tests.e2e.test_browser import CHROMIUM_ARGS, browser, chromium_path, sandbox_server
from tests.factories import auth, make_key, payment_body, seed_catalogue
from tests.integration.test_pages_support import delivered_licence

__all__ = ["browser", "sandbox_server"]

LANGUAGES = ("zh-CN", "en")
SCREENS = {
    "desktop": {"viewport": {"width": 800, "height": 900}},
    "phone": {"viewport": {"width": 375, "height": 740}, "device_scale_factor": 1},
}


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


# read at import: the `env` fixture clears ONETRIP_* variables for the service's settings
CHOSEN_FOLDER = os.environ.get("ONETRIP_SCREENSHOTS") or os.environ.get("ONETRIP_TEST_SCREENSHOTS")


def screenshot_folder(tmp_path: Path) -> Path:
    folder = Path(CHOSEN_FOLDER) if CHOSEN_FOLDER else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


async def test_every_email_draws_offline_with_its_text_on_screen(
    chromium: Any, tmp_path: Path
) -> None:
    folder = screenshot_folder(tmp_path)
    for language, (screen, options) in itertools.product(LANGUAGES, SCREENS.items()):
        context = sample_context(language)
        browser_context = await chromium.new_context(**options, locale=language)
        requested: list[str] = []

        async def refuse(route: Any, requested: list[str] = requested) -> None:
            requested.append(route.request.url)
            await route.abort()

        await browser_context.route(re.compile(r"^(?!data:).*"), refuse)
        page = await browser_context.new_page()
        try:
            for kind in KINDS:
                message = render(kind, language, context)
                await page.set_content(message.html, wait_until="load")
                shown = _squeezed(await page.inner_text("body"))
                body = message.text.split("\n--\n", 1)[0]
                for line in filter(None, map(str.strip, body.splitlines())):
                    for piece in re.split(r"：|: ", line):
                        assert _squeezed(piece) in shown, (kind, language, screen, piece)
                width = await page.evaluate("document.documentElement.scrollWidth")
                assert width <= options["viewport"]["width"], (kind, language, screen, width)
                png = folder / f"email-{kind}-{language}-{screen}.png"
                await page.screenshot(path=str(png), full_page=True)
                assert png.stat().st_size > 10_000, png  # a drawn email, not a blank page
        finally:
            await browser_context.close()
        assert requested == [], f"the {language} {screen} emails fetched {requested}"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_invited_rating_is_given_on_the_track_page_with_a_tap(
    sandbox_server: str, browser: Any, tmp_path: Path
) -> None:
    folder = screenshot_folder(tmp_path)
    async with httpx.AsyncClient(base_url=sandbox_server) as client:
        await seed_catalogue(client, await make_key("admin"))
        psb = await make_key("department", ["PSB"])
        created = await client.post(
            "/api/v1/payments",
            json=payment_body(reference="CRJ-2026-000977"),
            headers=auth(psb, "rating-e2e"),
        )
        payment = created.json()
        token = payment["payment_url"].rsplit("/", 1)[1]
        await client.get(f"/pay/{token}")
        await client.post(f"/pay/{token}/sandbox", data={"card_number": "4242424242424242"})
        await delivered_licence(payment)

    context = await browser.new_context(**SCREENS["phone"], locale="zh-CN")
    page = await context.new_page()
    await page.goto(f"{payment['tracking_url']}?score=5#rating")  # the email's fifth star
    assert await page.is_checked("#score-5")
    await page.click("label[for=score-4]")  # changed their mind: four
    assert await page.is_checked("#score-4") and not await page.is_checked("#score-5")
    await page.fill("#comment", "第二天就送到了，快递员很耐心。")
    await page.screenshot(path=str(folder / "track-rating-form-zh-CN-phone.png"), full_page=True)
    await page.click("#rating-submit")
    await page.wait_for_selector("#rating-thanks")
    assert await page.inner_text("#rating-score") == "您的评分：4 分（满意）"
    assert "快递员很耐心" in await page.inner_text("#rating-comment")
    assert page.url.endswith("#rating") and await page.query_selector("#rating-form") is None
    await page.screenshot(path=str(folder / "track-rating-thanks-zh-CN-phone.png"), full_page=True)
    await context.close()
