"""Issuing licences through the API: what a department gets, what is refused, replays,
and who may see what (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from delivery import licenses
from delivery.schemas import LicenseIn
from onetrip.auth import Principal
from onetrip.db import unit_of_work
from onetrip.errors import Conflict
from onetrip.settings import reset_settings
from tests.factories import auth
from tests.integration.test_delivery_licenses_support import issue, issued_license, license_body
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    idem,
    paid_payment,
)

pytest_plugins = ["tests.integration.test_payments_support"]
#: every response must be as the OpenAPI document says (tests/conftest.py)
OPENAPI_CONFORMANCE = True

LICENSE_FIELDS = {
    "id",
    "status",
    "verify_url",
    "license_no",
    "title",
    "holder_name",
    "fields",
    "valid_from",
    "valid_until",
    "payment_id",
    "department",
    "matter_code",
    "delivery_method",
    "address",
    "print_station",
    "revoked_at",
    "revoke_reason",
    "collected_by",
    "collected_at",
    "dispatch",
    "created_at",
    "updated_at",
}


async def test_a_department_issues_the_licence_of_a_paid_payment(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    response = await issue(app_client, keys["psb"], payment["id"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body.keys() >= LICENSE_FIELDS, body
    assert body["id"].startswith("lic_") and body["status"] == "issued"
    assert (body["license_no"], body["title"], body["holder_name"]) == (
        "浙公驾 330106-2026-0001",
        "机动车驾驶证",
        "张伟",
    )
    assert body["fields"] == {"准驾车型": "C1", "住址": "浙江省杭州市西湖区文三路 100 号"}
    assert (body["valid_from"], body["valid_until"]) == ("2026-12-01", "2032-12-01")
    assert (body["payment_id"], body["department"], body["matter_code"]) == (
        payment["id"],
        "PSB",
        "passport",
    )
    # the payment's delivery is copied onto the licence
    assert body["delivery_method"] == "courier"
    assert body["address"]["district"] == "西湖区" and body["address"]["recipient"] == "张伟"
    assert body["verify_url"].startswith("http") and "/verify/" in body["verify_url"]
    assert body["dispatch"] is None and body["revoked_at"] is None

    again = await app_client.get(f"/api/v1/licenses/{body['id']}", headers=auth(keys["psb"]))
    assert again.status_code == 200 and again.json() == body

    # one license.issued event, routed to the payment and the licence, committed with it
    assert await count_rows("outbox_events", "type = 'license.issued'") == 1
    assert (
        await count_rows(
            "outbox_events",
            "type = 'license.issued' AND subject_id = :lic AND payment_id = :pay "
            "AND department = 'PSB'",
            lic=body["id"],
            pay=payment["id"],
        )
        == 1
    )
    events = await app_client.get(
        f"/api/v1/payments/{payment['id']}/events", headers=auth(keys["psb"])
    )
    issued = [e for e in events.json()["data"] if e["type"] == "license.issued"]
    assert issued and issued[0]["data"]["license_id"] == body["id"]
    assert issued[0]["data"]["license_no"] == body["license_no"]


async def test_a_replay_returns_the_first_licence_and_a_reused_key_is_refused(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    first = await issue(app_client, keys["psb"], payment["id"], "lic-replay-1")
    replay = await issue(app_client, keys["psb"], payment["id"], "lic-replay-1")
    assert first.status_code == replay.status_code == 201, replay.text
    assert replay.json() == first.json()
    assert await count_rows("licenses") == 1
    assert await count_rows("outbox_events", "type = 'license.issued'") == 1

    other = await issue(app_client, keys["psb"], payment["id"], "lic-replay-1", title="营业执照")
    assert_problem(other, 422, "idempotency_key_reused")

    missing = await app_client.post(
        "/api/v1/licenses", json=license_body(payment["id"]), headers=auth(keys["psb"])
    )
    assert_problem(missing, 400, "idempotency_key_required")
    assert await count_rows("licenses") == 1


async def test_an_unpaid_payment_gets_no_licence(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await issue(app_client, keys["psb"], payment["id"])
    assert_problem(response, 409, "payment_not_paid")
    assert await count_rows("licenses") == 0
    assert await count_rows("outbox_events", "type = 'license.issued'") == 0


async def test_a_fully_refunded_payment_gets_no_licence_but_a_partly_refunded_one_does(
    app_client, keys
):
    refunded = await paid_payment(app_client, keys["psb"], reference="CRJ-2026-000101")
    partly = await paid_payment(app_client, keys["psb"], reference="CRJ-2026-000102")
    for payment, amount in ((refunded, 12000), (partly, 2000)):
        answer = await app_client.post(
            f"/api/v1/payments/{payment['id']}/refunds",
            json={"amount": amount, "reason": "申请人撤回申请"},
            headers=auth(keys["psb"], idem("rf")),
        )
        assert answer.status_code == 201, answer.text
    assert_problem(await issue(app_client, keys["psb"], refunded["id"]), 409, "payment_refunded")
    ok = await issue(app_client, keys["psb"], partly["id"], license_no="浙公驾-2026-0102")
    assert ok.status_code == 201, ok.text


async def test_a_matter_that_is_not_delivered_gets_no_licence(app_client, keys):
    payment = await paid_payment(
        app_client,
        keys["psb"],
        matter_code="no-criminal-record",
        delivery={"method": "pickup"},
    )
    response = await issue(app_client, keys["psb"], payment["id"], title="无犯罪记录证明")
    assert_problem(response, 409, "matter_not_deliverable")
    assert await count_rows("licenses") == 0


async def test_one_licence_per_payment_and_one_number_per_department(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"], reference="CRJ-2026-000201")
    first = await issue(app_client, keys["psb"], payment["id"])
    assert first.status_code == 201, first.text

    second = await issue(app_client, keys["psb"], payment["id"], license_no="浙公驾-2026-9999")
    problem = assert_problem(second, 409, "license_exists")
    assert problem["license_id"] == first.json()["id"]
    assert first.json()["id"] in problem["detail"]

    another = await paid_payment(app_client, keys["psb"], reference="CRJ-2026-000202")
    taken = await issue(app_client, keys["psb"], another["id"])  # the same license_no
    assert_problem(taken, 409, "license_no_exists")
    assert await count_rows("licenses") == 1


async def test_the_same_number_may_be_used_by_another_department(app_client, keys):
    psb = await paid_payment(app_client, keys["psb"], reference="CRJ-2026-000301")
    nrb = await paid_payment(
        app_client, keys["nrb"], matter_code="real-estate-transfer", reference="BDC-2026-000301"
    )
    assert (
        await issue(app_client, keys["psb"], psb["id"], license_no="2026-0001")
    ).status_code == 201
    answer = await issue(
        app_client, keys["nrb"], nrb["id"], license_no="2026-0001", title="不动产权证书"
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["department"] == "NRB"


async def test_another_departments_payment_is_not_found(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    response = await issue(app_client, keys["nrb"], payment["id"])
    assert_problem(response, 404, "payment_not_found")
    assert_problem(await issue(app_client, keys["psb"], "pay_nosuchpayment"), 404)
    assert await count_rows("licenses") == 0


async def test_bad_fields_are_refused_and_change_nothing(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    backwards = await issue(
        app_client, keys["psb"], payment["id"], valid_from="2030-01-01", valid_until="2029-12-31"
    )
    assert_problem(backwards, 422, "invalid_validity", field="valid_until")
    for field, day in (("valid_from", "1999-12-31"), ("valid_until", "2100-01-01")):
        out_of_range = await issue(app_client, keys["psb"], payment["id"], **{field: day})
        assert_problem(out_of_range, 422, "invalid_validity", field=field)
    for field, value in (("holder_name", ""), ("holder_name", "\u3000 "), ("license_no", "")):
        response = await issue(app_client, keys["psb"], payment["id"], **{field: value})
        assert_problem(response, (400, 422), "validation_failed", field=field)
    empty_cell = await issue(app_client, keys["psb"], payment["id"], fields={"准驾车型": ""})
    assert_problem(empty_cell, (400, 422), "validation_failed")
    unknown = await issue(app_client, keys["psb"], payment["id"], amount=1)
    assert_problem(unknown, (400, 422), "validation_failed", field="amount")
    assert await count_rows("licenses") == 0


async def test_only_department_keys_issue_and_only_department_and_admin_keys_read(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    for role in ("finance", "courier", "admin"):
        refused = await issue(app_client, keys[role], payment["id"])
        assert_problem(refused, 403, "wrong_role")
    license = (await issue(app_client, keys["psb"], payment["id"])).json()
    for role in ("finance", "courier"):
        for path in ("", f"/{license['id']}", f"/{license['id']}/events"):
            refused = await app_client.get(f"/api/v1/licenses{path}", headers=auth(keys[role]))
            assert_problem(refused, 403, "wrong_role")
    admin = await app_client.get(f"/api/v1/licenses/{license['id']}", headers=auth(keys["admin"]))
    assert admin.status_code == 200 and admin.json()["id"] == license["id"]
    window = await app_client.get(
        f"/api/v1/licenses/{license['id']}", headers=auth(keys["psb_window"])
    )
    assert window.status_code == 200  # the department's other system sees it too


async def test_another_departments_licence_is_not_found_anywhere(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    nrb = auth(keys["nrb"], idem("nrb"))
    for path in ("", "/events", "/document.pdf"):
        answer = await app_client.get(f"/api/v1/licenses/{license['id']}{path}", headers=nrb)
        assert_problem(answer, 404, "license_not_found")
    for action, body in (
        ("revoke", {"reason": "信息有误"}),
        ("collect", {"collected_by": "李四"}),
        ("redispatch", {}),
    ):
        answer = await app_client.post(
            f"/api/v1/licenses/{license['id']}/{action}", json=body, headers=nrb
        )
        assert_problem(answer, 404, "license_not_found")
    listed = await app_client.get("/api/v1/licenses", headers=auth(keys["nrb"]))
    assert listed.status_code == 200 and listed.json()["data"] == []
    current = await app_client.get(f"/api/v1/licenses/{license['id']}", headers=auth(keys["psb"]))
    assert current.json()["status"] == "issued" and current.json()["revoked_at"] is None


async def test_the_list_filters_by_status_and_payment_and_pages_newest_first(app_client, keys):
    made = [await issued_license(app_client, keys["psb"]) for _ in range(3)]
    nrb_paid = await paid_payment(
        app_client, keys["nrb"], matter_code="real-estate-transfer", reference="BDC-2026-000401"
    )
    nrb = await issue(app_client, keys["nrb"], nrb_paid["id"], title="不动产权证书")
    assert nrb.status_code == 201, nrb.text
    revoked = await app_client.post(
        f"/api/v1/licenses/{made[0]['id']}/revoke",
        json={"reason": "信息有误"},
        headers=auth(keys["psb"]),
    )
    assert revoked.status_code == 200, revoked.text

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await app_client.get("/api/v1/licenses", params=params, headers=auth(keys["psb"]))
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert seen == [m["id"] for m in reversed(made)]  # newest first, own department only

    admin = await app_client.get("/api/v1/licenses", headers=auth(keys["admin"]))
    assert {item["department"] for item in admin.json()["data"]} == {"PSB", "NRB"}

    by_status = await app_client.get(
        "/api/v1/licenses", params={"status": "revoked"}, headers=auth(keys["psb"])
    )
    assert [item["id"] for item in by_status.json()["data"]] == [made[0]["id"]]
    by_payment = await app_client.get(
        "/api/v1/licenses", params={"payment_id": made[1]["payment_id"]}, headers=auth(keys["psb"])
    )
    assert [item["id"] for item in by_payment.json()["data"]] == [made[1]["id"]]
    unknown = await app_client.get(
        "/api/v1/licenses", params={"status": "lost"}, headers=auth(keys["psb"])
    )
    assert_problem(unknown, (400, 422), "validation_failed")
    too_many = await app_client.get(
        "/api/v1/licenses", params={"limit": 201}, headers=auth(keys["psb"])
    )
    assert_problem(too_many, 422, "invalid_limit")


async def test_concurrent_issues_for_one_payment_make_one_licence(app_client, keys):
    """Two systems of the department issuing at once, each in its own transaction: the
    payment's row lock lets one through, the other sees its licence."""
    payment = await paid_payment(app_client, keys["psb"])
    principal = Principal(key_id="psb-window", role="department", departments=("PSB",))

    async def attempt(n: int) -> Any:
        data = msgspec.convert(license_body(payment["id"], license_no=f"浙公驾-{n}"), LicenseIn)
        async with unit_of_work() as session:
            return await licenses.issue_license(session, principal, data)

    outcomes = await asyncio.gather(*(attempt(n) for n in range(4)), return_exceptions=True)
    issued = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(issued) == 1, outcomes
    assert all(isinstance(o, Conflict) and o.code == "license_exists" for o in refused), outcomes
    assert await count_rows("licenses") == 1
    assert await count_rows("outbox_events", "type = 'license.issued'") == 1


async def test_a_licence_prints_at_its_departments_station_when_one_is_configured(
    app_client, keys, env
):
    plain = await issued_license(app_client, keys["psb"])
    assert plain["print_station"] == "default"
    env.setenv("ONETRIP_PRINTERS", "default=spool:,PSB=ipp://127.0.0.1:631/printers/PDF")
    reset_settings()
    psb = await issued_license(app_client, keys["psb"])
    assert psb["print_station"] == "PSB"
    nrb_paid = await paid_payment(
        app_client, keys["nrb"], matter_code="real-estate-transfer", reference="BDC-2026-000501"
    )
    nrb = await issue(app_client, keys["nrb"], nrb_paid["id"], title="不动产权证书")
    assert nrb.json()["print_station"] == "default"
