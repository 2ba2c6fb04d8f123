"""Every endpoint × every kind of caller, from the app's route table.

401 without a valid key, 403 outside the key's role, 404 for another department's
object (API.md, Conventions). Each (method, path) the app serves needs a rule in
`RULES`; a new endpoint without one fails this test, and so does a rule for an
endpoint that is gone. Path parameters are filled with real objects made here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, get
from litestar.routes import HTTPRoute

from onetrip.app import route_handlers
from tests.factories import PASSPORT, auth, make_key, payment_body, seed_catalogue
from tests.integration.test_payments_support import paid_payment

pytest_plugins = ["tests.integration.test_payments_support"]

ROLES = (
    "none",
    "bad_key",
    "dept_a",
    "dept_b",
    "finance_a",
    "finance_all",
    "courier",
    "admin",
)

OK = "ok"  # 2xx or 3xx
ALLOWED = "allowed"  # let through; the object's state may still refuse it (409)
PUBLIC = "public"  # no key involved: every caller gets the same answer, never 401/403


@dataclass(frozen=True)
class Rule:
    expected: dict[str, Any]
    json: Any = None
    form: dict[str, str] | None = None
    params: dict[str, str] = field(default_factory=dict)


def keyed(**by_role: Any) -> dict[str, Any]:
    """An endpoint behind a key: 401 for no key and a bad key, then per role."""
    assert set(by_role) == set(ROLES) - {"none", "bad_key"}, by_role
    return {"none": 401, "bad_key": 401, **by_role}


def public() -> dict[str, Any]:
    return dict.fromkeys(ROLES, PUBLIC)


ANY_KEY = keyed(
    dept_a=OK, dept_b=OK, finance_a=OK, finance_all=OK, courier=OK, admin=OK
)  # fmt: skip
ADMIN_ONLY = keyed(
    dept_a=403, dept_b=403, finance_a=403, finance_all=403, courier=403, admin=OK
)  # fmt: skip
FINANCE = keyed(
    dept_a=403, dept_b=403, finance_a=OK, finance_all=OK, courier=403, admin=OK
)  # fmt: skip
#: a department A payment: A reads it, B gets 404, finance (A or all) and admin read it
READ_PAYMENT = keyed(
    dept_a=OK, dept_b=404, finance_a=OK, finance_all=OK, courier=403, admin=OK
)  # fmt: skip
#: a department A payment, changed: only department A's keys
CHANGE_PAYMENT = keyed(
    dept_a=ALLOWED, dept_b=404, finance_a=403, finance_all=403, courier=403, admin=403
)  # fmt: skip

RULES: dict[str, Rule] = {
    # operations
    "GET /health/live": Rule(public()),
    "GET /health/ready": Rule(public()),
    "GET /metrics": Rule(public()),
    # keys (admin)
    "GET /api/v1/admin/keys": Rule(ADMIN_ONLY),
    "POST /api/v1/admin/keys": Rule(ADMIN_ONLY, json={"role": "finance", "name": "matrix"}),
    "DELETE /api/v1/admin/keys/{key_id}": Rule(ADMIN_ONLY),
    # catalogue
    "POST /api/v1/admin/departments": Rule(ADMIN_ONLY, json={"code": "TRB", "name": "交通运输局"}),
    "POST /api/v1/admin/matters": Rule(
        ADMIN_ONLY, json={**PASSPORT, "code": "matrix-passport", "name": "护照（矩阵）"}
    ),
    "GET /api/v1/admin/courier-partners": Rule(ADMIN_ONLY),
    "POST /api/v1/admin/courier-partners": Rule(
        ADMIN_ONLY,
        json={"code": "ems", "name": "中国邮政 EMS", "service_areas": [{"province": "浙江省"}]},
    ),
    "GET /api/v1/departments": Rule(ANY_KEY),
    "GET /api/v1/matters": Rule(ANY_KEY),
    "GET /api/v1/matters/{code}": Rule(ANY_KEY),
    # payments
    "POST /api/v1/payments": Rule(
        keyed(dept_a=OK, dept_b=422, finance_a=403, finance_all=403, courier=403, admin=403),
        json=payment_body(reference="CRJ-2026-MATRIX"),
    ),  # 422: the passport is not one of department B's matters
    "GET /api/v1/payments": Rule(
        keyed(dept_a=OK, dept_b=OK, finance_a=OK, finance_all=OK, courier=403, admin=OK)
    ),
    "GET /api/v1/payments/{payment_id}": Rule(READ_PAYMENT),
    "GET /api/v1/payments/{payment_id}/events": Rule(READ_PAYMENT),
    "GET /api/v1/payments/{payment_id}/refunds": Rule(READ_PAYMENT),
    "GET /api/v1/payments/{payment_id}/receipt.pdf": Rule(READ_PAYMENT),
    "POST /api/v1/payments/{payment_id}/cancel": Rule(CHANGE_PAYMENT),
    "POST /api/v1/payments/{payment_id}/counter": Rule(CHANGE_PAYMENT, json={"method": "cash"}),
    "POST /api/v1/payments/{payment_id}/refunds": Rule(
        CHANGE_PAYMENT, json={"amount": 100, "reason": "多收退还"}
    ),
    "POST /api/v1/payments/{payment_id}/accept": Rule(
        keyed(dept_a=403, dept_b=403, finance_a=403, finance_all=403, courier=403, admin=ALLOWED)
    ),  # admin: 409, the payment is not in review
    # ledger (finance)
    "GET /api/v1/ledger/accounts": Rule(FINANCE),
    "GET /api/v1/ledger/accounts/{account_id}": Rule(FINANCE),
    "GET /api/v1/ledger/accounts/{account_id}/entries": Rule(FINANCE),
    "GET /api/v1/ledger/transactions/{transaction_id}": Rule(FINANCE),
    "GET /api/v1/ledger/trial-balance": Rule(FINANCE),
    # applicants and Stripe: no key, a token or a signature instead
    "GET /pay/{token}": Rule(public()),
    "POST /pay/{token}/sandbox": Rule(public(), form={"card_number": "4242424242424242"}),
    "GET /track/{token}": Rule(public(), params={"token": "track_token"}),
    "POST /webhooks/stripe": Rule(public(), json={"id": "evt_1"}),  # unsigned: 400 for all
    # the OpenAPI document and its viewers
    "GET /schema": Rule(public()),
    "GET /schema/openapi.json": Rule(public()),
    "GET /schema/openapi.yaml": Rule(public()),
    "GET /schema/openapi.yml": Rule(public()),
    "GET /schema/elements": Rule(public()),
    "GET /schema/rapidoc": Rule(public()),
    "GET /schema/redoc": Rule(public()),
    "GET /schema/swagger": Rule(public()),
    "GET /schema/oauth2-redirect.html": Rule(public()),
    "GET /schema/{path}": Rule(public(), params={"path": "schema_path"}),
}


def served_endpoints(app: Any) -> dict[str, str]:
    """'METHOD /path/{param}' → the same, for every handler of the app (CORS preflight
    OPTIONS, which Litestar adds to every path, aside)."""
    found: dict[str, str] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method != "OPTIONS":
                    found[f"{method} {route.path_format}"] = route.path_format
    return found


def matches(status: int, expected: Any) -> bool:
    if expected == OK:
        return 200 <= status < 400
    if expected == ALLOWED:
        return 200 <= status < 400 or status == 409
    if expected == PUBLIC:
        return status < 500 and status not in (401, 403)
    return status == expected


async def make_world(client: Any) -> tuple[dict[str, str], dict[str, str]]:
    """The callers' keys and the objects the paths name (department A = PSB, B = NRB)."""
    admin = await make_key("admin")
    await seed_catalogue(client, admin)
    keys = {
        "none": "",
        "bad_key": "otk_0123456789abcdef_" + "A" * 32,
        "dept_a": await make_key("department", ["PSB"]),
        "dept_b": await make_key("department", ["NRB"]),
        "finance_a": await make_key("finance", ["PSB"]),
        "finance_all": await make_key("finance"),
        "courier": await make_key("courier", partner="sf-express"),
        "admin": admin,
    }
    payment = await paid_payment(client, keys["dept_a"])
    created = await client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["dept_a"]))
    accounts = await client.get(
        "/api/v1/ledger/accounts", params={"department": "PSB"}, headers=auth(admin)
    )
    account = accounts.json()["data"][0]["id"]
    entries = await client.get(f"/api/v1/ledger/accounts/{account}/entries", headers=auth(admin))
    doomed = await make_key("finance")  # revoked by the admin's DELETE
    objects = {
        "payment_id": payment["id"],
        "token": created.json()["payment_url"].rsplit("/", 1)[1],
        "track_token": created.json()["tracking_url"].rsplit("/", 1)[1],
        "code": "passport",
        "account_id": account,
        "transaction_id": entries.json()["data"][0]["transaction_id"],
        "key_id": doomed[4:20],
        "schema_path": "openapi.json",
    }
    return keys, objects


_idempotency = itertools.count(1)


async def call(client: Any, method: str, path: str, rule: Rule, key: str) -> int:
    headers = {"Idempotency-Key": f"matrix-{next(_idempotency)}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if rule.json is not None:
        kwargs["json"] = rule.json
    if rule.form is not None:
        kwargs["data"] = rule.form
    response = await client.request(method, path, **kwargs)
    return int(response.status_code)


async def test_every_endpoint_answers_every_caller_as_its_rule_says(api_app, app_client):
    served = served_endpoints(api_app)
    assert not set(served) - set(RULES), f"endpoints without a rule: {set(served) - set(RULES)}"
    assert not set(RULES) - set(served), f"rules for no endpoint: {set(RULES) - set(served)}"

    keys, objects = await make_world(app_client)
    wrong: list[str] = []
    for endpoint, rule in RULES.items():
        method, template = endpoint.split(" ", 1)
        values = {name: objects[name] for name in objects} | {
            param: objects[source] for param, source in rule.params.items()
        }
        path = template.format(**values)
        answers = {role: await call(app_client, method, path, rule, keys[role]) for role in ROLES}
        for role, status in answers.items():
            if not matches(status, rule.expected[role]):
                wrong.append(f"{endpoint} as {role}: {status}, expected {rule.expected[role]}")
        # A key changes nothing on a public path.
        is_public = all(expected == PUBLIC for expected in rule.expected.values())
        if is_public and len(set(answers.values())) != 1:
            wrong.append(f"{endpoint}: answers differ by caller: {answers}")
    assert not wrong, "\n".join(wrong)


def test_a_new_endpoint_without_a_rule_is_caught() -> None:
    @get("/api/v1/something-new", sync_to_thread=False)
    def something_new() -> None:
        return None

    app = Litestar(route_handlers=[*route_handlers(), something_new])
    assert set(served_endpoints(app)) - set(RULES) == {"GET /api/v1/something-new"}
