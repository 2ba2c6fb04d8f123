"""The API reference at /schema works on an intranet with no internet (issue 7 item 3).

Chromium loads the page from the running service with every request to anywhere else
aborted (page.route): the Swagger UI must come from the service's own files, with no
CDN and no web fonts, and show the operations of the completed document.
Screenshots land in the test's tmp folder (and in $ONETRIP_TEST_SCREENSHOTS if set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_browser import browser, keep_screenshot, sandbox_server

__all__ = ["browser", "sandbox_server"]  # fixtures, used by name

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def offline_page(browser: Any, base_url: str) -> tuple[Any, list[str]]:
    """A page whose requests to anything but the service are aborted (and listed)."""
    page = await browser.new_page(viewport={"width": 1200, "height": 1600})
    blocked: list[str] = []

    async def only_the_service(route: Any) -> None:
        url = route.request.url
        if url.startswith(base_url + "/") or url == base_url:
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort("internetdisconnected")

    await page.route("**/*", only_the_service)
    return page, blocked


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
async def test_the_api_reference_renders_its_operations_without_internet(
    sandbox_server: str, browser: Any, tmp_path: Path, path: str
) -> None:
    page, blocked = await offline_page(browser, sandbox_server)
    response = await page.goto(sandbox_server + path)
    assert response is not None and response.status == 200
    await page.wait_for_selector(".opblock", timeout=15_000)
    summaries = await page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/payments" in [s.strip() for s in summaries]
    assert len(summaries) >= 30, summaries

    # The errors of an operation, as problem+json with their codes.
    create = page.locator("#operations-payments-ApiV1PaymentsCreate")
    await create.locator(".opblock-summary").click()
    await create.locator(".responses-table").first.wait_for()
    responses = await create.inner_text()
    assert "duplicate_reference" in responses and "application/problem+json" in responses

    shot = tmp_path / f"api-reference{path.replace('/', '-')}.png"
    await page.screenshot(path=str(shot), full_page=False)
    keep_screenshot(shot)
    errors = tmp_path / f"api-reference{path.replace('/', '-')}-create-payment.png"
    await create.screenshot(path=str(errors))
    keep_screenshot(errors)
    assert blocked == [], f"the reference asked the internet for {blocked}"


async def test_the_reference_ui_files_are_served_by_the_service(sandbox_server: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=sandbox_server) as client:
        page = (await client.get("/schema")).text
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
            assert f"/schema/assets/{name}" in page
            asset = await client.get(f"/schema/assets/{name}")
            assert asset.status_code == 200 and len(asset.content) > 10_000, name
        assert "fonts.googleapis" not in page and "cdn." not in page
