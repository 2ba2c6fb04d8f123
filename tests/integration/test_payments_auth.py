"""Who may do what: 401 without a valid key, 403 outside the role, 404 across departments."""

from __future__ import annotations

import pytest

from tests.factories import PASSPORT, auth, payment_body
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    idem,
    paid_payment,
)

pytest_plugins = ["tests.integration.test_payments_support"]


async def test_no_key_is_401(app_client, keys):
    response = await app_client.post(
        "/api/v1/payments", json=payment_body(), headers={"Idempotency-Key": idem()}
    )
    assert_problem(response, 401, "missing_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await count_rows("payments") == 0


@pytest.mark.parametrize(
    "header",
    ["Bearer garbage", "Bearer otk_nosuchkey_0123456789abcdef", "Basic dXNlcjpwYXNz", "Bearer "],
    ids=["garbage", "unknown-key", "basic-auth", "empty-bearer"],
)
async def test_invalid_key_is_401(app_client, keys, header):
    response = await app_client.get("/api/v1/payments", headers={"Authorization": header})
    assert_problem(response, 401)


async def test_a_tampered_key_is_401(app_client, keys):
    tampered = keys["psb"][:-1] + ("A" if keys["psb"][-1] != "A" else "B")
    response = await app_client.get("/api/v1/payments", headers=auth(tampered))
    assert_problem(response, 401, "invalid_api_key")


@pytest.mark.parametrize("role", ["finance", "admin", "courier"])
async def test_only_a_department_key_creates_payments(app_client, keys, role):
    response = await app_client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(keys[role], idem())
    )
    assert_problem(response, 403, "wrong_role")
    assert await count_rows("payments") == 0


async def test_courier_key_cannot_read_payments(app_client, keys):
    response = await app_client.get("/api/v1/payments", headers=auth(keys["courier"]))
    assert_problem(response, 403)


async def test_another_departments_payment_is_404_everywhere(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    pid = payment["id"]
    nrb = keys["nrb"]
    attempts = [
        await app_client.get(f"/api/v1/payments/{pid}", headers=auth(nrb)),
        await app_client.post(f"/api/v1/payments/{pid}/cancel", headers=auth(nrb)),
        await app_client.post(f"/api/v1/payments/{pid}/cancel", headers=auth(nrb, idem())),
        await app_client.post(
            f"/api/v1/payments/{pid}/refunds",
            json={"amount": 100, "reason": "测试"},
            headers=auth(nrb, idem()),
        ),
        await app_client.get(f"/api/v1/payments/{pid}/refunds", headers=auth(nrb)),
        await app_client.get(f"/api/v1/payments/{pid}/events", headers=auth(nrb)),
        await app_client.get(f"/api/v1/payments/{pid}/receipt.pdf", headers=auth(nrb)),
        await app_client.post(
            f"/api/v1/payments/{pid}/counter", json={"method": "cash"}, headers=auth(nrb, idem())
        ),
    ]
    unknown = await app_client.get(
        "/api/v1/payments/pay_00000000000000000000000000", headers=auth(nrb)
    )
    for response in attempts:
        body = assert_problem(response, 404, "payment_not_found")
        assert set(body) - {"instance"} == set(unknown.json()) - {"instance"}
    assert await count_rows("refunds") == 0
    current = await app_client.get(f"/api/v1/payments/{pid}", headers=auth(keys["psb"]))
    assert current.json()["status"] == "succeeded"


async def test_another_departments_payments_are_not_listed(app_client, keys):
    await create_payment(app_client, keys["psb"], reference="CRJ-2026-000301")
    listed = await app_client.get("/api/v1/payments", headers=auth(keys["nrb"]))
    assert listed.status_code == 200 and listed.json()["data"] == []


async def test_another_key_of_the_same_department_sees_the_payment(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await app_client.get(
        f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb_window"])
    )
    assert response.status_code == 200


async def test_finance_key_reads_payments_but_cannot_cancel_or_refund(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    read = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["finance"]))
    assert read.status_code == 200
    cancel = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["finance"])
    )
    assert_problem(cancel, 403)
    refund = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 100, "reason": "测试"},
        headers=auth(keys["finance"], idem()),
    )
    assert_problem(refund, 403)


@pytest.mark.parametrize("role", ["psb", "finance", "courier"])
async def test_admin_endpoints_need_an_admin_key(app_client, keys, role):
    department = await app_client.post(
        "/api/v1/admin/departments",
        json={"code": "TAX", "name": "税务局"},
        headers=auth(keys[role]),
    )
    assert_problem(department, 403, "wrong_role")
    matter = await app_client.post(
        "/api/v1/admin/matters", json={**PASSPORT, "amount": 1}, headers=auth(keys[role])
    )
    assert_problem(matter, 403, "wrong_role")
    fee = (await app_client.get("/api/v1/matters/passport", headers=auth(keys["psb"]))).json()
    assert fee["amount"] == 12000


async def test_admin_endpoints_without_a_key_are_401(app_client, keys):
    response = await app_client.post(
        "/api/v1/admin/departments", json={"code": "TAX", "name": "税务局"}
    )
    assert_problem(response, 401)


async def test_catalogue_reads_need_a_key(app_client, keys):
    assert_problem(await app_client.get("/api/v1/matters/passport"), 401)
    assert_problem(await app_client.get("/api/v1/departments"), 401)
