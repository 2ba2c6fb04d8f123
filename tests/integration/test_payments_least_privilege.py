"""Least privilege in payment views (issue 6, item 14): the applicant's links carry the
token that is their capability (pay, track); finance and admin keys never receive them,
the department that created the payment does."""

from __future__ import annotations

from typing import Any

from tests.factories import auth
from tests.integration.test_payments_support import create_payment, idem, token_of

pytest_plugins = ["tests.integration.test_payments_support"]

LINKS = ("payment_url", "tracking_url")


async def views_of(client: Any, key: str, payment_id: str) -> list[dict[str, Any]]:
    """The payment as one key reads it: alone, and in the list (filtered by status)."""
    one = await client.get(f"/api/v1/payments/{payment_id}", headers=auth(key))
    assert one.status_code == 200, one.text
    listed = await client.get("/api/v1/payments", params={"limit": 200}, headers=auth(key))
    assert listed.status_code == 200, listed.text
    [in_list] = [p for p in listed.json()["data"] if p["id"] == payment_id]
    return [one.json(), in_list]


async def test_finance_and_admin_keys_never_see_the_applicants_links(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    token = token_of(payment)
    for role in ("finance", "admin"):
        for view in await views_of(app_client, keys[role], payment["id"]):
            assert not set(LINKS) & set(view), (role, view)
            assert token not in str(view), role
            assert view["id"] == payment["id"] and view["amount"] == 12000


async def test_the_department_keeps_the_links_and_sees_what_was_received(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    assert payment["amount_received"] is None and payment["received_currency"] is None
    counter = await app_client.post(
        f"/api/v1/payments/{payment['id']}/counter",
        json={"method": "cash", "receipt_no": "R-7"},
        headers=auth(keys["psb"], idem("ctr")),
    )
    assert counter.status_code == 200, counter.text
    assert all(counter.json()[link] == payment[link] for link in LINKS)
    for view in await views_of(app_client, keys["psb"], payment["id"]):
        assert view["payment_url"].endswith(f"/pay/{token_of(payment)}")
        assert view["tracking_url"].endswith(f"/track/{token_of(payment)}")
        # every paid payment has amount_received (here: the fee, taken at the window)
        assert view["amount_received"] == 12000 and view["received_currency"] == "CNY"
