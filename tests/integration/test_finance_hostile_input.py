"""What finance staff type, at its worst: reversed or endless date ranges, departments
that do not exist, a period "2026-13", formats nobody renders, resolutions naming items
that are not there or belong to another department. Each is a problem+json 4xx naming
the field, never a 500 (issue 10 review)."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import service as ledger
from onetrip.db import unit_of_work
from onetrip.errors import NotFound, ValidationFailed
from tests.factories import auth, make_key

OPENAPI_CONFORMANCE = True

REPORT = "/api/v1/reports/settlement"
RUNS = "/api/v1/reconciliation/runs"
PERIODS = "/api/v1/ledger/periods"
NOVEMBER = {"department": "PSB", "date_from": "2026-11-01", "date_to": "2026-11-30"}


async def open_books() -> None:
    async with unit_of_work() as session:
        await ledger.open_department_accounts(session, "PSB", "市公安局")
        await ledger.open_department_accounts(session, "AMR", "市场监管局")


def assert_problem(answer: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    body = answer.json()
    assert body["status"] == status and body.get("code"), body
    if field is not None:
        fields = [e.get("field") for e in body.get("errors") or []]
        assert field in fields, body
    return body


REPORT_CASES = [
    # (query, status, field, code)
    (
        {"department": "PSB", "date_from": "2026-11-30", "date_to": "2026-11-01"},
        422,
        "date_to",
        "invalid_report_period",
    ),
    (
        {"department": "PSB", "date_from": "2020-01-01", "date_to": "2026-11-30"},
        422,
        "date_to",
        "invalid_report_period",
    ),
    (
        {"department": "PSB", "date_from": "2026-13-01", "date_to": "2026-13-30"},
        422,
        "date_from",
        "invalid_date",
    ),
    (
        {"department": "PSB", "date_from": "0001-01-01", "date_to": "0001-01-02"},
        422,
        "date_from",
        None,
    ),
    (
        {"department": "PSB", "date_from": "9999-12-30", "date_to": "9999-12-31"},
        422,
        "date_from",
        None,
    ),
    (
        {**NOVEMBER, "format": "docx"},
        422,
        "format",
        "invalid_format",
    ),
    (
        {**NOVEMBER, "format": "PDF"},
        422,
        "format",
        "invalid_format",
    ),
    (
        {"department": "NOPE", "date_from": "2026-11-01", "date_to": "2026-11-30"},
        404,
        "department",
        "department_not_found",
    ),
    (
        {
            "department": "PSB",
            "date_from": "2026-11-01",
            "date_to": "2026-11-30",
            "currency": "usd",
        },
        400,
        None,
        None,
    ),
    (
        {
            "department": "PSB",
            "date_from": "2026-11-01",
            "date_to": "2026-11-30",
            "currency": "USD",
        },
        422,
        "currency",
        None,
    ),
]


@pytest.mark.parametrize(("query", "status", "field", "code"), REPORT_CASES)
async def test_bad_settlement_report_queries_are_problems(
    app_client: Any, query: dict[str, str], status: int, field: str | None, code: str | None
) -> None:
    await open_books()
    finance = await make_key("finance")
    body = assert_problem(
        await app_client.get(REPORT, params=query, headers=auth(finance)), status, field
    )
    if code is not None:
        assert body["code"] == code, body


PERIOD_CASES = [
    ({"department": "PSB", "period": "2026-13"}, 422, "period"),
    ({"department": "PSB", "period": "2026-00"}, 422, "period"),
    ({"department": "PSB", "period": "2026-02-30"}, 422, "period"),
    ({"department": "PSB", "period": "0000-01"}, 422, "period"),
    ({"department": "PSB", "period": "26-11-1"}, 422, "period"),
    ({"department": "PSB", "period": "２０２６-１１"}, 422, "period"),
    ({"department": "PSB", "period": "0001-01"}, 422, "period"),
    ({"department": "PSB", "period": "9999-12"}, 422, "period"),
    ({"department": "PSB", "period": "9999-12-31"}, 422, "period"),
    ({"department": "PSB", "period": "2999-01"}, 422, "period"),  # period_not_ended
    ({"department": "NOPE", "period": "2026-10"}, 404, "department"),
]


@pytest.mark.parametrize(("body", "status", "field"), PERIOD_CASES)
async def test_bad_periods_are_problems(
    app_client: Any, body: dict[str, str], status: int, field: str
) -> None:
    await open_books()
    finance = await make_key("finance")
    assert_problem(await app_client.post(PERIODS, json=body, headers=auth(finance)), status, field)


async def test_listing_periods_of_an_unknown_department_is_404(app_client: Any) -> None:
    await open_books()
    finance = await make_key("finance")
    answer = await app_client.get(PERIODS, params={"department": "NOPE"}, headers=auth(finance))
    assert_problem(answer, 404, "department")


RUN_CASES = [
    ({"date_from": "2026-11-30", "date_to": "2026-11-01"}, 422, "date_from"),
    ({"date_from": "2020-01-01", "date_to": "2026-11-30"}, 422, "date_to"),
    ({"date_from": "2026-13-01", "date_to": "2026-11-30"}, 400, None),
    ({"date_from": "2026-11-01", "date_to": "2026-11-30", "department": "NOPE"}, 404, "department"),
    ({"date_from": "0001-01-01", "date_to": "0001-01-01"}, 422, None),
    ({"date_from": "9999-12-31", "date_to": "9999-12-31"}, 422, None),
]


@pytest.mark.parametrize(("body", "status", "field"), RUN_CASES)
async def test_bad_runs_are_problems(
    app_client: Any, body: dict[str, str], status: int, field: str | None
) -> None:
    await open_books()
    finance = await make_key("finance")
    assert_problem(await app_client.post(RUNS, json=body, headers=auth(finance)), status, field)


EXCEPTION_QUERIES = [
    ({"status": "closed"}, "status"),
    ({"reason": "lost"}, "reason"),
    ({"limit": "0"}, None),
    ({"cursor": "'; drop table"}, None),
]


@pytest.mark.parametrize(("query", "field"), EXCEPTION_QUERIES)
async def test_bad_exception_queries_are_problems(
    app_client: Any, query: dict[str, str], field: str | None
) -> None:
    await open_books()
    finance = await make_key("finance")
    answer = await app_client.get(
        "/api/v1/reconciliation/exceptions", params=query, headers=auth(finance)
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert_problem(answer, answer.status_code, field)


async def test_exceptions_of_an_unknown_department_is_404(app_client: Any) -> None:
    await open_books()
    finance = await make_key("finance")
    answer = await app_client.get(
        "/api/v1/reconciliation/exceptions", params={"department": "NOPE"}, headers=auth(finance)
    )
    assert_problem(answer, 404, "department")


# --- the service below the HTTP face (ledger/reconciliation/runs.py, not this review's) ---


async def test_the_run_service_refuses_dates_it_cannot_represent(db: Any) -> None:
    from datetime import date

    from ledger.reconciliation import runs

    await open_books()
    with pytest.raises(ValidationFailed):
        async with unit_of_work() as session:
            await runs.run(
                session, date_from=date(1, 1, 1), date_to=date(1, 1, 1), started_by="cli:test"
            )


async def test_the_run_service_names_the_unknown_department(db: Any) -> None:
    from datetime import date

    from ledger.reconciliation import runs

    await open_books()
    with pytest.raises(NotFound) as refused:
        async with unit_of_work() as session:
            await runs.run(
                session,
                date_from=date(2026, 11, 1),
                date_to=date(2026, 11, 30),
                department="NOPE",
                started_by="cli:test",
            )
    assert refused.value.errors and refused.value.errors[0]["field"] == "department"


# --- resolving with ids that are not there -------------------------------------------


async def test_resolving_with_items_that_are_not_there_names_match_with(app_client: Any) -> None:
    from tests import finance_fixtures as fx

    async with unit_of_work() as session:
        month = await fx.build_month(session)
        await fx.import_month(session, month)  # the statement with its three problems
    admin = await make_key("admin")
    psb = await make_key("finance", departments=["PSB"])
    run = await app_client.post(
        RUNS, json={"date_from": "2026-11-01", "date_to": "2026-11-30"}, headers=auth(admin)
    )
    assert run.status_code == 201, run.text
    queue = await app_client.get(
        "/api/v1/reconciliation/exceptions",
        params={"reason": "amount_differs"},
        headers=auth(admin),
    )
    [differs] = queue.json()["data"]
    resolve = f"/api/v1/reconciliation/exceptions/{differs['id']}/resolve"

    async def attempt(body: dict[str, Any], key: str = admin, n: list[int] = [0]) -> Any:  # noqa: B006
        n[0] += 1
        return await app_client.post(resolve, json=body, headers=auth(key, f"hostile-{n[0]}"))

    nowhere = await attempt({"action": "match", "reason": "对账", "match_with": ["txn_nope"]})
    assert assert_problem(nowhere, 422, "match_with")["code"] == "match_with_not_found"
    itself = await attempt(
        {"action": "match", "reason": "对账", "match_with": [differs["item_id"]]}
    )
    assert_problem(itself, 422, "match_with")
    twice = await attempt(
        {"action": "match", "reason": "对账", "match_with": [month.p1.id, month.p1.id]}
    )
    assert_problem(twice, 422, "match_with")
    empty = await attempt({"action": "match", "reason": "对账", "match_with": []})
    assert_problem(empty, 422, "match_with")
    many = await attempt(
        {"action": "match", "reason": "对账", "match_with": [f"txn_{n}" for n in range(21)]}
    )
    assert_problem(many, 400)
    unknown_action = await attempt({"action": "delete", "reason": "对账"})
    assert_problem(unknown_action, 400)
    # a platform-wide exception is not a department-bound key's to see, nor to resolve
    hidden = await attempt({"action": "accept", "reason": "银行少入账"}, key=psb)
    assert_problem(hidden, 404)
    still = await app_client.get(
        f"/api/v1/reconciliation/exceptions/{differs['id']}", headers=auth(admin)
    )
    assert still.json()["status"] == "open"
