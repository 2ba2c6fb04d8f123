"""GET /api/v1/payments: filters and cursor pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.factories import auth
from tests.integration.test_payments_support import (
    create_payment,
    execute,
)

pytest_plugins = ["tests.integration.test_payments_support"]


async def listing(client, key: str, **params):  # type: ignore[no-untyped-def]
    response = await client.get("/api/v1/payments", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def test_cursor_pagination_walks_every_page_without_duplicates(app_client, keys):
    created = [
        (await create_payment(app_client, keys["psb"], reference=f"CRJ-2026-{n:06d}"))["id"]
        for n in range(7)
    ]
    seen: list[str] = []
    pages = []
    cursor = None
    while True:
        page = await listing(
            app_client, keys["psb"], limit=3, **({"cursor": cursor} if cursor else {})
        )
        pages.append(len(page["data"]))
        seen += [p["id"] for p in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [3, 3, 1]
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(created)
    assert seen == sorted(seen, reverse=True)  # newest first


async def test_next_cursor_is_null_when_the_last_page_is_exactly_full(app_client, keys):
    for n in range(3):
        await create_payment(app_client, keys["psb"], reference=f"CRJ-2026-1000{n}")
    page = await listing(app_client, keys["psb"], limit=3)
    assert len(page["data"]) == 3 and page["next_cursor"] is None


async def test_empty_list_has_no_next_cursor(app_client, keys):
    assert await listing(app_client, keys["psb"]) == {"data": [], "next_cursor": None}


async def test_status_filter_returns_only_that_status(app_client, keys):
    kept = await create_payment(app_client, keys["psb"], reference="CRJ-2026-200001")
    cancelled = await create_payment(app_client, keys["psb"], reference="CRJ-2026-200002")
    await app_client.post(f"/api/v1/payments/{cancelled['id']}/cancel", headers=auth(keys["psb"]))
    assert [
        p["id"] for p in (await listing(app_client, keys["psb"], status="cancelled"))["data"]
    ] == [cancelled["id"]]
    assert [
        p["id"] for p in (await listing(app_client, keys["psb"], status="created"))["data"]
    ] == [kept["id"]]
    assert (await listing(app_client, keys["psb"], status="succeeded"))["data"] == []


async def test_reference_filter_matches_the_department_reference_exactly(app_client, keys):
    wanted = await create_payment(app_client, keys["psb"], reference="CRJ-2026-300001")
    await create_payment(app_client, keys["psb"], reference="CRJ-2026-300002")
    page = await listing(app_client, keys["psb"], reference="CRJ-2026-300001")
    assert [p["id"] for p in page["data"]] == [wanted["id"]]
    assert (await listing(app_client, keys["psb"], reference="CRJ-2026-3000"))["data"] == []


async def test_from_and_to_select_payments_created_in_the_window(app_client, keys):
    march = await create_payment(app_client, keys["psb"], reference="CRJ-2026-MARCH")
    april = await create_payment(app_client, keys["psb"], reference="CRJ-2026-APRIL")
    today = await create_payment(app_client, keys["psb"], reference="CRJ-2026-TODAY")
    await execute(
        "UPDATE payments SET created_at = :at WHERE id = :id",
        at=datetime(2026, 3, 15, 2, 0, tzinfo=UTC),
        id=march["id"],
    )
    await execute(
        "UPDATE payments SET created_at = :at WHERE id = :id",
        at=datetime(2026, 4, 15, 2, 0, tzinfo=UTC),
        id=april["id"],
    )

    def ids(page):  # type: ignore[no-untyped-def]
        return {p["id"] for p in page["data"]}

    # an offset other than Z is honoured: 2026-04-01T00:00+08:00 is 2026-03-31T16:00Z
    window = await listing(
        app_client,
        keys["psb"],
        **{"from": "2026-03-01T00:00:00+08:00", "to": "2026-04-01T00:00:00+08:00"},
    )
    assert ids(window) == {march["id"]}
    since_april = await listing(app_client, keys["psb"], **{"from": "2026-04-01T00:00:00Z"})
    assert ids(since_april) == {april["id"], today["id"]}
    until_now = await listing(
        app_client, keys["psb"], to=(datetime.now(UTC) - timedelta(days=1)).isoformat()
    )
    assert ids(until_now) == {march["id"], april["id"]}


async def test_filters_combine_with_pagination(app_client, keys):
    for n in range(5):
        payment = await create_payment(app_client, keys["psb"], reference=f"CRJ-2026-4000{n}")
        if n % 2 == 0:
            await app_client.post(
                f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"])
            )
    first = await listing(app_client, keys["psb"], status="cancelled", limit=2)
    second = await listing(
        app_client, keys["psb"], status="cancelled", limit=2, cursor=first["next_cursor"]
    )
    assert len(first["data"]) == 2 and len(second["data"]) == 1 and second["next_cursor"] is None
    assert all(p["status"] == "cancelled" for p in first["data"] + second["data"])
