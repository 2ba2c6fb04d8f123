"""The served OpenAPI document describes the API (issue 7 item 4), walked operation by
operation: a real success schema, problem+json errors with documented codes that exist,
the bearer scheme exactly where a key is required, the headers as enforced, and
examples (in Chinese) that fit their schemas.

Each test lists every operation that breaks its rule, so a new endpoint without its
declarations (onetrip/openapi.py, /work/brief/O_API.md) is named in the failure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from onetrip.openapi import PROBLEM_REF, document
from onetrip.problems import PROBLEM_JSON
from tests.factories import auth, make_key, payment_body

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["onetrip", "payments", "ledger", "delivery", "notifications"]
METHODS = ("get", "put", "post", "delete", "patch")
#: The one error response that is not a problem: readiness answers a probe with its checks.
NOT_PROBLEMS = {("get", "/health/ready", "503")}
#: Applicant pages answer a bad link with a page in the applicant's language.
PAGES = ("/pay/", "/track/", "/verify/")
#: code="x", code = "x", "code": "x" and the status → code table of onetrip.problems
_CODE = re.compile(
    r"""(?:\bcode\s*=\s*|["']code["']\s*:\s*|\d{3}\s*:\s*)["']([a-z][a-z0-9_]*)["']"""
)
_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def served(api_app: Any) -> dict[str, Any]:
    return document(api_app)


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def is_described(doc: dict[str, Any], schema: dict[str, Any] | None) -> bool:
    """Not `{}`, not a bare object: an object names its properties."""
    if not schema:
        return False
    schema = resolve(doc, schema)
    if "allOf" in schema or "oneOf" in schema or "anyOf" in schema:
        return True
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types:
        return bool(schema.get("properties"))
    return bool(types and types != [None])


def code_base_codes() -> set[str]:
    codes: set[str] = set()
    for package in SOURCES:
        for source in (ROOT / package).rglob("*.py"):
            codes.update(_CODE.findall(source.read_text(encoding="utf-8")))
    return codes


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})


async def test_every_operation_has_a_success_response_with_its_schema(served):
    wrong = []
    for method, path, operation in operations(served):
        success = {s: r for s, r in operation["responses"].items() if s[0] in "23"}
        if not success:
            wrong.append(f"{method.upper()} {path}: no success response")
        for status, response in success.items():
            if status.startswith("3"):
                if "location" not in {h.lower() for h in response.get("headers", {})}:
                    wrong.append(f"{method.upper()} {path} {status}: no Location header")
                continue
            content = response.get("content") or {}
            if not content:
                wrong.append(f"{method.upper()} {path} {status}: no content")
            for media, entry in content.items():
                if not is_described(served, entry.get("schema")):
                    wrong.append(f"{method.upper()} {path} {status} {media}: {entry.get('schema')}")
    assert not wrong, "success responses without a real schema:\n" + "\n".join(wrong)


async def test_every_error_is_a_problem_with_its_codes(served):
    wrong = []
    for method, path, operation in operations(served):
        for status, response in operation["responses"].items():
            if status[0] not in "45" or (method, path, status) in NOT_PROBLEMS:
                continue
            if path.startswith(PAGES) and set(response.get("content") or {}) == {"text/html"}:
                continue
            where = f"{method.upper()} {path} {status}"
            schema = (response.get("content") or {}).get(PROBLEM_JSON, {}).get("schema") or {}
            parts = schema.get("allOf", [])
            narrowed = next((p for p in parts if "properties" in p), {}).get("properties", {})
            if not any(p.get("$ref") == PROBLEM_REF for p in parts):
                wrong.append(f"{where}: not the Problem schema: {response}")
            elif narrowed.get("status", {}).get("const") != int(status):
                wrong.append(f"{where}: status not narrowed to {status}")
            elif not narrowed.get("code", {}).get("enum"):
                wrong.append(f"{where}: no codes")
    assert not wrong, "errors not documented as problem+json:\n" + "\n".join(wrong)


async def test_every_documented_code_exists_in_the_code_base(served):
    known = code_base_codes()
    assert {"payment_not_found", "missing_api_key", "rate_limited"} <= known  # the scan works
    wrong = []
    for method, path, operation in operations(served):
        for status, response in operation["responses"].items():
            schema = (response.get("content") or {}).get(PROBLEM_JSON, {}).get("schema") or {}
            for part in schema.get("allOf", []):
                for code in part.get("properties", {}).get("code", {}).get("enum", []):
                    if code not in known:
                        wrong.append(f"{method.upper()} {path} {status}: {code}")
    assert not wrong, "codes no code raises:\n" + "\n".join(wrong)


async def test_rate_limits_and_outages_say_when_to_retry(served):
    wrong = []
    for method, path, operation in operations(served):
        for status, response in operation["responses"].items():
            headers = {name.lower(): h for name, h in (response.get("headers") or {}).items()}
            if status in {"429", "503"} and not headers.get("retry-after", {}).get("required"):
                wrong.append(f"{method.upper()} {path} {status}: no Retry-After")
            if status == "401" and "www-authenticate" not in headers:
                wrong.append(f"{method.upper()} {path} 401: no WWW-Authenticate")
    assert not wrong, "\n".join(wrong)


async def test_the_bearer_scheme_is_on_exactly_the_operations_that_refuse_no_key(
    served, app_client
):
    """Called without a key, a keyed operation answers 401 before anything else (its
    body is not even read): those, and only those, document the security requirement."""
    (scheme,) = [
        name
        for name, s in served["components"]["securitySchemes"].items()
        if s.get("type") == "http" and s.get("scheme") == "bearer"
    ]
    wrong = []
    for method, path, operation in operations(served):
        url = re.sub(r"\{[^}]+\}", "x", path)
        response = await app_client.request(
            method.upper(), url, headers={"Idempotency-Key": "walk-1"}, follow_redirects=False
        )
        keyed = response.status_code == 401
        documented = operation.get("security", served.get("security")) == [{scheme: []}]
        if keyed != documented:
            wrong.append(f"{method.upper()} {path}: answered {response.status_code} without a key, "
                         f"security {operation.get('security')}")  # fmt: skip
        if keyed and "401" not in operation["responses"]:
            wrong.append(f"{method.upper()} {path}: 401 not documented")
    assert not wrong, "\n".join(wrong)


async def test_money_moving_posts_require_their_idempotency_key(served, app_client):
    """Documented required where it is refused without one (400
    idempotency_key_required); a cancel, idempotent by state, takes one optionally."""
    required = {
        "/api/v1/payments": True,
        "/api/v1/payments/{payment_id}/refunds": True,
        "/api/v1/payments/{payment_id}/counter": True,
        "/api/v1/payments/{payment_id}/accept": True,
        "/api/v1/payments/{payment_id}/cancel": False,
    }
    for path, expected in required.items():
        (header,) = [
            p for p in served["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key"
        ]
        assert header["in"] == "header" and header["required"] is expected, (path, header)
    key = await make_key("department", ["PSB"])
    response = await app_client.post("/api/v1/payments", json=payment_body(), headers=auth(key))
    assert (response.status_code, response.json()["code"]) == (400, "idempotency_key_required")


async def test_examples_fit_their_schemas_and_speak_chinese(served):
    wrong = []
    for method, path, operation in operations(served):
        bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
        bodies += [(status, r.get("content", {})) for status, r in operation["responses"].items()]
        for where, content in bodies:
            for media, entry in content.items():
                if "example" not in entry or "json" not in media:
                    continue
                for error in validator(served, entry["schema"]).iter_errors(entry["example"]):
                    wrong.append(f"{method.upper()} {path} {where}: {error.message}")
    assert not wrong, "examples that do not fit:\n" + "\n".join(wrong)
    payment = served["paths"]["/api/v1/payments"]["post"]
    example = payment["requestBody"]["content"]["application/json"]["example"]
    assert _CJK.search(json.dumps(example, ensure_ascii=False))
    assert _CJK.search(json.dumps(payment["responses"]["201"], ensure_ascii=False))


async def test_the_served_document_is_the_completed_one(served, app_client):
    response = await app_client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(served))
    assert "Problem" in response.json()["components"]["schemas"]


async def test_the_response_check_refuses_what_the_document_does_not_say(served):
    """The check tests/conftest.py runs on real responses is not vacuous."""
    from tests.integration.test_openapi_support import Conformance

    check = Conformance(served)

    def problem(status: int, code: str) -> bytes:
        return json.dumps(
            {"type": "t", "title": "t", "status": status, "detail": "d", "code": code}
        ).encode()

    one = ("GET", "/api/v1/payments/pay_1")
    json_problem = "application/problem+json"
    assert check.problems(*one, 404, json_problem, {}, problem(404, "payment_not_found")) == []
    assert check.problems(*one, 404, json_problem, {}, problem(404, "matter_not_found"))
    assert check.problems(*one, 418, json_problem, {}, problem(418, "teapot"))
    assert check.problems(*one, 404, "text/plain", {}, b"not found")
    # a 429 without its Retry-After; a payment without its fields
    assert check.problems(*one, 429, json_problem, {}, problem(429, "rate_limited"))
    assert check.problems(*one, 200, "application/json", {}, b'{"id": "pay_1"}')
