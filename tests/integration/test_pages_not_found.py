"""A bad applicant link is an HTML 404 page in the reader's language, never JSON
(issue 7 item 7): /pay/, /track/, the receipt and the page's forms."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.integration.test_payments_support"]

BAD = "tok_doesnotexist"


def assert_html_404(response, heading: str, lang: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert f'<html lang="{lang}">' in response.text
    assert f'<h1 id="not-found">{heading}</h1>' in response.text
    assert '"type"' not in response.text and "problem" not in response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/pay/{BAD}"),
        ("GET", f"/track/{BAD}"),
        ("GET", f"/track/{BAD}/receipt.pdf"),
        ("POST", f"/pay/{BAD}/retry"),
    ],
)
async def test_a_bad_token_is_an_html_404_in_chinese_by_default(app_client, method, path):
    response = await app_client.request(method, path)
    assert_html_404(response, "链接无效或已失效", "zh-CN")
    assert "未找到该缴费" in response.text


async def test_the_404_page_speaks_english_when_asked(app_client):
    response = await app_client.get(f"/track/{BAD}?lang=en")
    assert_html_404(response, "This link is not valid", "en")


async def test_the_404_page_follows_the_browser_language(app_client):
    english = await app_client.get(f"/pay/{BAD}", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert_html_404(english, "This link is not valid", "en")
    chinese_first = await app_client.get(
        f"/pay/{BAD}", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    )
    assert_html_404(chinese_first, "链接无效或已失效", "zh-CN")
    unspoken = await app_client.get(f"/pay/{BAD}", headers={"Accept-Language": "fr-FR"})
    assert_html_404(unspoken, "链接无效或已失效", "zh-CN")
    # ?lang= wins over the browser
    asked = await app_client.get(f"/pay/{BAD}?lang=zh-CN", headers={"Accept-Language": "en"})
    assert_html_404(asked, "链接无效或已失效", "zh-CN")


async def test_the_api_still_answers_problem_json(app_client, keys):
    from tests.factories import auth
    from tests.integration.test_payments_support import assert_problem

    response = await app_client.get("/api/v1/payments/pay_nothing", headers=auth(keys["psb"]))
    assert_problem(response, 404, "payment_not_found")
