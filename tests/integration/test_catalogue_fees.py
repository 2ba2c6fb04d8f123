"""The amount comes from the catalogue only: fee versions, quantity and joint-matter splits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.factories import PASSPORT, TRANSFER, auth, payment_body
from tests.integration.test_payments_support import (
    assert_problem,
    balances,
    count_rows,
    create_payment,
    pay_with_sandbox,
)

pytest_plugins = ["tests.integration.test_payments_support"]


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def new_passport_fee(client, admin: str, amount: int, effective_from: datetime):  # type: ignore[no-untyped-def]
    response = await client.post(
        "/api/v1/admin/matters",
        json={**PASSPORT, "amount": amount, "effective_from": rfc3339(effective_from)},
        headers=auth(admin),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_payment_amount_is_the_catalogue_fee(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    assert payment["amount"] == 12000 and payment["currency"] == "CNY"
    assert payment["matter_code"] == "passport" and payment["department"] == "PSB"


async def test_client_amount_field_is_rejected_as_an_unknown_field(app_client, keys):
    response = await app_client.post(
        "/api/v1/payments", json=payment_body(amount=1), headers=auth(keys["psb"], "amount-1")
    )
    body = assert_problem(response, (400, 422), "validation_failed", field="amount")
    assert "unknown" in body["errors"][0]["message"]
    assert await count_rows("payments") == 0
    assert await count_rows("outbox_events") == 0


async def test_client_currency_field_is_rejected_as_an_unknown_field(app_client, keys):
    response = await app_client.post(
        "/api/v1/payments",
        json=payment_body(currency="USD"),
        headers=auth(keys["psb"], "currency-1"),
    )
    assert_problem(response, (400, 422), "validation_failed", field="currency")
    assert await count_rows("payments") == 0


async def test_quantity_multiplies_the_unit_fee(app_client, keys):
    payment = await create_payment(app_client, keys["psb"], quantity=3)
    assert payment["quantity"] == 3
    assert payment["unit_amount"] == 12000
    assert payment["amount"] == 36000


async def test_future_fee_version_leaves_payments_created_now_at_the_old_fee(app_client, keys):
    await new_passport_fee(app_client, keys["admin"], 16000, datetime.now(UTC) + timedelta(days=30))
    payment = await create_payment(app_client, keys["psb"])
    assert payment["amount"] == 12000
    matter = (await app_client.get("/api/v1/matters/passport", headers=auth(keys["psb"]))).json()
    assert matter["amount"] == 12000
    assert sorted(v["amount"] for v in matter["fee_versions"]) == [12000, 16000]


async def test_fee_version_effective_in_the_past_applies_to_new_payments_at_once(app_client, keys):
    await new_passport_fee(app_client, keys["admin"], 9000, datetime(2025, 1, 1, tzinfo=UTC))
    payment = await create_payment(app_client, keys["psb"])
    assert payment["amount"] == 9000
    matter = (await app_client.get("/api/v1/matters/passport", headers=auth(keys["psb"]))).json()
    assert matter["amount"] == 9000


async def test_fee_version_effective_now_applies_to_new_payments_at_once(app_client, keys):
    await new_passport_fee(app_client, keys["admin"], 13000, datetime.now(UTC))
    payment = await create_payment(app_client, keys["psb"])
    assert payment["amount"] == 13000


async def test_payment_created_before_a_fee_change_is_booked_at_its_own_fee(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    await new_passport_fee(app_client, keys["admin"], 13000, datetime.now(UTC))
    await pay_with_sandbox(app_client, payment)
    paid = (
        await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb"]))
    ).json()
    assert paid["status"] == "succeeded" and paid["amount"] == 12000
    books = await balances(app_client, keys["finance"])
    assert books["dept:PSB:fees_payable"] == -12000


async def test_matter_shows_the_fee_in_force_with_its_split(app_client, keys):
    response = await app_client.get(
        "/api/v1/matters/real-estate-transfer", headers=auth(keys["nrb"])
    )
    assert response.status_code == 200
    matter = response.json()
    assert {
        k: matter[k]
        for k in ("code", "name", "department", "amount", "currency", "deliverable", "auto_issue")
    } == {
        "code": "real-estate-transfer",
        "name": "存量房转移登记（一窗联办）",
        "department": "NRB",
        "amount": 50001,
        "currency": "CNY",
        "deliverable": True,
        "auto_issue": False,
    }
    assert matter["fee_split"] == [
        {"department": "NRB", "share_bps": 6000},
        {"department": "HCB", "share_bps": 4000},
    ]


async def test_unknown_matter_code_is_a_404_problem(app_client, keys):
    response = await app_client.get("/api/v1/matters/no-such-matter", headers=auth(keys["psb"]))
    assert_problem(response, 404, "matter_not_found")


async def test_matters_are_listed_by_department(app_client, keys):
    response = await app_client.get(
        "/api/v1/matters", params={"department": "PSB"}, headers=auth(keys["psb"])
    )
    assert response.status_code == 200
    assert sorted(m["code"] for m in response.json()["data"]) == ["no-criminal-record", "passport"]


async def test_joint_matter_fee_is_booked_to_each_department_by_largest_remainder(app_client, keys):
    payment = await create_payment(
        app_client, keys["nrb"], matter_code="real-estate-transfer", reference="BDC-2026-0307"
    )
    assert payment["amount"] == 50001
    await pay_with_sandbox(app_client, payment)
    books = await balances(app_client, keys["finance"])
    # 50001 × 60% = 30000.6 and × 40% = 20000.4: the odd fen goes to the larger remainder
    assert books["dept:NRB:fees_payable"] == -30001
    assert books["dept:HCB:fees_payable"] == -20000
    assert books["platform:sandbox_clearing"] == 50001
    assert sum(books.values()) == 0


async def test_joint_matter_with_quantity_splits_the_whole_amount_exactly(app_client, keys):
    payment = await create_payment(
        app_client,
        keys["nrb"],
        matter_code="real-estate-transfer",
        reference="BDC-2026-0308",
        quantity=3,
    )
    assert payment["amount"] == 150003
    await pay_with_sandbox(app_client, payment)
    books = await balances(app_client, keys["finance"])
    assert books["dept:NRB:fees_payable"] == -90002
    assert books["dept:HCB:fees_payable"] == -60001


async def test_fee_split_not_summing_to_10000_is_422(app_client, keys):
    response = await app_client.post(
        "/api/v1/admin/matters",
        json={
            **TRANSFER,
            "fee_split": [
                {"department": "NRB", "share_bps": 6000},
                {"department": "HCB", "share_bps": 3000},
            ],
        },
        headers=auth(keys["admin"]),
    )
    assert_problem(response, 422, "invalid_fee_split", field="fee_split")
    matter = (
        await app_client.get("/api/v1/matters/real-estate-transfer", headers=auth(keys["nrb"]))
    ).json()
    assert len(matter["fee_versions"]) == 1


async def test_fee_split_naming_an_unknown_department_is_422(app_client, keys):
    response = await app_client.post(
        "/api/v1/admin/matters",
        json={
            **TRANSFER,
            "fee_split": [
                {"department": "NRB", "share_bps": 6000},
                {"department": "TAX", "share_bps": 4000},
            ],
        },
        headers=auth(keys["admin"]),
    )
    assert_problem(response, 422, "unknown_department", field="fee_split")


async def test_matter_of_an_unknown_department_is_422(app_client, keys):
    response = await app_client.post(
        "/api/v1/admin/matters",
        json={**PASSPORT, "code": "hukou-transfer", "name": "户口迁移", "department": "CAB"},
        headers=auth(keys["admin"]),
    )
    assert_problem(response, 422, "unknown_department", field="department")
    missing = await app_client.get("/api/v1/matters/hukou-transfer", headers=auth(keys["psb"]))
    assert missing.status_code == 404


async def test_effective_from_without_a_utc_offset_is_422(app_client, keys):
    response = await app_client.post(
        "/api/v1/admin/matters",
        json={**PASSPORT, "amount": 13000, "effective_from": "2027-01-01T00:00:00"},
        headers=auth(keys["admin"]),
    )
    assert_problem(response, (400, 422), field="effective_from")


async def test_a_department_keeps_its_contact_and_who_bears_stripe_fees(app_client, keys):
    response = await app_client.post(
        "/api/v1/admin/departments",
        json={
            "code": "CAB",
            "name": "民政局",
            "contact_email": "it@cab.gov.example.cn",
            "stripe_fees_borne_by": "department",
        },
        headers=auth(keys["admin"]),
    )
    assert response.status_code == 201, response.text
    listed = await app_client.get("/api/v1/departments", headers=auth(keys["admin"]))
    cab = next(d for d in listed.json()["data"] if d["code"] == "CAB")
    assert cab["contact_email"] == "it@cab.gov.example.cn"
    assert cab["stripe_fees_borne_by"] == "department"
    psb = next(d for d in listed.json()["data"] if d["code"] == "PSB")
    assert psb["contact_email"] is None and psb["stripe_fees_borne_by"] == "platform"


async def test_a_department_with_a_bad_contact_or_fee_bearer_is_refused(app_client, keys):
    for field, value in (("contact_email", "not-an-address"), ("stripe_fees_borne_by", "nobody")):
        response = await app_client.post(
            "/api/v1/admin/departments",
            json={"code": "CAB", "name": "民政局", field: value},
            headers=auth(keys["admin"]),
        )
        assert_problem(response, (400, 422), "validation_failed", field=field)
    listed = await app_client.get("/api/v1/departments", headers=auth(keys["admin"]))
    assert "CAB" not in {d["code"] for d in listed.json()["data"]}
