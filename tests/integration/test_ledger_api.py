"""The finance API over the ledger: what each kind of key may read, and how."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import service as ledger
from ledger.service import STRIPE_CLEARING, STRIPE_FEES, Line, department_fees_account
from onetrip.auth import create_key
from onetrip.db import Database, unit_of_work

PSB_FEES = department_fees_account("PSB")  # 公安局
AMR_FEES = department_fees_account("AMR")  # 市场监管局


class Books:
    """Two departments, a passport fee and a joint business-licence fee, and four keys."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {}
        self.accounts: dict[str, str] = {}
        self.joint_fee_id = ""
        self.passport_fee_id = ""

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


@pytest.fixture
async def books(db: Database) -> Books:
    books = Books()
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, "PSB", "公安局")
        await ledger.open_department_accounts(session, "AMR", "市场监管局")
        passport = await ledger.post_transaction(
            session,
            idempotency_key="payment:pay_passport:succeeded",
            description="普通护照 申请人 张伟 (pay_passport)",
            lines=[Line(STRIPE_CLEARING, 12_000, "CNY"), Line(PSB_FEES, -12_000, "CNY")],
            metadata={"payment_id": "pay_passport", "department": "PSB"},
        )
        joint = await ledger.post_transaction(
            session,
            idempotency_key="payment:pay_joint:succeeded",
            description="营业执照 联办 (pay_joint)",
            lines=[
                Line(STRIPE_CLEARING, 9_970, "CNY"),
                Line(STRIPE_FEES, 30, "CNY"),
                Line(PSB_FEES, -3_000, "CNY"),
                Line(AMR_FEES, -7_000, "CNY"),
            ],
            metadata={"payment_id": "pay_joint", "department": "AMR"},
        )
        books.passport_fee_id, books.joint_fee_id = passport.id, joint.id
        for code in (STRIPE_CLEARING, PSB_FEES, AMR_FEES):
            books.accounts[code] = (await ledger.get_account_by_code(session, code)).id
        _, books.keys["finance"] = await create_key(session, "finance", label="财务处 全部")
        _, books.keys["psb_finance"] = await create_key(
            session, "finance", departments=["PSB"], label="公安局 财务"
        )
        _, books.keys["admin"] = await create_key(session, "admin")
        _, books.keys["department"] = await create_key(session, "department", departments=["PSB"])
    return books


async def get(client: Any, books: Books, who: str, path: str, **params: Any) -> Any:
    return await client.get(f"/api/v1/ledger{path}", headers=books.auth(who), params=params)


async def test_accounts_need_an_api_key(app_client: Any, books: Books) -> None:
    response = await app_client.get("/api/v1/ledger/accounts")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_department_key_may_not_read_the_ledger(app_client: Any, books: Books) -> None:
    response = await get(app_client, books, "department", "/accounts")
    assert response.status_code == 403
    assert response.json()["code"] == "wrong_role"


async def test_an_all_department_finance_key_lists_every_account(
    app_client: Any, books: Books
) -> None:
    response = await get(app_client, books, "finance", "/accounts", limit=200)
    assert response.status_code == 200
    body = response.json()
    by_code = {account["code"]: account for account in body["data"]}
    assert {STRIPE_CLEARING, PSB_FEES, AMR_FEES} <= set(by_code)
    assert body["next_cursor"] is None
    assert by_code[PSB_FEES] | {"created_at": None} == {
        "id": books.accounts[PSB_FEES],
        "code": PSB_FEES,
        "name": "Fees payable to 公安局",
        "department": "PSB",
        "currency": "CNY",
        "balance": -15_000,
        "kind": "liability",
        "created_at": None,
    }
    assert by_code[STRIPE_CLEARING]["department"] is None
    assert by_code[STRIPE_CLEARING]["balance"] == 21_970


async def test_a_department_bound_finance_key_lists_only_its_departments_accounts(
    app_client: Any, books: Books
) -> None:
    response = await get(app_client, books, "psb_finance", "/accounts")
    assert [account["code"] for account in response.json()["data"]] == [PSB_FEES]


async def test_accounts_filtered_by_department(app_client: Any, books: Books) -> None:
    response = await get(app_client, books, "admin", "/accounts", department="AMR")
    assert [account["code"] for account in response.json()["data"]] == [AMR_FEES]


async def test_filtering_by_a_department_outside_the_key_is_forbidden(
    app_client: Any, books: Books
) -> None:
    response = await get(app_client, books, "psb_finance", "/accounts", department="AMR")
    assert response.status_code == 403
    assert response.json()["code"] == "department_not_allowed"


async def test_accounts_are_paginated_with_a_cursor(app_client: Any, books: Books) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = (await get(app_client, books, "finance", "/accounts", **params)).json()
        assert len(body["data"]) <= 3
        seen += [account["id"] for account in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == len(ledger.PLATFORM_ACCOUNTS) + 2


async def test_a_limit_above_200_is_a_validation_problem(app_client: Any, books: Books) -> None:
    response = await get(app_client, books, "finance", "/accounts", limit=201)
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "limit"


async def test_one_account_reads_back_with_its_balance(app_client: Any, books: Books) -> None:
    account_id = books.accounts[AMR_FEES]
    response = await get(app_client, books, "psb_finance", f"/accounts/{books.accounts[PSB_FEES]}")
    assert response.status_code == 200
    assert response.json()["balance"] == -15_000
    response = await get(app_client, books, "admin", f"/accounts/{account_id}")
    assert response.json()["code"] == AMR_FEES


async def test_another_departments_account_is_not_found_for_a_bound_finance_key(
    app_client: Any, books: Books
) -> None:
    response = await get(app_client, books, "psb_finance", f"/accounts/{books.accounts[AMR_FEES]}")
    missing = await get(app_client, books, "psb_finance", "/accounts/acct_doesnotexist")
    assert response.status_code == missing.status_code == 404
    assert response.json()["code"] == missing.json()["code"] == "account_not_found"


async def test_platform_accounts_are_not_found_for_a_bound_finance_key(
    app_client: Any, books: Books
) -> None:
    clearing = books.accounts[STRIPE_CLEARING]
    assert (await get(app_client, books, "psb_finance", f"/accounts/{clearing}")).status_code == 404
    entries = await get(app_client, books, "psb_finance", f"/accounts/{clearing}/entries")
    assert entries.status_code == 404


async def test_an_accounts_entries_are_listed_newest_first(app_client: Any, books: Books) -> None:
    path = f"/accounts/{books.accounts[PSB_FEES]}/entries"
    first = (await get(app_client, books, "psb_finance", path, limit=1)).json()
    assert [(e["amount"], e["transaction_id"]) for e in first["data"]] == [
        (-3_000, books.joint_fee_id)
    ]
    assert first["data"][0]["description"] == "营业执照 联办 (pay_joint)"
    assert first["data"][0]["effective_at"].endswith("Z")
    rest = (await get(app_client, books, "psb_finance", path, cursor=first["next_cursor"])).json()
    assert [e["amount"] for e in rest["data"]] == [-12_000]
    assert rest["next_cursor"] is None


async def test_a_malformed_entries_cursor_is_a_validation_problem(
    app_client: Any, books: Books
) -> None:
    path = f"/accounts/{books.accounts[PSB_FEES]}/entries"
    response = await get(app_client, books, "finance", path, cursor="not-a-cursor")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_cursor"


async def test_a_transaction_reads_back_with_all_its_entries(app_client: Any, books: Books) -> None:
    response = await get(app_client, books, "finance", f"/transactions/{books.joint_fee_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["metadata"] == {"payment_id": "pay_joint", "department": "AMR"}
    assert [(e["code"], e["amount"]) for e in body["entries"]] == [
        (STRIPE_CLEARING, 9_970),
        (STRIPE_FEES, 30),
        (PSB_FEES, -3_000),
        (AMR_FEES, -7_000),
    ]
    assert sum(e["amount"] for e in body["entries"]) == 0
    assert body["departments"] is None
    assert body["recorded_at"].endswith("Z")


async def test_a_bound_finance_key_sees_only_its_departments_entries_of_a_joint_transaction(
    app_client: Any, books: Books
) -> None:
    body = (
        await get(app_client, books, "psb_finance", f"/transactions/{books.joint_fee_id}")
    ).json()
    assert [(e["code"], e["amount"]) for e in body["entries"]] == [(PSB_FEES, -3_000)]
    assert body["departments"] == ["PSB"]


async def test_a_transaction_without_the_keys_departments_is_not_found(
    app_client: Any, books: Books, db: Database
) -> None:
    async with unit_of_work() as session:
        amr_only = await ledger.post_transaction(
            session,
            idempotency_key="payment:pay_amr:succeeded",
            description="营业执照 (pay_amr)",
            lines=[Line(STRIPE_CLEARING, 5_000, "CNY"), Line(AMR_FEES, -5_000, "CNY")],
        )
    response = await get(app_client, books, "psb_finance", f"/transactions/{amr_only.id}")
    assert response.status_code == 404
    assert response.json()["code"] == "transaction_not_found"


async def test_the_trial_balance_totals_are_equal(app_client: Any, books: Books) -> None:
    response = await get(app_client, books, "finance", "/trial-balance")
    assert response.status_code == 200
    body = response.json()
    assert body["total_debits"] == body["total_credits"] == 22_000
    assert body["departments"] is None
    assert body["as_of"].endswith("Z")
    assert {line["code"]: (line["debits"], line["credits"]) for line in body["lines"]} == {
        AMR_FEES: (0, 7_000),
        PSB_FEES: (0, 15_000),
        STRIPE_CLEARING: (21_970, 0),
        STRIPE_FEES: (30, 0),
    }
    assert set(body["lines"][0]) == {
        "account_id",
        "code",
        "department",
        "currency",
        "debits",
        "credits",
    }


async def test_a_trial_balance_as_of_before_any_posting_is_empty(
    app_client: Any, books: Books
) -> None:
    response = await get(app_client, books, "admin", "/trial-balance", as_of="2020-01-01T00:00:00Z")
    body = response.json()
    assert (body["lines"], body["total_debits"], body["total_credits"]) == ([], 0, 0)
    assert body["as_of"] == "2020-01-01T00:00:00Z"


async def test_a_bound_finance_keys_trial_balance_covers_only_its_departments(
    app_client: Any, books: Books
) -> None:
    body = (await get(app_client, books, "psb_finance", "/trial-balance")).json()
    assert [line["code"] for line in body["lines"]] == [PSB_FEES, "other"]
    assert body["departments"] == ["PSB"]
    # Every scope's trial balance balances: platform accounts and AMR in one line.
    assert body["total_debits"] == body["total_credits"] == 22_000
    psb, other = body["lines"]
    assert (psb["debits"], psb["credits"]) == (0, 15_000)
    assert other == {
        "account_id": "other",
        "code": "other",
        "department": None,
        "currency": "CNY",
        "debits": 21_970 + 30,
        "credits": 7_000,
    }
    # the "other" line is the difference the scope's own lines leave
    assert other["debits"] - other["credits"] == psb["credits"] - psb["debits"]
    everything = (await get(app_client, books, "admin", "/trial-balance")).json()
    assert psb in everything["lines"]
    assert "other" not in [line["code"] for line in everything["lines"]]


@pytest.mark.parametrize("as_of", ["yesterday", "2025-06-30T16:00:00", "2025-13-01T00:00:00Z"])
async def test_a_bad_as_of_is_a_validation_problem(
    app_client: Any, books: Books, as_of: str
) -> None:
    response = await get(app_client, books, "finance", "/trial-balance", as_of=as_of)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_as_of"
    assert response.json()["errors"] == [
        {"field": "as_of", "message": "must be an RFC 3339 timestamp"}
    ]


async def test_the_openapi_document_describes_the_finance_endpoints(
    app_client: Any, books: Books
) -> None:
    paths = (await app_client.get("/schema/openapi.json")).json()["paths"]
    assert {
        "/api/v1/ledger/accounts",
        "/api/v1/ledger/accounts/{account_id}",
        "/api/v1/ledger/accounts/{account_id}/entries",
        "/api/v1/ledger/transactions/{transaction_id}",
        "/api/v1/ledger/trial-balance",
    } <= set(paths)
