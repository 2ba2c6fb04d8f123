"""Joint matters (issue 7, item 9): every department in a payment's fee split may read
the payment, its events, refunds and receipt; only the owning department may change it
(a share-holding department gets 403 `not_payment_owner`: it can see the payment, so a
404 would hide nothing; any other department still gets 404). Listing shows a key's own
department's payments only."""

from __future__ import annotations

import pytest

from tests.factories import auth, make_key
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    idem,
    paid_payment,
)

pytest_plugins = ["tests.integration.test_payments_support"]

TRANSFER = "real-estate-transfer"  # NRB's, 40 % booked to HCB


@pytest.fixture
async def hcb(keys) -> str:  # type: ignore[no-untyped-def]
    return await make_key("department", ["HCB"])


async def test_a_share_holding_department_reads_the_payment_and_its_events(app_client, keys, hcb):
    payment = await create_payment(app_client, keys["nrb"], matter_code=TRANSFER)
    response = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(hcb))
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["id"] == payment["id"] and seen["department"] == "NRB"
    assert {"department": "HCB", "share_bps": 4000} in seen["fee_split"]
    events = await app_client.get(f"/api/v1/payments/{payment['id']}/events", headers=auth(hcb))
    assert events.status_code == 200, events.text
    assert [e["type"] for e in events.json()["data"]] == ["payment.created"]
    refunds = await app_client.get(f"/api/v1/payments/{payment['id']}/refunds", headers=auth(hcb))
    assert refunds.status_code == 200, refunds.text


async def test_a_share_holding_department_downloads_the_receipt(app_client, keys, hcb):
    payment = await paid_payment(app_client, keys["nrb"], matter_code=TRANSFER)
    response = await app_client.get(
        f"/api/v1/payments/{payment['id']}/receipt.pdf", headers=auth(hcb)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/pdf")
    assert response.content.startswith(b"%PDF")


async def test_a_finance_key_of_the_share_holding_department_reads_it(app_client, keys):
    finance_hcb = await make_key("finance", ["HCB"])
    payment = await create_payment(app_client, keys["nrb"], matter_code=TRANSFER)
    response = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(finance_hcb))
    assert response.status_code == 200, response.text


async def test_a_share_holding_department_cannot_cancel_it(app_client, keys, hcb):
    payment = await create_payment(app_client, keys["nrb"], matter_code=TRANSFER)
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(hcb, idem("hcb-cancel"))
    )
    body = assert_problem(response, 403, "not_payment_owner")
    assert "NRB" in body["detail"]
    current = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["nrb"]))
    assert current.json()["status"] == "created"


async def test_a_share_holding_department_cannot_refund_or_collect_it(app_client, keys, hcb):
    paid = await paid_payment(app_client, keys["nrb"], matter_code=TRANSFER)
    refund = await app_client.post(
        f"/api/v1/payments/{paid['id']}/refunds",
        json={"amount": 100, "reason": "申请人撤回申请"},
        headers=auth(hcb, idem("hcb-refund")),
    )
    assert_problem(refund, 403, "not_payment_owner")
    assert await count_rows("refunds") == 0
    unpaid = await create_payment(
        app_client, keys["nrb"], matter_code=TRANSFER, reference="BDC-2026-2"
    )
    counter = await app_client.post(
        f"/api/v1/payments/{unpaid['id']}/counter",
        json={"method": "cash"},
        headers=auth(hcb, idem("hcb-counter")),
    )
    assert_problem(counter, 403, "not_payment_owner")


async def test_a_department_outside_the_split_still_gets_404(app_client, keys):
    payment = await create_payment(app_client, keys["nrb"], matter_code=TRANSFER)
    for path in ("", "/events", "/refunds"):
        response = await app_client.get(
            f"/api/v1/payments/{payment['id']}{path}", headers=auth(keys["psb"])
        )
        assert_problem(response, 404, "payment_not_found")
    cancel = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"], idem("psb"))
    )
    assert_problem(cancel, 404, "payment_not_found")


async def test_the_owner_still_cancels_it(app_client, keys, hcb):
    payment = await create_payment(app_client, keys["nrb"], matter_code=TRANSFER)
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["nrb"], idem("nrb"))
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"


async def test_listing_shows_only_the_keys_own_departments_payments(app_client, keys, hcb):
    await create_payment(app_client, keys["nrb"], matter_code=TRANSFER)
    listed = await app_client.get("/api/v1/payments", headers=auth(hcb))
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"] == []
    own = await app_client.get("/api/v1/payments", headers=auth(keys["nrb"]))
    assert len(own.json()["data"]) == 1
