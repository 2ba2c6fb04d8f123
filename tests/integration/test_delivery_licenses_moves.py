"""Moving licences through the API: revoke, collect, redispatch, illegal moves, the
timeline and the document (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from tests.factories import ADDRESS, auth, make_key
from tests.integration.test_delivery_licenses_support import issued_license, move
from tests.integration.test_payments_support import assert_problem, count_rows, idem

pytest_plugins = ["tests.integration.test_payments_support"]
#: every response must be as the OpenAPI document says (tests/conftest.py)
OPENAPI_CONFORMANCE = True

PARTNER = {
    "code": "zj-express",
    "name": "浙江同城速递",
    "service_areas": [{"province": "浙江省", "city": "宁波市"}],
}
NINGBO = {
    "recipient": "张伟",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "宁波市",
    "district": "鄞州区",
    "line1": "天童南路 588 号",
    "postal_code": "315100",
}


async def post(
    client: Any,
    key: str,
    license_id: str,
    action: str,
    body: dict[str, Any],
    idempotency_key: str | None = None,
) -> Any:
    return await client.post(
        f"/api/v1/licenses/{license_id}/{action}", json=body, headers=auth(key, idempotency_key)
    )


async def timeline(client: Any, key: str, license_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/licenses/{license_id}/events", headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return response.json()["data"]  # type: ignore[no-any-return]


async def test_a_revoked_licence_records_why_and_revoking_again_changes_nothing(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    revoked = await post(
        app_client, keys["psb"], license["id"], "revoke", {"reason": "证件信息有误"}
    )
    assert revoked.status_code == 200, revoked.text
    body = revoked.json()
    assert body["status"] == "revoked" and body["revoke_reason"] == "证件信息有误"
    assert body["revoked_at"] is not None

    again = await post(app_client, keys["psb"], license["id"], "revoke", {"reason": "另一个原因"})
    assert again.status_code == 200 and again.json()["revoke_reason"] == "证件信息有误"
    assert await count_rows("outbox_events", "type = 'license.revoked'") == 1

    entries = await timeline(app_client, keys["psb"], license["id"])
    assert [(e["source"], e["event"], e["status"]) for e in entries] == [
        ("license", "issue", "issued"),
        ("license", "revoke", "revoked"),
    ]
    assert entries[1]["previous_status"] == "issued"
    assert entries[1]["reason"] == "证件信息有误"

    # a revoked licence moves no further
    collect = await post(
        app_client, keys["psb"], license["id"], "collect", {"collected_by": "张伟"}
    )
    assert_problem(collect, 409, "invalid_state_transition")
    blank = await post(app_client, keys["psb"], license["id"], "revoke", {"reason": " "})
    assert_problem(blank, (400, 422), "validation_failed", field="reason")


async def test_a_delivered_licence_cannot_be_revoked(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    await move(license["id"], "render", "print", "dispatch", "deliver")
    answer = await post(app_client, keys["psb"], license["id"], "revoke", {"reason": "补发"})
    assert_problem(answer, 409, "invalid_state_transition")
    current = await app_client.get(f"/api/v1/licenses/{license['id']}", headers=auth(keys["psb"]))
    assert current.json()["status"] == "delivered" and current.json()["revoked_at"] is None


async def test_a_licence_ready_for_pickup_is_collected_once(app_client, keys):
    license = await issued_license(app_client, keys["psb"], delivery={"method": "pickup"})
    assert license["delivery_method"] == "pickup" and license["address"] is None
    early = await post(app_client, keys["psb"], license["id"], "collect", {"collected_by": "张伟"})
    assert_problem(early, 409, "invalid_state_transition")

    await move(license["id"], "render", "print", "ready_for_pickup")
    collected = await post(
        app_client, keys["psb"], license["id"], "collect", {"collected_by": "李四（受托人）"}
    )
    assert collected.status_code == 200, collected.text
    body = collected.json()
    assert body["status"] == "collected" and body["collected_by"] == "李四（受托人）"
    assert body["collected_at"] is not None
    assert await count_rows("outbox_events", "type = 'license.collected'") == 1

    entries = await timeline(app_client, keys["psb"], license["id"])
    assert [e["event"] for e in entries] == [
        "issue",
        "render",
        "print",
        "ready_for_pickup",
        "collect",
    ]
    assert [e["status"] for e in entries][-1] == "collected"
    revoke = await post(app_client, keys["psb"], license["id"], "revoke", {"reason": "补发"})
    assert_problem(revoke, 409, "invalid_state_transition")


async def test_a_move_with_an_idempotency_key_is_replayed(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    first = await post(app_client, keys["psb"], license["id"], "revoke", {"reason": "错发"}, "rv-1")
    replay = await post(
        app_client, keys["psb"], license["id"], "revoke", {"reason": "错发"}, "rv-1"
    )
    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()
    reused = await post(
        app_client, keys["psb"], license["id"], "revoke", {"reason": "别的"}, "rv-1"
    )
    assert_problem(reused, 422, "idempotency_key_reused")


async def test_redispatch_needs_a_key_and_a_returned_or_unallocated_licence(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    no_key = await post(app_client, keys["psb"], license["id"], "redispatch", {})
    assert_problem(no_key, 400, "idempotency_key_required")
    too_early = await post(app_client, keys["psb"], license["id"], "redispatch", {}, idem("rd"))
    assert_problem(too_early, 409, "invalid_state_transition")
    assert await count_rows("dispatches") == 0


async def test_an_unallocated_licence_is_listed_then_redispatched_to_a_corrected_address(
    app_client, keys
):
    license = await issued_license(app_client, keys["psb"])
    await move(license["id"], "render", "print", "no_partner", reason="没有快递服务西湖区")
    waiting = await app_client.get(
        "/api/v1/licenses", params={"status": "needs_attention"}, headers=auth(keys["psb"])
    )
    assert [item["id"] for item in waiting.json()["data"]] == [license["id"]]

    partner = await app_client.post(
        "/api/v1/admin/courier-partners", json=PARTNER, headers=auth(keys["admin"])
    )
    assert partner.status_code == 201, partner.text

    incomplete = {"recipient": "张伟", "province": "浙江省"}
    bad = await post(
        app_client, keys["psb"], license["id"], "redispatch", {"address": incomplete}, idem("rd")
    )
    problem = assert_problem(bad, 422, field="address.phone")
    assert {"address.city", "address.district", "address.line1"} <= {
        e["field"] for e in problem["errors"]
    }
    assert await count_rows("dispatches") == 0

    key = idem("rd")
    sent = await post(
        app_client, keys["psb"], license["id"], "redispatch", {"address": NINGBO}, key
    )
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert body["status"] == "dispatched"
    assert body["address"]["city"] == "宁波市" and body["address"]["line1"] == "天童南路 588 号"
    assert body["dispatch"]["partner"] == "zj-express"
    assert body["dispatch"]["tracking_number"] and body["dispatch"]["status"] == "created"
    replay = await post(
        app_client, keys["psb"], license["id"], "redispatch", {"address": NINGBO}, key
    )
    assert replay.status_code == 200 and replay.json() == body
    assert await count_rows("dispatches") == 1

    # the courier reports the parcel picked up: it shows in the licence's timeline
    courier = await make_key("courier", partner="zj-express")
    event = await app_client.post(
        f"/courier/v1/dispatches/{body['dispatch']['id']}/events",
        json={
            "event_id": "zj-evt-1",
            "status": "picked_up",
            "occurred_at": "2099-01-01T09:30:00+08:00",
            "location": "宁波鄞州营业部",
        },
        headers=auth(courier),
    )
    assert event.status_code in (200, 201), event.text

    entries = await timeline(app_client, keys["psb"], license["id"])
    assert [(e["source"], e["event"]) for e in entries] == [
        ("license", "issue"),
        ("license", "render"),
        ("license", "print"),
        ("license", "no_partner"),
        # the parcel is made, then the licence moves, in one transaction
        ("dispatch", "create"),
        ("license", "redispatch"),
        ("dispatch", "picked_up"),
    ]
    assert (
        entries[3]["status"] == "needs_attention" and entries[3]["reason"] == "没有快递服务西湖区"
    )
    assert entries[4]["tracking_number"] == body["dispatch"]["tracking_number"]
    assert entries[5]["previous_status"] == "needs_attention"
    assert entries[5]["status"] == "dispatched"
    assert entries[6]["location"] == "宁波鄞州营业部" and entries[6]["applied"] is True


async def test_a_redispatch_no_partner_serves_leaves_the_licence_waiting(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    await move(license["id"], "render", "print", "no_partner")
    answer = await post(app_client, keys["psb"], license["id"], "redispatch", {}, idem("rd"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "needs_attention" and answer.json()["dispatch"] is None
    assert answer.json()["address"] == ADDRESS
    assert await count_rows("dispatches") == 0


async def test_the_document_is_a_conflict_before_rendering(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    answer = await app_client.get(
        f"/api/v1/licenses/{license['id']}/document.pdf", headers=auth(keys["psb"])
    )
    assert_problem(answer, 409, "license_not_rendered")
