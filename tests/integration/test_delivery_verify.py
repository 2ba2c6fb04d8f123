"""The JWKS and /verify/{code} served by the app: genuine, revoked, expired, forged;
JSON and the HTML page; rotation keeps printed codes valid (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
from typing import Any

from delivery import signing
from onetrip.db import unit_of_work
from tests.factories import auth
from tests.integration.test_delivery_licenses_support import issue, issued_license
from tests.integration.test_payments_support import assert_problem, idem, paid_payment

pytest_plugins = ["tests.integration.test_payments_support"]

JSON = {"Accept": "application/json"}


def code_of(license: dict[str, Any]) -> str:
    return license["verify_url"].rsplit("/verify/", 1)[1]


def flip(code: str, position: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
    raw[position] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


async def test_the_jwks_lists_the_signing_key_as_an_ed25519_jwk(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    response = await app_client.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    (key,) = response.json()["keys"]
    assert key.keys() == {"kty", "crv", "x", "kid", "alg", "use"}
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert len(base64.urlsafe_b64decode(key["x"] + "=")) == 32
    # the key that signed the licence's code, so it verifies offline with this document
    claims = signing.verify(license["verify_url"], response.json())
    assert claims.kid == key["kid"] and claims.license_no == license["license_no"]


async def test_a_genuine_code_is_valid_in_json(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    response = await app_client.get(f"/verify/{code_of(license)}", headers=JSON)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body == {
        "genuine": True,
        "status": "valid",
        "license_no": license["license_no"],
        "title": "机动车驾驶证",
        "holder_name": "张*",
        "department": "PSB",
        "department_name": "市公安局",
        "valid_from": "2026-12-01",
        "valid_until": "2032-12-01",
    }


async def test_a_revoked_licence_is_genuine_but_revoked(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    revoked = await app_client.post(
        f"/api/v1/licenses/{license['id']}/revoke",
        json={"reason": "持证人申请注销"},
        headers=auth(keys["psb"], idem("rev")),
    )
    assert revoked.status_code == 200, revoked.text
    body = (await app_client.get(f"/verify/{code_of(license)}", headers=JSON)).json()
    assert (body["genuine"], body["status"]) == (True, "revoked")
    page = await app_client.get(f"/verify/{code_of(license)}")
    assert page.status_code == 200 and "证照真实，但已被吊销" in page.text


async def test_a_licence_past_its_validity_is_genuine_but_expired(app_client, keys):
    paid = await paid_payment(app_client, keys["psb"], reference=idem("CRJ"))
    response = await issue(
        app_client,
        keys["psb"],
        paid["id"],
        license_no=idem("浙公驾-2019"),
        valid_from="2019-01-01",
        valid_until="2025-01-01",
    )
    assert response.status_code == 201, response.text
    code = code_of(response.json())
    body = (await app_client.get(f"/verify/{code}", headers=JSON)).json()
    assert (body["genuine"], body["status"], body["valid_until"]) == (True, "expired", "2025-01-01")
    page = await app_client.get(f"/verify/{code}?lang=en")
    assert page.status_code == 200 and "genuine but has expired" in page.text


async def test_forged_altered_and_truncated_codes_are_404_not_genuine(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    code = code_of(license)
    stranger = signing.Ed25519PrivateKey.generate()
    async with unit_of_work() as session:
        from delivery.models import License

        row = await session.get(License, license["id"])
        forged = signing.sign_with(row, signing.kid_for(stranger.public_key()), stranger)
        # a forger who copies our kid but signs with their own key
        copied_kid = signing.sign_with(row, row.signing_kid, stranger)
    for bad in (
        flip(code, 20),  # a changed claim byte
        flip(code, len(code) * 3 // 4 - 5),  # a changed signature byte
        code[:-6],
        code[:30],
        forged,
        copied_kid,
        "not-a-code",
    ):
        response = await app_client.get(f"/verify/{bad}", headers=JSON)
        body = assert_problem(response, 404, "verify_code_invalid")
        assert body["genuine"] is False
        page = await app_client.get(f"/verify/{bad}")
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "无法核验" in page.text and "张" not in page.text


async def test_a_genuine_code_whose_licence_content_differs_is_not_genuine(app_client, keys):
    """A code signed for other content (a doctored licence with a real number)."""
    license = await issued_license(app_client, keys["psb"])
    async with unit_of_work() as session:
        from delivery.models import License

        row = await session.get(License, license["id"])
        kid, key = await signing.current_key(session)
        row.holder_name = "李四"  # signed as 李四, but the licence on record says 张伟
        doctored = signing.sign_with(row, kid, key)
        await session.rollback()
    response = await app_client.get(f"/verify/{doctored}", headers=JSON)
    assert_problem(response, 404, "verify_code_invalid")


async def test_the_html_page_shows_the_licence_in_chinese_and_in_english(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    page = await app_client.get(f"/verify/{code_of(license)}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in page.text
    assert "证照真实有效" in page.text and license["license_no"] in page.text
    assert "张*" in page.text and "张伟" not in page.text  # the name stays masked
    en = await app_client.get(f"/verify/{code_of(license)}", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in en.text and "genuine and valid" in en.text


async def test_after_rotation_new_codes_use_the_new_key_and_old_ones_stay_valid(app_client, keys):
    before = await issued_license(app_client, keys["psb"])
    async with unit_of_work() as session:
        new_kid = await signing.rotate_signing_key(session)
    after = await issued_license(app_client, keys["psb"])
    jwks = (await app_client.get("/.well-known/jwks.json")).json()
    assert len(jwks["keys"]) == 2 and new_kid in [k["kid"] for k in jwks["keys"]]
    old_claims = signing.verify(before["verify_url"], jwks)
    new_claims = signing.verify(after["verify_url"], jwks)
    assert new_claims.kid == new_kid != old_claims.kid
    for license in (before, after):
        body = (await app_client.get(f"/verify/{code_of(license)}", headers=JSON)).json()
        assert (body["genuine"], body["status"]) == (True, "valid"), body
