"""Courier partners through the admin API: the JSON an admin sees (both dialects)."""

from __future__ import annotations

from tests.factories import auth, make_key

PARTNER = {
    "code": "sf-express",
    "name": "顺丰速运",
    "service_areas": [
        {"province": "浙江省", "city": "杭州市"},
        {"province": "浙江省", "city": "宁波市", "district": "鄞州区"},
    ],
    "webhook_url": "https://sf.example.cn/onetrip/events",
}
FIELDS = {
    "code",
    "name",
    "service_areas",
    "webhook_url",
    "created_at",
    "daily_capacity",
    "cutoff_time",
    "timezone",
}


async def test_a_registered_partner_shows_its_secret_once(app_client):
    admin = await make_key("admin")
    created = await app_client.post(
        "/api/v1/admin/courier-partners", json=PARTNER, headers=auth(admin)
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body.keys() == FIELDS | {"secret"}
    assert body["secret"].startswith("whsec_")
    assert body["code"] == "sf-express" and body["name"] == "顺丰速运"
    assert body["webhook_url"] == PARTNER["webhook_url"]
    assert body["service_areas"] == [
        {"province": "浙江省", "city": "杭州市", "district": None},
        {"province": "浙江省", "city": "宁波市", "district": "鄞州区"},
    ]
    assert body["created_at"].endswith(("Z", "+00:00"))
    # no capacity given: no limit; the default cut-off and time zone
    assert (body["daily_capacity"], body["cutoff_time"], body["timezone"]) == (
        None,
        "17:00",
        "Asia/Shanghai",
    )

    listed = await app_client.get("/api/v1/admin/courier-partners", headers=auth(admin))
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["next_cursor"] is None
    [partner] = page["data"]
    assert partner.keys() == FIELDS  # the secret is never shown again
    assert {k: partner[k] for k in FIELDS} == {k: body[k] for k in FIELDS}


async def test_a_partner_without_a_webhook_url_lists_it_as_null(app_client):
    admin = await make_key("admin")
    body = {"code": "ems", "name": "中国邮政EMS", "service_areas": [{"province": "浙江省"}]}
    created = await app_client.post(
        "/api/v1/admin/courier-partners", json=body, headers=auth(admin)
    )
    assert created.status_code == 201, created.text
    assert created.json()["webhook_url"] is None
    listed = (await app_client.get("/api/v1/admin/courier-partners", headers=auth(admin))).json()
    assert listed["data"][0]["webhook_url"] is None
    assert listed["data"][0]["service_areas"] == [
        {"province": "浙江省", "city": None, "district": None}
    ]


async def test_rotating_a_partners_secret_shows_the_new_one_once(app_client):
    admin = await make_key("admin")
    created = await app_client.post(
        "/api/v1/admin/courier-partners", json=PARTNER, headers=auth(admin)
    )
    old = created.json()["secret"]
    rotated = await app_client.post(
        "/api/v1/admin/courier-partners/sf-express/rotate-secret", headers=auth(admin)
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    missing = await app_client.post(
        "/api/v1/admin/courier-partners/nope/rotate-secret", headers=auth(admin)
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "courier_partner_not_found"
