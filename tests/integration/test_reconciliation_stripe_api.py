"""Stripe balance transactions imported through the Stripe API (localstripe), every
page of them, each once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ledger.reconciliation import imports
from onetrip.db import unit_of_work
from onetrip.errors import GatewayError
from onetrip.settings import reset_settings
from tests import stripe_fixtures
from tests.factories import auth, make_key
from tests.integration.test_reconciliation_imports import records

OPENAPI_CONFORMANCE = True
localstripe = stripe_fixtures.localstripe


@pytest.fixture
def stripe_env(env: pytest.MonkeyPatch, localstripe: str, db: Any) -> Iterator[str]:
    env.setenv("STRIPE_API_KEY", stripe_fixtures.API_KEY)
    env.setenv("STRIPE_API_BASE", localstripe)
    reset_settings()
    assert httpx.delete(f"{localstripe}/_config/data").status_code == 200
    yield localstripe
    reset_settings()


def charge(sdk: Any, fen: int, payment_id: str) -> str:
    method = sdk.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {
                "number": stripe_fixtures.CARD_OK,
                "exp_month": 12,
                "exp_year": 2030,
                "cvc": "123",
            },
        }
    )
    intent = sdk.v1.payment_intents.create(
        params={
            "amount": fen,
            "currency": "cny",
            "payment_method_types": ["card"],
            "payment_method": method.id,
            "metadata": {"payment_id": payment_id, "department": "PSB"},
        }
    )
    return str(sdk.v1.payment_intents.confirm(intent.id).id)


async def pull(**kwargs: Any) -> imports.ImportSummary:
    async with unit_of_work() as session:
        return await imports.import_file(
            session,
            source="stripe_balance",
            file=None,
            file_name=None,
            imported_by="cli:test",
            **kwargs,
        )


async def test_every_page_of_balance_transactions_is_imported_once(stripe_env: str) -> None:
    sdk = stripe_fixtures.stripe_sdk(stripe_env)
    amounts = [12_600 + n for n in range(7)]
    for n, fen in enumerate(amounts):
        charge(sdk, fen, f"pay_{n}")
    first = await pull(stripe_page_size=3)  # three pages of 3, 3 and 1
    assert (first.lines, first.new_records, first.duplicates) == (7, 7, 0)
    assert first.totals["CNY"]["amount"] == sum(amounts)
    stored = await records()
    assert sorted(r.amount for r in stored) == amounts
    assert all(r.external_id.startswith("txn_") and r.source_id.startswith("ch_") for r in stored)
    assert {r.category for r in stored} == {"charge"}
    assert {r.namespace for r in stored} == {"stripe"}
    # our payment id, from the PaymentIntent's metadata (the source expanded)
    assert sorted((r.amount, r.payment_id) for r in stored) == [
        (fen, f"pay_{n}") for n, fen in enumerate(amounts)
    ]
    assert all(r.raw["source"] == r.source_id for r in stored)

    charge(sdk, 99_900, "pay_new")
    second = await pull(stripe_page_size=2, currency="CNY")
    assert (second.lines, second.new_records, second.duplicates) == (8, 1, 7)
    assert len(await records()) == 8


async def test_without_stripe_configured_the_pull_is_refused(
    env: pytest.MonkeyPatch, db: Any
) -> None:
    with pytest.raises(GatewayError) as refused:
        await pull()
    assert refused.value.code == "gateway_not_configured"
    assert await records() == []


async def test_the_api_pulls_from_stripe_when_no_file_is_sent(
    stripe_env: str, app_client: Any
) -> None:
    sdk = stripe_fixtures.stripe_sdk(stripe_env)
    charge(sdk, 12_600, "pay_api")
    admin = await make_key("admin")
    answer = await app_client.post(
        "/api/v1/reconciliation/imports",
        files={"source": (None, "stripe_balance")},
        headers=auth(admin),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["summary"] == "1 new, 0 already imported"
    assert answer.json()["sha256"] is None and answer.json()["namespace"] == "stripe"
    with_file = await app_client.post(
        "/api/v1/reconciliation/imports",
        data={"source": "stripe_balance"},
        files={"file": ("x.csv", b"a,b\n", "text/csv")},
        headers=auth(admin),
    )
    assert with_file.status_code == 422
    assert with_file.json()["code"] == "import_unexpected_file"
    assert len(await records()) == 1
