"""The runs and exceptions API over HTTP: who may run what, the queue, resolving with an
Idempotency-Key, and every response as the OpenAPI document says."""

from __future__ import annotations

from typing import Any

from ledger import service as ledger
from onetrip.db import get_database, unit_of_work
from tests import finance_fixtures as fx
from tests.factories import auth, make_key

OPENAPI_CONFORMANCE = True

NOVEMBER = {"date_from": "2026-11-01", "date_to": "2026-11-30"}


async def month_imported() -> fx.FinanceMonth:
    async with unit_of_work() as session:
        month = await fx.build_month(session)
        await fx.import_month(session, month)
    return month


async def test_a_run_reports_its_counts_and_its_exceptions_are_queued(app_client: Any) -> None:
    month = await month_imported()
    finance = await make_key("finance")
    answer = await app_client.post(
        "/api/v1/reconciliation/runs", json=NOVEMBER, headers=auth(finance)
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["matched"] == len(month.payments) + len(month.refunds)
    assert (body["unmatched_ledger"], body["unmatched_external"], body["discrepancies"]) == (
        1,
        0,
        2,
    )
    assert body["status"] == "completed" and body["started_by"].startswith("key:")
    assert {rule["name"] for rule in body["rules"]} >= {"payment_id", "bank_amount"}

    run = await app_client.get(f"/api/v1/reconciliation/runs/{body['id']}", headers=auth(finance))
    assert run.json() == body
    found = await app_client.get(
        f"/api/v1/reconciliation/runs/{body['id']}/exceptions", headers=auth(finance)
    )
    assert sorted(e["reason"] for e in found.json()["data"]) == [
        "amount_differs",
        "duplicate",
        "missing_in_bank",
    ]
    queue = await app_client.get(
        "/api/v1/reconciliation/exceptions",
        params={"status": "open", "reason": "missing_in_bank"},
        headers=auth(finance),
    )
    [missing] = queue.json()["data"]
    assert missing["item_id"] == month.p2.id
    listed = await app_client.get("/api/v1/reconciliation/runs", headers=auth(finance))
    assert [r["id"] for r in listed.json()["data"]] == [body["id"]]


async def test_resolving_takes_an_idempotency_key_and_replays_the_same_answer(
    app_client: Any,
) -> None:
    month = await month_imported()
    finance = await make_key("finance")
    await app_client.post("/api/v1/reconciliation/runs", json=NOVEMBER, headers=auth(finance))
    queue = await app_client.get(
        "/api/v1/reconciliation/exceptions",
        params={"status": "open", "reason": "amount_differs"},
        headers=auth(finance),
    )
    [short] = queue.json()["data"]
    path = f"/api/v1/reconciliation/exceptions/{short['id']}/resolve"
    body = {"action": "adjust", "reason": "建设银行少入账 0.01 元，差额暂挂待查"}
    missing_key = await app_client.post(path, json=body, headers=auth(finance))
    assert missing_key.status_code == 400
    assert missing_key.json()["code"] == "idempotency_key_required"
    first = await app_client.post(path, json=body, headers=auth(finance, "resolve-p1-fen"))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "resolved" and first.json()["adjustment_id"]
    again = await app_client.post(path, json=body, headers=auth(finance, "resolve-p1-fen"))
    assert again.json() == first.json()
    other = await app_client.post(path, json=body, headers=auth(finance, "resolve-p1-fen-2"))
    assert other.status_code == 409 and other.json()["code"] == "exception_already_resolved"
    async with get_database().session() as session:
        suspense = await ledger.get_account_by_code(session, ledger.SUSPENSE)
    assert suspense.balance == 1
    one = await app_client.get(
        f"/api/v1/reconciliation/exceptions/{short['id']}", headers=auth(finance)
    )
    assert one.json()["resolution_reason"] == body["reason"]
    assert one.json()["resolved_by"] == first.json()["resolved_by"]
    assert month.p1.id in {c["id"] for c in one.json()["candidates"]}


async def test_a_department_finance_key_runs_and_sees_only_its_department(
    app_client: Any,
) -> None:
    month = await month_imported()
    psb = await make_key("finance", ["PSB"])
    everything = await app_client.post(
        "/api/v1/reconciliation/runs", json=NOVEMBER, headers=auth(psb)
    )
    assert everything.status_code == 403
    assert everything.json()["code"] == "department_not_allowed"
    other = await app_client.post(
        "/api/v1/reconciliation/runs", json={**NOVEMBER, "department": "NRB"}, headers=auth(psb)
    )
    assert other.status_code == 403
    mine = await app_client.post(
        "/api/v1/reconciliation/runs", json={**NOVEMBER, "department": "PSB"}, headers=auth(psb)
    )
    assert mine.status_code == 201, mine.text
    psb_items = [p for p in month.payments if p.department == "PSB"]
    psb_items += [r for r in month.refunds if r.department == "PSB"]  # type: ignore[misc]
    assert mine.json()["matched"] == len(psb_items)

    finance = await make_key("finance")
    platform = await app_client.post(
        "/api/v1/reconciliation/runs", json=NOVEMBER, headers=auth(finance)
    )
    hidden = await app_client.get(
        f"/api/v1/reconciliation/runs/{platform.json()['id']}", headers=auth(psb)
    )
    assert hidden.status_code == 404 and hidden.json()["code"] == "run_not_found"
    queue = await app_client.get(
        "/api/v1/reconciliation/exceptions", params={"status": "open"}, headers=auth(psb)
    )
    assert queue.json()["data"] == []  # the open ones are the bank's: platform-wide
    forbidden = await app_client.get(
        "/api/v1/reconciliation/exceptions", params={"department": "NRB"}, headers=auth(psb)
    )
    assert forbidden.status_code == 403


async def test_bad_runs_and_bad_resolutions_are_clear_problems(app_client: Any) -> None:
    finance = await make_key("finance")
    backwards = await app_client.post(
        "/api/v1/reconciliation/runs",
        json={"date_from": "2026-11-30", "date_to": "2026-11-01"},
        headers=auth(finance),
    )
    assert backwards.status_code == 422 and backwards.json()["code"] == "invalid_date_range"
    not_a_date = await app_client.post(
        "/api/v1/reconciliation/runs",
        json={"date_from": "2026-11-31", "date_to": "2026-11-30"},
        headers=auth(finance),
    )
    assert not_a_date.status_code in (400, 422)
    unknown = await app_client.post(
        "/api/v1/reconciliation/runs",
        json={**NOVEMBER, "department": "NOPE"},
        headers=auth(finance),
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "department_not_found"
    nothing = await app_client.post(
        "/api/v1/reconciliation/exceptions/recexc_01m8s7000000000000000000zz/resolve",
        json={"action": "accept", "reason": "无"},
        headers=auth(finance, "resolve-nothing"),
    )
    assert nothing.status_code == 404 and nothing.json()["code"] == "exception_not_found"
    bad_action = await app_client.post(
        "/api/v1/reconciliation/exceptions/recexc_01m8s7000000000000000000zz/resolve",
        json={"action": "delete", "reason": "无"},
        headers=auth(finance, "resolve-bad"),
    )
    assert bad_action.status_code in (400, 422)
    bad_reason = await app_client.get(
        "/api/v1/reconciliation/exceptions", params={"reason": "lost"}, headers=auth(finance)
    )
    assert bad_reason.status_code == 422 and bad_reason.json()["code"] == "invalid_reason"


async def test_a_department_key_cannot_match_its_item_with_another_department_s_record(
    app_client: Any,
) -> None:
    """A finance key of PSB resolves its own exception, but only with what it sees: a
    Stripe charge of another department (its metadata says so) is not its to pair, or
    that department's payment would be left without its record."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from ledger.models import external_records
    from payments.booking import book_payment

    month = await month_imported()
    async with unit_of_work() as session:  # a PSB payment Stripe never reported
        stray = fx._payment(999, fx.PASSPORT, datetime(2026, 11, 16, 2, 30, tzinfo=UTC))
        session.add(stray)
        await book_payment(session, stray)
    psb = await make_key("finance", ["PSB"])
    run = await app_client.post(
        "/api/v1/reconciliation/runs", json={**NOVEMBER, "department": "PSB"}, headers=auth(psb)
    )
    assert run.status_code == 201, run.text
    queue = await app_client.get(
        "/api/v1/reconciliation/exceptions", params={"status": "open"}, headers=auth(psb)
    )
    [mine] = [e for e in queue.json()["data"] if e["department"] == "PSB"]
    nrb_payment = next(p for p in month.payments if p.department == "NRB")
    async with get_database().session() as session:
        nrb_record = await session.scalar(
            select(external_records.c.id).where(external_records.c.payment_id == nrb_payment.id)
        )
    assert nrb_record is not None

    answer = await app_client.post(
        f"/api/v1/reconciliation/exceptions/{mine['id']}/resolve",
        json={"action": "match", "reason": "对账", "match_with": [nrb_record]},
        headers=auth(psb, "cross-department"),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "match_with_not_found"
    still = await app_client.get(
        f"/api/v1/reconciliation/exceptions/{mine['id']}", headers=auth(psb)
    )
    assert still.json()["status"] == "open"
