"""The spine, in-process: catalogue → payment → sandbox page → succeeded → ledger."""

from __future__ import annotations

import asyncio

import pytest

from tests.factories import auth, make_key, payment_body, seed_catalogue


@pytest.fixture
async def keys(app_client):  # type: ignore[no-untyped-def]
    admin = await make_key("admin")
    await seed_catalogue(app_client, admin)
    return {
        "admin": admin,
        "psb": await make_key("department", ["PSB"]),
        "nrb": await make_key("department", ["NRB"]),
        "finance": await make_key("finance"),
    }


async def wait_for(predicate, within: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.mark.with_worker  # the receipt job must run
async def test_sandbox_payment_succeeds_and_books_the_fee(app_client, keys):  # type: ignore[no-untyped-def]
    created = await app_client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(keys["psb"], "k-1")
    )
    assert created.status_code == 201, created.text
    payment = created.json()
    assert payment["status"] == "created"
    assert payment["amount"] == 12000 and payment["currency"] == "CNY"
    token = payment["payment_url"].rsplit("/", 1)[1]

    page = await app_client.get(f"/pay/{token}")
    assert page.status_code == 200
    assert "4242424242424242" in page.text

    paid = await app_client.post(
        f"/pay/{token}/sandbox", data={"card_number": "4242 4242 4242 4242"}, follow_redirects=False
    )
    assert paid.status_code == 303, paid.text

    current = (
        await app_client.get(f"/api/v1/payments/{payment['id']}", headers=auth(keys["psb"]))
    ).json()
    assert current["status"] == "succeeded"

    events = (
        await app_client.get(f"/api/v1/payments/{payment['id']}/events", headers=auth(keys["psb"]))
    ).json()
    assert [e["type"] for e in events["data"]] == [
        "payment.created",
        "payment.started",
        "payment.succeeded",
    ]

    balance = (
        await app_client.get("/api/v1/ledger/trial-balance", headers=auth(keys["finance"]))
    ).json()
    assert balance["total_debits"] == balance["total_credits"] == 12000

    async def receipt_rendered():  # the job, not the endpoint, renders it
        from onetrip.db import get_database
        from payments.models import Receipt

        async with get_database().session() as session:
            return await session.get(Receipt, payment["id"])

    await wait_for(receipt_rendered)
    pdf = await app_client.get(
        f"/api/v1/payments/{payment['id']}/receipt.pdf", headers=auth(keys["psb"])
    )
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


async def test_the_pay_page_escapes_what_the_department_sent(app_client, keys):  # type: ignore[no-untyped-def]
    body = payment_body(reference="<b>CRJ</b>", applicant={"name": "<script>alert(1)</script>"})
    created = await app_client.post("/api/v1/payments", json=body, headers=auth(keys["psb"], "x-1"))
    assert created.status_code == 201, created.text
    token = created.json()["payment_url"].rsplit("/", 1)[1]
    page = (await app_client.get(f"/pay/{token}")).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;CRJ&lt;/b&gt;" in page


async def test_a_double_submitted_sandbox_form_redirects_both_times(app_client, keys):  # type: ignore[no-untyped-def]
    created = await app_client.post(
        "/api/v1/payments", json=payment_body(), headers=auth(keys["psb"], "double-1")
    )
    token = created.json()["payment_url"].rsplit("/", 1)[1]
    await app_client.get(f"/pay/{token}")
    answers = await asyncio.gather(
        *(
            app_client.post(
                f"/pay/{token}/sandbox", data={"card_number": card}, follow_redirects=False
            )
            for card in ("4242424242424242", "4000000000000002") * 3
        )
    )
    assert [a.status_code for a in answers] == [303] * 6, [a.text for a in answers]
    final = await app_client.get(
        f"/api/v1/payments/{created.json()['id']}", headers=auth(keys["psb"])
    )
    assert final.json()["status"] in ("succeeded", "failed")
