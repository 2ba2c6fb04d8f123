"""Timestamps in query parameters past the edge of the calendar are refused, never a 500.

Found by tests/e2e/test_schemathesis.py: `0001-01-01T01:16:00+04:05` is a valid RFC 3339
timestamp, but in UTC it falls before year 1, which Python's datetime cannot hold (and
`9999-12-31T23:00:00-05:00` after year 9999): converting it raised OverflowError. They
are refused as the other malformed timestamps are (a 422 validation problem).
"""

from __future__ import annotations

import pytest

from tests.factories import PASSPORT, auth
from tests.integration.test_payments_support import assert_problem

pytest_plugins = ["tests.integration.test_payments_support"]

OUT_OF_RANGE_IN_UTC = ["0001-01-01T01:16:00+04:05", "9999-12-31T23:00:00-05:00"]


@pytest.mark.parametrize("moment", OUT_OF_RANGE_IN_UTC)
@pytest.mark.parametrize("name", ["from", "to"])
async def test_a_payment_list_bound_outside_the_utc_calendar_is_a_validation_problem(
    app_client, keys, name, moment
):
    response = await app_client.get(
        "/api/v1/payments", params={name: moment}, headers=auth(keys["psb"])
    )
    assert_problem(response, 422, field=name)


@pytest.mark.parametrize("moment", OUT_OF_RANGE_IN_UTC)
async def test_a_trial_balance_as_of_outside_the_utc_calendar_is_a_validation_problem(
    app_client, keys, moment
):
    response = await app_client.get(
        "/api/v1/ledger/trial-balance", params={"as_of": moment}, headers=auth(keys["admin"])
    )
    assert_problem(response, 422, code="invalid_as_of", field="as_of")


async def test_bounds_at_the_edge_that_utc_can_hold_still_work(app_client, keys):
    response = await app_client.get(
        "/api/v1/payments",
        params={"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"},
        headers=auth(keys["psb"]),
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("moment", OUT_OF_RANGE_IN_UTC)
async def test_a_fee_effective_from_outside_the_utc_calendar_is_a_validation_problem(
    app_client, keys, moment
):
    matter = {**PASSPORT, "amount": 13000, "effective_from": moment}
    response = await app_client.post(
        "/api/v1/admin/matters", json=matter, headers=auth(keys["admin"])
    )
    assert_problem(response, 422, field="effective_from")


@pytest.mark.parametrize("moment", OUT_OF_RANGE_IN_UTC)
async def test_a_key_expiry_outside_the_utc_calendar_is_a_validation_problem(
    app_client, keys, moment
):
    """Found by the Schemathesis run: a far-future expiry crashed key creation (500)."""
    response = await app_client.post(
        "/api/v1/admin/keys",
        json={"role": "admin", "expires_at": moment},
        headers=auth(keys["admin"]),
    )
    assert_problem(response, 422, code="invalid_expiry", field="expires_at")
