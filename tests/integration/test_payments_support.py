"""Shared fixtures and helpers of the payments contract tests (no tests of its own).

Every test using `keys` runs on SQLite and PostgreSQL (through `app_client` → `db`).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import text

from onetrip.db import get_database
from tests.factories import auth, make_key, payment_body, seed_catalogue

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}

#: a PSB matter whose certificate is collected in person (not deliverable)
NO_CRIMINAL_RECORD = {
    "code": "no-criminal-record",
    "name": "无犯罪记录证明",
    "department": "PSB",
    "amount": 2000,
    "deliverable": False,
    "auto_issue": False,
}

_keys = itertools.count(1)


def idem(prefix: str = "k") -> str:
    """A fresh Idempotency-Key."""
    return f"{prefix}-{next(_keys):06d}"


@pytest.fixture
async def keys(app_client: Any) -> dict[str, str]:
    admin = await make_key("admin")
    await seed_catalogue(app_client, admin)
    response = await app_client.post(
        "/api/v1/admin/matters", json=NO_CRIMINAL_RECORD, headers=auth(admin)
    )
    assert response.status_code == 201, response.text
    return {
        "admin": admin,
        "psb": await make_key("department", ["PSB"]),
        "psb_window": await make_key("department", ["PSB"]),  # a second PSB system
        "nrb": await make_key("department", ["NRB"]),
        "finance": await make_key("finance"),
        "courier": await make_key("courier", partner="sf-express"),
    }


async def create_payment(
    client: Any, key: str, key_header: str | None = None, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/payments", json=payment_body(**body), headers=auth(key, key_header or idem("pay"))
    )
    assert response.status_code == 201, response.text
    return response.json()


def token_of(payment: dict[str, Any]) -> str:
    return payment["payment_url"].rsplit("/", 1)[1]


async def pay_with_sandbox(
    client: Any, payment: dict[str, Any], card: str = "4242424242424242"
) -> None:
    """What the applicant does: open the page, then submit a test card."""
    token = token_of(payment)
    page = await client.get(f"/pay/{token}")
    assert page.status_code == 200, page.text
    paid = await client.post(
        f"/pay/{token}/sandbox", data={"card_number": card}, follow_redirects=False
    )
    assert paid.status_code == 303, paid.text


async def paid_payment(client: Any, key: str, **body: Any) -> dict[str, Any]:
    payment = await create_payment(client, key, **body)
    await pay_with_sandbox(client, payment)
    current = await client.get(f"/api/v1/payments/{payment['id']}", headers=auth(key))
    assert current.json()["status"] == "succeeded", current.text
    return current.json()


def assert_problem(
    response: Any, status: int | tuple[int, ...], code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """A problem+json error with every RFC 9457 member the contract names."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == response.status_code
    assert body["code"] and isinstance(body["code"], str)
    assert body["detail"] and body["title"]
    if code is not None:
        assert body["code"] == code, body
    if field is not None:
        assert body.get("errors"), body
        assert all({"field", "message"} <= e.keys() for e in body["errors"]), body
        assert field in [e["field"] for e in body["errors"]], body
    return body


async def count_rows(table: str, where: str = "", **params: Any) -> int:
    async with get_database().session() as session:
        sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int((await session.execute(text(sql), params)).scalar_one())


async def execute(sql: str, **params: Any) -> None:
    async with get_database().session() as session, session.begin():
        await session.execute(text(sql), params)


async def balances(client: Any, finance_key: str) -> dict[str, int]:
    """Every ledger account's balance (debits − credits), by account code."""
    result: dict[str, int] = {}
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await client.get(
            "/api/v1/ledger/accounts", params=params, headers=auth(finance_key)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        result.update({a["code"]: a["balance"] for a in page["data"]})
        cursor = page["next_cursor"]
        if not cursor:
            return result
