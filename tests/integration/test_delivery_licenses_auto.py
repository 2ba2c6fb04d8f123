"""Auto-issue: a paid `auto_issue` matter gets its licence from the `payment.succeeded`
consumer, once, with a readable department-unique number (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import event, select

from delivery import licenses, signing
from delivery.jobs import auto_issue_license
from onetrip.db import get_database, unit_of_work
from onetrip.outbox import OutboxEvent, as_message
from tests.factories import auth
from tests.integration.test_delivery_licenses_support import RESIDENCE_PERMIT, issue
from tests.integration.test_payments_support import count_rows, paid_payment

pytest_plugins = ["tests.integration.test_payments_support"]
#: every response must be as the OpenAPI document says (tests/conftest.py)
OPENAPI_CONFORMANCE = True

AUTO_NUMBER = re.compile(r"^PSB-20\d\d-[0-9A-Z]{8}$")


@pytest.fixture
async def permit(app_client: Any, keys: dict[str, str]) -> None:
    response = await app_client.post(
        "/api/v1/admin/matters", json=RESIDENCE_PERMIT, headers=auth(keys["admin"])
    )
    assert response.status_code == 201, response.text


async def wait_for(predicate: Any, within: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def succeeded_event(payment_id: str) -> tuple[str, dict[str, Any]]:
    """The payment's `payment.succeeded` outbox event, as the relay sends it."""
    table = OutboxEvent.__table__
    async with get_database().session() as session:
        row = (
            await session.execute(
                select(table).where(
                    table.c.payment_id == payment_id, table.c.type == "payment.succeeded"
                )
            )
        ).one()
    return row.id, as_message(row)


async def deliver(event: tuple[str, dict[str, Any]]) -> None:
    """Hand the event to the consumer, as the worker does for each copy it receives."""
    await auto_issue_license.fn.__wrapped__(*event)  # type: ignore[attr-defined]


@pytest.mark.with_worker  # the relay and the consumer must run
async def test_a_paid_auto_issue_matter_gets_its_licence_and_its_document(app_client, keys, permit):
    payment = await paid_payment(
        app_client, keys["psb"], matter_code="residence-permit", delivery={"method": "pickup"}
    )

    async def listed() -> list[dict[str, Any]]:
        response = await app_client.get(
            "/api/v1/licenses", params={"payment_id": payment["id"]}, headers=auth(keys["psb"])
        )
        return response.json()["data"]  # type: ignore[no-any-return]

    [license] = await wait_for(listed)
    assert AUTO_NUMBER.match(license["license_no"]), license["license_no"]
    assert (license["title"], license["holder_name"]) == ("居住证", "张伟")
    assert license["fields"] == {"业务编号": payment["reference"]}
    assert license["delivery_method"] == "pickup" and license["department"] == "PSB"
    assert license["valid_from"] and license["valid_until"] is None
    assert "/verify/" in license["verify_url"]

    # the rendering job draws it: then the document is there
    async def rendered() -> Any:
        response = await app_client.get(
            f"/api/v1/licenses/{license['id']}/document.pdf", headers=auth(keys["psb"])
        )
        return response if response.status_code == 200 else None

    pdf = await wait_for(rendered)
    assert pdf.headers["content-type"].startswith("application/pdf")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert license["license_no"] in text and "张" in text


async def test_an_event_delivered_twice_issues_one_licence(app_client, keys, permit):
    payment = await paid_payment(app_client, keys["psb"], matter_code="residence-permit")
    assert await count_rows("licenses") == 0  # no worker in this test: nothing ran yet
    event = await succeeded_event(payment["id"])
    await deliver(event)
    await deliver(event)
    assert await count_rows("licenses", "payment_id = :p", p=payment["id"]) == 1
    assert await count_rows("outbox_events", "type = 'license.issued'") == 1
    # even without the consumption mark (another consumer name, a lost mark): one licence
    async with unit_of_work() as session:
        assert await licenses.auto_issue(session, payment["id"]) is None
    assert await count_rows("licenses") == 1


async def test_a_licence_the_department_issued_first_is_not_issued_again(app_client, keys, permit):
    payment = await paid_payment(app_client, keys["psb"], matter_code="residence-permit")
    manual = await issue(app_client, keys["psb"], payment["id"], title="居住证")
    assert manual.status_code == 201, manual.text
    await deliver(await succeeded_event(payment["id"]))
    assert await count_rows("licenses") == 1


async def test_matters_that_do_not_auto_issue_wait_for_their_department(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])  # the passport: issued by hand
    await deliver(await succeeded_event(payment["id"]))
    assert await count_rows("licenses") == 0


async def test_a_refunded_payment_gets_no_automatic_licence(app_client, keys, permit):
    payment = await paid_payment(app_client, keys["psb"], matter_code="residence-permit")
    refund = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 2000, "reason": "申请人撤回申请"},
        headers=auth(keys["psb"], "rf-auto-1"),
    )
    assert refund.status_code == 201, refund.text
    await deliver(await succeeded_event(payment["id"]))
    assert await count_rows("licenses") == 0


async def test_a_taken_number_makes_the_automatic_one_longer(app_client, keys, permit):
    payment = await paid_payment(app_client, keys["psb"], matter_code="residence-permit")
    other = await paid_payment(app_client, keys["psb"], reference="CRJ-2026-000999")
    async with unit_of_work() as session:
        today = await licenses.department_today(session, "PSB")
    numbers = licenses.auto_license_numbers("PSB", today.year, payment["id"])
    assert len(set(numbers)) == 3
    taken = await issue(app_client, keys["psb"], other["id"], license_no=numbers[0])
    assert taken.status_code == 201, taken.text

    await deliver(await succeeded_event(payment["id"]))
    response = await app_client.get(
        "/api/v1/licenses", params={"payment_id": payment["id"]}, headers=auth(keys["psb"])
    )
    [license] = response.json()["data"]
    assert license["license_no"] == numbers[1]


def test_automatic_numbers_are_readable_and_derived_from_the_payment() -> None:
    numbers = licenses.auto_license_numbers("PSB", 2026, "pay_01jexample0000000007kx3qf9m")
    assert numbers[0] == "PSB-2026-7KX3QF9M"
    assert numbers[1] == "PSB-2026-00007KX3QF9M"
    assert numbers[2] == "PSB-2026-01JEXAMPLE0000000007KX3QF9M"
    assert licenses.auto_license_numbers("PSB", 2026, "pay_01jexample0000000007kx3qf9m") == numbers


async def test_a_batch_of_paid_payments_is_issued_together_as_one_by_one(app_client, keys, permit):
    """The relay hands auto-issue a pass's `payment.succeeded` events together: they are
    issued in a few statements (licenses.auto_issue_many) with what each alone would get —
    a licence for each paid auto-issue payment, the longer number where the short one is
    taken — and none for a payment the department served first, a matter that does not
    auto-issue, a refunded payment or a second copy of an event."""
    payments = [
        await paid_payment(
            app_client, keys["psb"], matter_code="residence-permit", reference=f"JZZ-2026-{n:06d}"
        )
        for n in range(4)
    ]
    manual, refunded = payments[2], payments[3]
    passport = await paid_payment(app_client, keys["psb"], reference="CRJ-2026-000998")
    crowded = await paid_payment(
        app_client, keys["psb"], matter_code="residence-permit", reference="JZZ-2026-000900"
    )
    other = await paid_payment(app_client, keys["psb"], reference="CRJ-2026-000999")
    async with unit_of_work() as session:
        today = await licenses.department_today(session, "PSB")
    numbers = licenses.auto_license_numbers("PSB", today.year, crowded["id"])
    taken = await issue(app_client, keys["psb"], other["id"], license_no=numbers[0])
    assert taken.status_code == 201, taken.text
    assert (await issue(app_client, keys["psb"], manual["id"], title="居住证")).status_code == 201
    refund = await app_client.post(
        f"/api/v1/payments/{refunded['id']}/refunds",
        json={"amount": 2000, "reason": "申请人撤回申请"},
        headers=auth(keys["psb"], "rf-auto-batch"),
    )
    assert refund.status_code == 201, refund.text

    messages = [(await succeeded_event(p["id"]))[1] for p in [*payments, passport, crowded]]
    batch = [*messages, dict(messages[0], id=messages[0]["id"] + "-copy")]
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()[:3]))

    engine = get_database().engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        await auto_issue_license.fn.__wrapped__(events=batch)  # type: ignore[attr-defined]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # set-based: one lock of the payments, one licence insert, one event insert
    assert statements.count("INSERT INTO licenses") == 1, statements
    assert statements.count("INSERT INTO outbox_events") == 1, statements
    assert sum(s.startswith("SELECT payments") for s in statements) == 1, statements

    async def licences_of(payment_id: str) -> list[tuple[str, str, str]]:
        response = await app_client.get(
            "/api/v1/licenses", params={"payment_id": payment_id}, headers=auth(keys["psb"])
        )
        return [(x["license_no"], x["holder_name"], x["status"]) for x in response.json()["data"]]

    for payment in payments[:2]:
        [(number, holder, status)] = await licences_of(payment["id"])
        assert number == licenses.auto_license_numbers("PSB", today.year, payment["id"])[0]
        assert (holder, status) == ("张伟", "issued")
    [(number, _, _)] = await licences_of(crowded["id"])
    assert number == numbers[1]  # the short one was taken
    assert len(await licences_of(manual["id"])) == 1  # the department's own
    assert await licences_of(refunded["id"]) == []
    assert await licences_of(passport["id"]) == []
    assert await count_rows("outbox_events", "type = 'license.issued'") == 5  # 3 + 2 by hand
    # each issued licence carries a verify code that checks out
    for payment in [*payments[:2], crowded]:
        async with get_database().session() as session:
            row = await licenses.license_of_payment(session, payment["id"])
            assert row is not None and row.verify_code and row.signing_kid
            verified = await signing.check_code(session, row.verify_code)
            assert verified.license.id == row.id and verified.status == "valid"
