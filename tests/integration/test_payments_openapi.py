"""The served OpenAPI document describes every endpoint of the contract (API.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

CATALOGUE = [
    ("post", "/api/v1/admin/departments"),
    ("post", "/api/v1/admin/matters"),
    ("post", "/api/v1/admin/courier-partners"),
    ("get", "/api/v1/departments"),
    ("get", "/api/v1/matters"),
    ("get", "/api/v1/matters/{code}"),
]
PAYMENTS = [
    ("post", "/api/v1/payments"),
    ("get", "/api/v1/payments"),
    ("get", "/api/v1/payments/{payment_id}"),
    ("post", "/api/v1/payments/{payment_id}/cancel"),
    ("post", "/api/v1/payments/{payment_id}/refunds"),
    ("get", "/api/v1/payments/{payment_id}/events"),
    ("get", "/api/v1/payments/{payment_id}/receipt.pdf"),
    ("post", "/webhooks/stripe"),
]
LEDGER = [
    ("get", "/api/v1/ledger/accounts"),
    ("get", "/api/v1/ledger/accounts/{account_id}"),
    ("get", "/api/v1/ledger/accounts/{account_id}/entries"),
    ("get", "/api/v1/ledger/transactions/{transaction_id}"),
    ("get", "/api/v1/ledger/trial-balance"),
]
OPERATIONS = [("get", "/health/live"), ("get", "/health/ready"), ("get", "/metrics")]


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document, fetched once: it does not depend on the database's dialect."""
    from litestar.testing import TestClient

    from onetrip.app import create_app
    from onetrip.db import set_database
    from onetrip.settings import async_database_url, get_settings

    url = async_database_url(f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'onetrip.db'}")
    settings = dataclasses.replace(get_settings(), database_url=url)
    try:
        with TestClient(app=create_app(settings, embedded_worker=False)) as client:
            response = client.get("/schema/openapi.json")
    finally:
        set_database(None)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


@pytest.mark.parametrize(
    ("method", "path"),
    CATALOGUE + PAYMENTS + LEDGER + OPERATIONS,
    ids=lambda v: v if v.startswith("/") else None,
)
async def test_openapi_describes_the_endpoint(openapi, method, path):
    assert path in openapi["paths"], sorted(openapi["paths"])
    assert method in openapi["paths"][path]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/payments",
        "/api/v1/payments/{payment_id}/cancel",
        "/api/v1/payments/{payment_id}/refunds",
        "/api/v1/payments/{payment_id}/counter",
    ],
)
async def test_money_moving_posts_document_the_idempotency_key_header(openapi, path):
    parameters = openapi["paths"][path]["post"].get("parameters", [])
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= next(
        p for p in parameters if p["name"] == "Idempotency-Key"
    ).items()


async def test_payment_list_documents_its_filters_under_their_public_names(openapi):
    names = {p["name"] for p in openapi["paths"]["/api/v1/payments"]["get"]["parameters"]}
    assert {"status", "reference", "from", "to", "limit", "cursor"} <= names


async def test_openapi_declares_bearer_api_keys(openapi):
    schemes = openapi["components"]["securitySchemes"]
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer" for s in schemes.values())
