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

from onetrip.app import openapi_config, route_handlers
from onetrip.db import unit_of_work
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
    "courier_b",  # another partner's courier key
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
    files: dict[str, tuple[str, bytes, str]] | None = None  # multipart, with `form` fields
    params: dict[str, str] = field(default_factory=dict)


def keyed(**by_role: Any) -> dict[str, Any]:
    """An endpoint behind a key: 401 for no key and a bad key, then per role. The other
    partner's courier key gets what the courier key gets unless told (only the courier
    API tells them apart)."""
    by_role.setdefault("courier_b", by_role.get("courier"))
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
#: department A's licence: A and the admin read it, B gets 404
READ_LICENSE = keyed(
    dept_a=OK, dept_b=404, finance_a=403, finance_all=403, courier=403, admin=OK
)  # fmt: skip
#: department A's licence, moved: only department A's keys (its state may refuse: 409)
CHANGE_LICENSE = keyed(
    dept_a=ALLOWED, dept_b=404, finance_a=403, finance_all=403, courier=403, admin=403
)  # fmt: skip
#: the courier API: only courier keys (each sees its own partner's list and manifest)
COURIER = keyed(
    dept_a=403, dept_b=403, finance_a=403, finance_all=403, courier=OK, courier_b=OK, admin=403
)  # fmt: skip
#: the courier key's partner's dispatch: another partner's courier key gets 404
OWN_DISPATCH = {**COURIER, "courier_b": 404}
#: reconciliation imports are platform-wide: a finance key for all departments or admin
#: department A's webhook endpoint: only department A's keys; B's get 404 (issue 9)
OWN_ENDPOINT = keyed(
    dept_a=OK, dept_b=404, finance_a=403, finance_all=403, courier=403, admin=403
)  # fmt: skip
PLATFORM_FINANCE = keyed(
    dept_a=403, dept_b=403, finance_a=403, finance_all=OK, courier=403, admin=OK
)  # fmt: skip

#: a UTF-8 bank statement with one signed amount column, for the matrix's CSV profile
MATRIX_PROFILE = {
    "name": "matrix-signed",
    "bank": "BOC",
    "columns": {
        "booked_on": "date",
        "amount": "amount",
        "counterparty": "counterparty",
        "reference": "memo",
        "currency": "currency",
    },
}
MATRIX_STATEMENT = (
    "date,amount,currency,counterparty,memo\n"
    "2026-11-30,120.00,CNY,杭州市公安局,护照 缴费\n"
    "2026-11-30,-2.05,CNY,中国银行,手续费\n"
).encode()

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
    "POST /api/v1/admin/courier-partners/{code}/rotate-secret": Rule(
        ADMIN_ONLY, params={"code": "partner_code"}
    ),
    "POST /api/v1/admin/courier-partners": Rule(
        ADMIN_ONLY,
        json={"code": "ems", "name": "中国邮政 EMS", "service_areas": [{"province": "浙江省"}]},
    ),
    "GET /api/v1/departments": Rule(ANY_KEY),
    "GET /api/v1/matters": Rule(ANY_KEY),
    "GET /api/v1/matters/{code}": Rule(ANY_KEY),
    # satisfaction (department A's figures: its own key, finance for it, admin)
    "GET /api/v1/departments/{code}/satisfaction": Rule(
        keyed(dept_a=OK, dept_b=404, finance_a=OK, finance_all=OK, courier=403, admin=OK),
        params={"code": "department_code"},
    ),
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
    "GET /api/v1/payments/{payment_id}/notifications": Rule(READ_PAYMENT),
    "POST /api/v1/payments/{payment_id}/cancel": Rule(CHANGE_PAYMENT),
    "POST /api/v1/payments/{payment_id}/counter": Rule(CHANGE_PAYMENT, json={"method": "cash"}),
    "POST /api/v1/payments/{payment_id}/refunds": Rule(
        CHANGE_PAYMENT, json={"amount": 100, "reason": "多收退还"}
    ),
    "POST /api/v1/payments/{payment_id}/accept": Rule(
        keyed(dept_a=403, dept_b=403, finance_a=403, finance_all=403, courier=403, admin=ALLOWED)
    ),  # admin: 409, the payment is not in review
    # licences (department A's, issued for its payment in make_world)
    "POST /api/v1/licenses": Rule(
        keyed(dept_a=404, dept_b=404, finance_a=403, finance_all=403, courier=403, admin=403),
        json={"payment_id": "pay_x", "license_no": "M-1", "title": "护照", "holder_name": "张伟"},
    ),  # 404: no such payment, for either department
    "GET /api/v1/licenses": Rule(
        keyed(dept_a=OK, dept_b=OK, finance_a=403, finance_all=403, courier=403, admin=OK)
    ),
    "GET /api/v1/licenses/{license_id}": Rule(READ_LICENSE),
    "GET /api/v1/licenses/{license_id}/events": Rule(READ_LICENSE),
    "GET /api/v1/licenses/{license_id}/document.pdf": Rule(
        {**READ_LICENSE, "dept_a": ALLOWED, "admin": ALLOWED}
    ),  # 409 until the rendering job has drawn it
    "POST /api/v1/licenses/{license_id}/revoke": Rule(CHANGE_LICENSE, json={"reason": "矩阵"}),
    "POST /api/v1/licenses/{license_id}/collect": Rule(
        CHANGE_LICENSE, json={"collected_by": "李四"}
    ),
    "POST /api/v1/licenses/{license_id}/redispatch": Rule(CHANGE_LICENSE, json={}),
    # print runs (one holding department A's licence, made in make_world)
    "GET /api/v1/print-runs": Rule(
        keyed(dept_a=OK, dept_b=OK, finance_a=403, finance_all=403, courier=403, admin=OK)
    ),
    "GET /api/v1/print-runs/{run_id}": Rule(READ_LICENSE),
    "GET /api/v1/print-runs/{run_id}/document.pdf": Rule(READ_LICENSE),
    # ledger (finance)
    "GET /api/v1/ledger/accounts": Rule(FINANCE),
    "GET /api/v1/ledger/accounts/{account_id}": Rule(FINANCE),
    "GET /api/v1/ledger/accounts/{account_id}/entries": Rule(FINANCE),
    "GET /api/v1/ledger/transactions/{transaction_id}": Rule(FINANCE),
    "GET /api/v1/ledger/trial-balance": Rule(FINANCE),
    # closed periods (a long-ended month of department A; closing again returns it)
    "POST /api/v1/ledger/periods": Rule(FINANCE, json={"department": "PSB", "period": "2020-01"}),
    "GET /api/v1/ledger/periods": Rule(FINANCE),
    # the settlement report: past the key, the matrix's call (no query) is refused as
    # incomplete (422); tests/integration/test_settlement_report.py reads it in full
    "GET /api/v1/reports/settlement": Rule(
        keyed(dept_a=403, dept_b=403, finance_a=422, finance_all=422, courier=403, admin=422)
    ),
    # reconciliation (platform-wide data: finance for all departments, or admin)
    "POST /api/v1/reconciliation/imports": Rule(
        PLATFORM_FINANCE,
        form={"source": "bank_csv", "profile": "matrix-signed"},
        files={"file": ("中国银行-2026-11.csv", MATRIX_STATEMENT, "text/csv")},
    ),  # the admin's is the same file again: 201, every line already imported
    "GET /api/v1/reconciliation/imports": Rule(PLATFORM_FINANCE),
    "GET /api/v1/reconciliation/imports/{import_id}": Rule(PLATFORM_FINANCE),
    "POST /api/v1/reconciliation/profiles": Rule(
        {**PLATFORM_FINANCE, "admin": ALLOWED},
        json={**MATRIX_PROFILE, "name": "matrix-posted"},
    ),  # admin: 409 profile_exists, finance (all) saved that name just before
    "GET /api/v1/reconciliation/profiles": Rule(PLATFORM_FINANCE),
    # reconciliation runs and the exceptions queue (a department-bound finance key: only
    # its departments; the world's PSB run is A's, its bank exceptions platform-wide)
    "POST /api/v1/reconciliation/runs": Rule(
        FINANCE, json={"department": "PSB", "date_from": "2026-11-01", "date_to": "2026-11-30"}
    ),
    "GET /api/v1/reconciliation/runs": Rule(FINANCE),
    "GET /api/v1/reconciliation/runs/{run_id}": Rule(
        FINANCE, params={"run_id": "reconciliation_run_id"}
    ),
    "GET /api/v1/reconciliation/runs/{run_id}/exceptions": Rule(
        FINANCE, params={"run_id": "reconciliation_run_id"}
    ),
    "GET /api/v1/reconciliation/exceptions": Rule(FINANCE),
    "GET /api/v1/reconciliation/exceptions/{exception_id}": Rule(
        {**PLATFORM_FINANCE, "finance_a": 404},
        params={"exception_id": "reconciliation_exception_id"},
    ),
    "POST /api/v1/reconciliation/exceptions/{exception_id}/resolve": Rule(
        {**PLATFORM_FINANCE, "finance_a": 404, "admin": ALLOWED},
        json={"action": "accept", "reason": "矩阵：银行手续费，另行处理"},
        params={"exception_id": "reconciliation_exception_id"},
    ),  # admin: 409 exception_already_resolved, finance (all) resolved it just before
    # the courier API (the courier key's partner's dispatch, made in make_world)
    "GET /courier/v1/dispatches": Rule(COURIER),
    "GET /courier/v1/dispatches/{dispatch_id}": Rule(OWN_DISPATCH),
    "GET /courier/v1/dispatches/{dispatch_id}/label.pdf": Rule(OWN_DISPATCH),
    "GET /courier/v1/manifests/{name}": Rule(COURIER, params={"name": "manifest_name"}),
    "POST /courier/v1/dispatches/{dispatch_id}/events": Rule(
        OWN_DISPATCH,
        json={
            "event_id": "SF-MATRIX-1",
            "status": "accepted",
            "occurred_at": "2026-12-01T08:30:00Z",
            "location": "浙江省杭州市西湖区",
        },
    ),
    # verifying a printed licence: anyone holding it, no key
    "GET /.well-known/jwks.json": Rule(public()),
    "GET /verify/{code}": Rule(public(), params={"code": "verify_code"}),
    # applicants and Stripe: no key, a token or a signature instead
    "GET /pay/{token}": Rule(public()),
    "POST /pay/{token}/sandbox": Rule(public(), form={"card_number": "4242424242424242"}),
    "GET /track/{token}": Rule(public(), params={"token": "track_token"}),
    "GET /track/{token}/receipt.pdf": Rule(public(), params={"token": "track_token"}),
    "POST /track/{token}/rating": Rule(
        public(), json={"score": 5}, params={"token": "track_token"}
    ),  # 409 for all: the world's licence is dispatched, not yet delivered
    "POST /pay/{token}/retry": Rule(public()),
    "POST /webhooks/stripe": Rule(public(), json={"id": "evt_1"}),  # unsigned: 400 for all
    # department webhook endpoints (department A's endpoint and a pending delivery of it)
    "POST /api/v1/webhook-endpoints": Rule(
        keyed(dept_a=OK, dept_b=OK, finance_a=403, finance_all=403, courier=403, admin=403),
        json={"url": "https://matrix.example.gov.cn/hooks", "events": ["payment.succeeded"]},
    ),
    "GET /api/v1/webhook-endpoints": Rule(
        keyed(dept_a=OK, dept_b=OK, finance_a=403, finance_all=403, courier=403, admin=403)
    ),
    "GET /api/v1/webhook-endpoints/{endpoint_id}": Rule(OWN_ENDPOINT),
    "PATCH /api/v1/webhook-endpoints/{endpoint_id}": Rule(
        OWN_ENDPOINT, json={"events": ["payment.succeeded", "license.delivered"]}
    ),
    "POST /api/v1/webhook-endpoints/{endpoint_id}/rotate-secret": Rule(OWN_ENDPOINT),
    "GET /api/v1/webhook-endpoints/{endpoint_id}/deliveries": Rule(OWN_ENDPOINT),
    "GET /api/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}": Rule(OWN_ENDPOINT),
    "POST /api/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry": Rule(
        {**OWN_ENDPOINT, "dept_a": ALLOWED}
    ),  # 409 delivery_pending: the delivery has not been attempted yet
    # the OpenAPI document and its viewers
    "GET /schema": Rule(public()),
    "GET /schema/openapi.json": Rule(public()),
    "GET /schema/openapi.yaml": Rule(public()),
    "GET /schema/openapi.yml": Rule(public()),
    "GET /schema/swagger": Rule(public()),
    # the reference UI's own files (issue 7: /schema works offline)
    "GET /schema/assets/{file_path}": Rule(public(), params={"file_path": "schema_asset"}),
    "HEAD /schema/assets/{file_path}": Rule(public(), params={"file_path": "schema_asset"}),
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


PARTNER = "sf-express"  # the courier key's partner
OTHER_PARTNER = "zto"  # the other courier key's (it serves no address of the world)


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
        "courier": await make_key("courier", partner=PARTNER),
        "courier_b": await make_key("courier", partner=OTHER_PARTNER),
        "admin": admin,
    }
    payment = await paid_payment(client, keys["dept_a"])
    created = await client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["dept_a"]))
    accounts = await client.get(
        "/api/v1/ledger/accounts", params={"department": "PSB"}, headers=auth(admin)
    )
    account = accounts.json()["data"][0]["id"]
    entries = await client.get(f"/api/v1/ledger/accounts/{account}/entries", headers=auth(admin))
    license = await client.post(
        "/api/v1/licenses",
        json={
            "payment_id": payment["id"],
            "license_no": "M-0",
            "title": "护照",
            "holder_name": "李",
        },
        headers=auth(keys["dept_a"], "matrix-license"),
    )
    assert license.status_code == 201, license.text
    doomed = await make_key("finance")  # revoked by the admin's DELETE
    from delivery import dispatching, printing
    from tests.integration.test_delivery_print_support import rendered_license

    printed = await rendered_license(payment["id"])  # printed in a run of its own
    [run_id] = (await printing.print_due_licences()).sent
    for code, name, province in (
        (PARTNER, "顺丰速运", "浙江省"),
        (OTHER_PARTNER, "中通快递", "上海市"),
    ):
        partner = await client.post(
            "/api/v1/admin/courier-partners",
            json={"code": code, "name": name, "service_areas": [{"province": province}]},
            headers=auth(admin),
        )
        assert partner.status_code == 201, partner.text
    async with unit_of_work() as session:  # as the `license.printed` consumer would
        dispatch = await dispatching.dispatch_printed_license(session, printed.id)
    assert dispatch is not None and dispatch.partner == PARTNER
    finance = keys["finance_all"]
    profile = await client.post(
        "/api/v1/reconciliation/profiles", json=MATRIX_PROFILE, headers=auth(finance)
    )
    assert profile.status_code == 201, profile.text
    imported = await client.post(
        "/api/v1/reconciliation/imports",
        data={"source": "bank_csv", "profile": MATRIX_PROFILE["name"]},
        files={"file": ("matrix.csv", MATRIX_STATEMENT, "text/csv")},
        headers=auth(finance),
    )
    assert imported.status_code == 201, imported.text
    november = {"date_from": "2026-11-01", "date_to": "2026-11-30"}
    psb_run = await client.post(
        "/api/v1/reconciliation/runs", json={**november, "department": "PSB"}, headers=auth(finance)
    )
    assert psb_run.status_code == 201, psb_run.text
    platform_run = await client.post(
        "/api/v1/reconciliation/runs", json=november, headers=auth(finance)
    )
    assert platform_run.status_code == 201, platform_run.text
    queued = await client.get(
        f"/api/v1/reconciliation/runs/{platform_run.json()['id']}/exceptions",
        headers=auth(finance),
    )
    bank_exception = queued.json()["data"][0]["id"]  # a statement line the ledger lacks
    verify_code = license.json()["verify_url"].rsplit("/verify/", 1)[1]
    genuine = await client.get(f"/verify/{verify_code}", headers={"Accept": "application/json"})
    assert genuine.status_code == 200, genuine.text  # PUBLIC would let a 404 through
    objects = {
        "payment_id": payment["id"],
        "token": created.json()["payment_url"].rsplit("/", 1)[1],
        "track_token": created.json()["tracking_url"].rsplit("/", 1)[1],
        "code": "passport",
        "department_code": "PSB",
        "account_id": account,
        "transaction_id": entries.json()["data"][0]["transaction_id"],
        "key_id": doomed[4:20],
        "schema_path": "openapi.json",
        "schema_asset": "swagger-ui.css",
        "license_id": license.json()["id"],
        "run_id": run_id,
        "partner_code": PARTNER,
        "dispatch_id": dispatch.id,
        "manifest_name": f"{dispatch.handover_date.isoformat()}.pdf",
        "verify_code": verify_code,
        "import_id": imported.json()["id"],
        "reconciliation_run_id": psb_run.json()["id"],
        "reconciliation_exception_id": bank_exception,
        **await department_webhook(client, keys["dept_a"]),
    }
    return keys, objects


async def department_webhook(client: Any, key: str) -> dict[str, str]:
    """A department A webhook endpoint and a pending delivery of it (issue 9)."""
    from onetrip.clock import utcnow
    from onetrip.webhooks import enqueue

    endpoint = await client.post(
        "/api/v1/webhook-endpoints",
        json={"url": "https://psb.example.gov.cn/hooks", "events": ["payment.succeeded"]},
        headers=auth(key),
    )
    assert endpoint.status_code == 201, endpoint.text
    async with unit_of_work() as session:
        delivery_id = await enqueue(
            session,
            target=f"endpoint:{endpoint.json()['id']}",
            url=endpoint.json()["url"],
            secrets=[endpoint.json()["secret"]],
            event_id="evt_matrix",
            event_type="payment.succeeded",
            created_at=utcnow(),
            data={},
        )
    return {"endpoint_id": endpoint.json()["id"], "delivery_id": delivery_id}


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
    if rule.files is not None:
        kwargs["files"] = rule.files
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

    app = Litestar(
        route_handlers=[*route_handlers(), something_new], openapi_config=openapi_config()
    )
    assert set(served_endpoints(app)) - set(RULES) == {"GET /api/v1/something-new"}
