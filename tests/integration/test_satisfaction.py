"""Satisfaction ratings (issue 9 item 5): the applicant rates the service once, after
the licence was delivered or collected, by JSON or the track page's form; a department
reads its count, average and distribution over a period."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from delivery.models import SatisfactionRating
from onetrip.clock import utcnow
from onetrip.db import unit_of_work
from tests.factories import auth, make_key
from tests.integration.test_pages_support import delivered_licence, licence_for, move_licence
from tests.integration.test_payments_support import assert_problem, paid_payment, token_of

pytest_plugins = ["tests.integration.test_payments_support"]

OPENAPI_CONFORMANCE = True
JSON = {"Content-Type": "application/json"}


async def delivered(client: Any, key: str, n: int = 1) -> dict[str, Any]:
    payment = await paid_payment(client, key, reference=f"CRJ-2026-0{n:05d}")
    await delivered_licence(
        payment, tracking_number=f"SF90000000{n:02d}", license_no=f"浙公驾 330106-2026-{n:04d}"
    )
    return payment


def rating_url(payment: dict[str, Any]) -> str:
    return f"/track/{token_of(payment)}/rating"


async def test_a_delivered_licence_can_be_rated_once(app_client, keys):
    payment = await delivered(app_client, keys["psb"])
    rated = await app_client.post(
        rating_url(payment), json={"score": 5, "comment": "  第二天就送到了，不用再跑一趟。 "}
    )
    assert rated.status_code == 201, rated.text
    body = rated.json()
    assert body["payment_id"] == payment["id"] and body["department"] == "PSB"
    assert body["score"] == 5 and body["comment"] == "第二天就送到了，不用再跑一趟。"
    assert body["id"].startswith("rat_") and body["license_id"].startswith("lic_")

    again = await app_client.post(rating_url(payment), json={"score": 1})
    assert_problem(again, 409, "already_rated")


async def test_before_delivery_the_service_cannot_be_rated(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    assert_problem(
        await app_client.post(rating_url(payment), json={"score": 4}), 409, "not_delivered_yet"
    )
    license_id = await licence_for(payment)
    await move_licence(license_id, "render", utcnow())
    assert_problem(
        await app_client.post(rating_url(payment), json={"score": 4}), 409, "not_delivered_yet"
    )


async def test_a_collected_licence_can_be_rated(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    license_id = await licence_for(payment, method="pickup")
    for event in ("render", "print", "ready_for_pickup", "collect"):
        await move_licence(license_id, event, utcnow())
    rated = await app_client.post(rating_url(payment), json={"score": 3})
    assert rated.status_code == 201, rated.text
    assert rated.json()["license_id"] == license_id and rated.json()["comment"] is None


async def test_bad_scores_and_comments_are_refused_naming_the_field(app_client, keys):
    payment = await delivered(app_client, keys["psb"])
    url = rating_url(payment)
    for body in ({"score": 0}, {"score": 6}, {"score": "5"}, {"score": 4.5}, {"score": True}, {}):
        response = await app_client.post(url, json=body)
        assert_problem(response, 400, "validation_failed", field="score")
    too_long = await app_client.post(url, json={"score": 4, "comment": "好" * 501})
    assert_problem(too_long, 400, "validation_failed", field="comment")
    control = await app_client.post(url, json={"score": 4, "comment": "好\x00"})
    assert_problem(control, 400, "invalid_characters", field="comment")
    unknown = await app_client.post(url, json={"score": 4, "stars": 4})
    assert_problem(unknown, 400, "validation_failed")
    broken = await app_client.post(url, content=b'{"score": 5', headers=JSON)
    assert_problem(broken, 400, "malformed_json")
    text = await app_client.post(url, content=b"5", headers={"Content-Type": "text/plain"})
    assert_problem(text, 415, "unsupported_media_type")
    # none of it was a rating: the real one is still possible
    assert (await app_client.post(url, json={"score": 4, "comment": "好" * 500})).status_code == 201


async def test_an_unknown_link_is_a_404(app_client):
    response = await app_client.post("/track/not-a-real-token/rating", json={"score": 5})
    assert_problem(response, 404, "payment_not_found")


async def test_two_ratings_at_once_make_one(app_client, keys):
    payment = await delivered(app_client, keys["psb"])
    answers = await asyncio.gather(
        *(app_client.post(rating_url(payment), json={"score": s}) for s in (2, 5))
    )
    assert sorted(a.status_code for a in answers) == [201, 409]


async def test_the_rating_is_on_the_payments_timeline_without_the_comment(app_client, keys):
    payment = await delivered(app_client, keys["psb"])
    await app_client.post(rating_url(payment), json={"score": 4, "comment": "快递员很耐心"})
    events = await app_client.get(
        f"/api/v1/payments/{payment['id']}/events", headers=auth(keys["psb"])
    )
    [rated] = [e for e in events.json()["data"] if e["type"] == "satisfaction.rated"]
    assert rated["data"]["score"] == 4 and rated["data"]["has_comment"] is True
    assert "快递员很耐心" not in events.text


# --- the track page's form -----------------------------------------------------------


def checked_score(html: str) -> str | None:
    found = re.search(r'value="(\d)" required checked', html)
    return found.group(1) if found else None


async def test_the_track_page_offers_the_form_after_delivery_and_thanks_after(app_client, keys):
    payment = await delivered(app_client, keys["psb"])
    token = token_of(payment)
    page = (await app_client.get(f"/track/{token}")).text
    assert 'id="rating-form"' in page and f'action="/track/{token}/rating"' in page
    assert "评价本次服务" in page and checked_score(page) is None
    # the email's fourth star opens the page with 4 chosen
    assert checked_score((await app_client.get(f"/track/{token}?score=4")).text) == "4"

    sent = await app_client.post(
        f"/track/{token}/rating",
        data={"score": "4", "comment": "送货很快 <b>赞</b>"},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/track/{token}#rating"
    page = (await app_client.get(f"/track/{token}")).text
    assert 'id="rating-form"' not in page
    assert "感谢您的评价" in page and "您的评分：4 分（满意）" in page
    assert "送货很快 &lt;b&gt;赞&lt;/b&gt;" in page  # shown as the applicant wrote it


async def test_the_form_in_english_returns_to_the_english_page_with_what_went_wrong(
    app_client, keys
):
    payment = await delivered(app_client, keys["psb"])
    token = token_of(payment)
    page = (await app_client.get(f"/track/{token}?lang=en")).text
    assert f'action="/track/{token}/rating?lang=en"' in page and "Rate the service" in page
    refused = await app_client.post(
        f"/track/{token}/rating?lang=en", data={"score": "9"}, follow_redirects=False
    )
    assert refused.status_code == 303
    assert (
        refused.headers["location"] == f"/track/{token}?lang=en&rating_error=invalid_rating#rating"
    )
    page = (await app_client.get(refused.headers["location"].split("#")[0])).text
    assert "Choose a score from 1 to 5" in page and 'id="rating-form"' in page
    sent = await app_client.post(
        f"/track/{token}/rating?lang=en", data={"score": "5"}, follow_redirects=False
    )
    assert sent.headers["location"] == f"/track/{token}?lang=en#rating"
    assert (
        "Your score: 5 of 5 (Very satisfied)"
        in (await app_client.get(f"/track/{token}?lang=en")).text
    )


async def test_before_delivery_the_page_has_no_rating_section(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    token = token_of(payment)
    assert 'id="rating"' not in (await app_client.get(f"/track/{token}")).text
    stale = await app_client.post(
        f"/track/{token}/rating", data={"score": "5"}, follow_redirects=False
    )
    assert stale.headers["location"] == f"/track/{token}?rating_error=not_delivered_yet#rating"
    page = (await app_client.get(f"/track/{token}?rating_error=not_delivered_yet")).text
    assert "证照送达或领取后才能评价" in page and 'id="rating-form"' not in page


# --- the department's figures ----------------------------------------------------------


async def backdate(payment_id: str, days: int) -> None:
    async with unit_of_work() as session:
        await session.execute(
            update(SatisfactionRating)
            .where(SatisfactionRating.payment_id == payment_id)
            .values(created_at=utcnow() - timedelta(days=days))
        )


def satisfaction(client: Any, key: str, code: str = "PSB", **params: str) -> Any:
    return client.get(f"/api/v1/departments/{code}/satisfaction", params=params, headers=auth(key))


async def test_a_department_reads_count_average_and_distribution_over_a_period(app_client, keys):
    scores = (5, 4, 5, 2)
    for n, score in enumerate(scores, start=1):
        payment = await delivered(app_client, keys["psb"], n)
        rated = await app_client.post(rating_url(payment), json={"score": score})
        assert rated.status_code == 201, rated.text
        if n == 4:
            await backdate(payment["id"], days=40)  # last month's

    everything = (await satisfaction(app_client, keys["psb"])).json()
    assert everything == {
        "department": "PSB",
        "from": None,
        "to": None,
        "count": 4,
        "average": round(sum(scores) / 4, 2),
        "distribution": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 2},
    }
    since = (utcnow() - timedelta(days=30)).isoformat()
    recent = await satisfaction(app_client, keys["psb"], **{"from": since})
    assert recent.status_code == 200, recent.text
    assert recent.json()["count"] == 3 and recent.json()["average"] == round(14 / 3, 2)
    assert recent.json()["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 2}
    older = await satisfaction(app_client, keys["finance"], to=since)
    assert older.json()["count"] == 1 and older.json()["distribution"]["2"] == 1
    admin = await satisfaction(app_client, keys["admin"])
    assert admin.json()["count"] == 4


async def test_a_period_without_ratings_has_no_average(app_client, keys):
    empty = await satisfaction(app_client, keys["nrb"], "NRB")
    assert empty.status_code == 200, empty.text
    assert empty.json()["count"] == 0 and empty.json()["average"] is None
    assert empty.json()["distribution"] == dict.fromkeys("12345", 0)


async def test_only_its_department_finance_and_admins_read_the_figures(app_client, keys):
    assert_problem(await satisfaction(app_client, keys["nrb"]), 404, "department_not_found")
    assert_problem(
        await satisfaction(app_client, keys["admin"], "XYZ"), 404, "department_not_found"
    )
    finance_nrb = await make_key("finance", ["NRB"])
    assert_problem(await satisfaction(app_client, finance_nrb), 404, "department_not_found")
    assert (await satisfaction(app_client, finance_nrb, "NRB")).status_code == 200
    courier = await make_key("courier", partner="sf-express")
    assert_problem(await satisfaction(app_client, courier), 403, "wrong_role")


async def test_a_period_must_have_offsets_and_end_after_it_starts(app_client, keys):
    naive = await satisfaction(app_client, keys["psb"], **{"from": "2026-11-01T00:00:00"})
    assert_problem(naive, 422, "validation_failed", field="from")
    backwards = await satisfaction(
        app_client,
        keys["psb"],
        **{"from": "2026-12-01T00:00:00+08:00", "to": "2026-11-01T00:00:00+08:00"},
    )
    assert_problem(backwards, 422, "invalid_period", field="to")
