"""Review: bad input must get a problem+json 4xx, never a 500 (both dialects)."""

from __future__ import annotations

from tests.factories import auth, payment_body
from tests.integration.test_payments_support import (
    assert_problem,
    count_rows,
    create_payment,
    idem,
    paid_payment,
    token_of,
)

pytest_plugins = ["tests.integration.test_payments_support"]


async def test_a_nul_character_in_a_payment_reference_is_a_4xx_and_creates_nothing(
    app_client, keys
):
    response = await app_client.post(
        "/api/v1/payments",
        json=payment_body(reference="CRJ-2026-\u0000001"),
        headers=auth(keys["psb"], idem("pay")),
    )
    # PostgreSQL cannot store a NUL character (SQLite can): never a 500, and a refusal
    # is a problem+json that created nothing
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_problem(response, 400, "invalid_characters")
        assert await count_rows("payments") == 0


async def test_a_nul_character_in_a_refund_reason_is_a_4xx_and_refunds_nothing(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 5000, "reason": "申请人撤回\u0000申请"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_problem(response, 400, "invalid_characters")
        assert await count_rows("refunds") == 0
        again = await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb"]))
        assert again.json()["amount_refunded"] == 0


async def test_a_nul_character_in_a_path_or_query_is_a_4xx(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    for url, headers in (
        ("/api/v1/payments/pay_%00", auth(keys["psb"])),
        ("/api/v1/payments?reference=CRJ%00", auth(keys["psb"])),
        ("/api/v1/payments?cursor=pay_%00", auth(keys["psb"])),
        ("/api/v1/ledger/transactions/txn_%00", auth(keys["finance"])),
        ("/api/v1/ledger/accounts?cursor=acct_%00", auth(keys["finance"])),
        (f"/track/{token_of(payment)}%00", {}),
        (f"/pay/{token_of(payment)}%00", {}),
    ):
        response = await app_client.get(url, headers=headers)
        assert response.status_code < 500, (url, response.text)
        # the applicant's pages may answer with their HTML 404 page; the API (and the
        # character check in front of everything) in problem+json
        page = url.startswith(("/track/", "/pay/"))
        expected = ("text/html", "application/problem+json") if page else "application/problem+json"
        assert response.headers["content-type"].startswith(expected) or (
            response.status_code == 200
        ), (url, response.text)


async def test_a_ledger_entries_cursor_that_is_not_one_we_returned_is_422(app_client, keys):
    await paid_payment(app_client, keys["psb"])
    accounts = await app_client.get("/api/v1/ledger/accounts", headers=auth(keys["finance"]))
    account_id = accounts.json()["data"][0]["id"]
    for cursor in ("²", "99999999999999999999999"):
        response = await app_client.get(
            f"/api/v1/ledger/accounts/{account_id}/entries",
            params={"cursor": cursor},
            headers=auth(keys["finance"]),
        )
        assert_problem(response, 422, "invalid_cursor")


async def test_a_matter_with_a_zero_fee_is_refused_because_it_could_never_be_paid(app_client, keys):
    response = await app_client.post(
        "/api/v1/admin/matters",
        json={
            "code": "free-proof",
            "name": "免费证明",
            "department": "PSB",
            "amount": 0,
            "deliverable": False,
            "auto_issue": False,
        },
        headers=auth(keys["admin"]),
    )
    assert_problem(response, (400, 422), field="amount")
