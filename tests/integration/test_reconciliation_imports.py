"""Importing Stripe's and the bank's records through the API: every line stored once,
re-importing changes nothing, and who imported what is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from ledger.models import ExternalRecord, ReconciliationImport
from onetrip.db import get_database
from tests.factories import auth, make_key
from tests.integration import test_reconciliation_support as fx

OPENAPI_CONFORMANCE = True  # every response as the OpenAPI document says


async def records(**where: Any) -> list[ExternalRecord]:
    async with get_database().session() as session:
        stmt = select(ExternalRecord).order_by(ExternalRecord.line_no)
        for name, value in where.items():
            stmt = stmt.where(getattr(ExternalRecord, name) == value)
        return list((await session.scalars(stmt)).all())


async def counts() -> tuple[int, int]:
    async with get_database().session() as session:
        imports = await session.scalar(select(func.count()).select_from(ReconciliationImport))
        lines = await session.scalar(select(func.count()).select_from(ExternalRecord))
    return int(imports or 0), int(lines or 0)


async def upload(
    client: Any, key: str, source: str, name: str | None, content: bytes | None, **form: str
) -> Any:
    files = {"file": (name, content, "application/octet-stream")} if content is not None else None
    return await client.post(
        "/api/v1/reconciliation/imports",
        data={"source": source, **form},
        files=files,
        headers=auth(key),
    )


async def save_profile(client: Any, key: str, profile: dict[str, Any]) -> None:
    answer = await client.post("/api/v1/reconciliation/profiles", json=profile, headers=auth(key))
    assert answer.status_code == 201, answer.text


async def test_a_month_of_gbk_bank_lines_is_imported_once_and_again_changes_nothing(
    app_client: Any,
) -> None:
    finance = await make_key("finance")
    await save_profile(app_client, finance, fx.GBK_PROFILE)
    lines = fx.month_of_lines()
    content = fx.gbk_csv(lines)

    first = await upload(
        app_client, finance, "bank_csv", "工商银行-2026-11.csv", content, profile="icbc-hangzhou"
    )
    assert first.status_code == 201, first.text
    summary = first.json()
    assert (summary["lines"], summary["new_records"], summary["duplicates"]) == (
        len(lines),
        len(lines),
        0,
    )
    assert summary["summary"] == f"{len(lines)} new, 0 already imported"
    assert summary["namespace"] == "bank:ICBC"
    total = sum(x.fen for x in lines)
    assert summary["totals"] == {
        "CNY": {"lines": len(lines), "amount": total, "new_lines": len(lines), "new_amount": total}
    }
    stored = await records()
    assert [(r.external_id, r.amount, r.counterparty, r.booked_on) for r in stored] == [
        (x.ref, x.fen, x.party, x.day) for x in lines
    ]
    # physical line numbers: two preamble lines and the header come first
    assert stored[0].line_no == 4 and stored[0].raw["对方户名"] == "杭州市公安局"
    assert stored[1].amount < 0 and stored[1].reference == "手续费"

    again = await upload(
        app_client, finance, "bank_csv", "copy.csv", content, profile="icbc-hangzhou"
    )
    assert again.status_code == 201, again.text
    assert again.json()["summary"] == f"0 new, {len(lines)} already imported"
    assert again.json()["sha256"] == summary["sha256"]
    assert await counts() == (2, len(lines))

    # a later statement overlapping the first: only the new lines are stored
    more = fx.BankLine("HZ202612010001", fx.MONTH[-1], 88_800, "李四", "居住证")
    third = await upload(
        app_client,
        finance,
        "bank_csv",
        "overlap.csv",
        fx.gbk_csv([*lines[-3:], more]),
        profile="icbc-hangzhou",
    )
    assert third.json()["summary"] == "1 new, 3 already imported"
    assert await counts() == (3, len(lines) + 1)


async def test_lines_without_a_bank_reference_get_a_stable_id(app_client: Any) -> None:
    finance = await make_key("finance")
    await save_profile(app_client, finance, fx.SIGNED_PROFILE)
    rows = [
        ("2026-11-03", "1260.00", "CNY", "张三", "机动车驾驶证", "E2E-001"),
        ("2026-11-03", "1260.00", "CNY", "李四", "机动车驾驶证", "NOTPROVIDED"),
        ("2026-11-04", "-15.30", "CNY", "中国银行", "手续费", ""),
    ]
    answer = await upload(
        app_client,
        finance,
        "bank_csv",
        "boc.csv",
        fx.signed_csv(rows),
        profile="boc-signed",
        currency="CNY",
    )
    assert answer.status_code == 201, answer.text
    stored = await records()
    assert [r.amount for r in stored] == [126_000, 126_000, -1_530]
    assert [r.end_to_end_id for r in stored] == ["E2E-001", None, None]
    assert all(r.external_id.startswith("sha256:") for r in stored)
    assert len({r.external_id for r in stored}) == 3
    again = await upload(
        app_client, finance, "bank_csv", "boc.csv", fx.signed_csv(rows), profile="boc-signed"
    )
    assert again.json()["summary"] == "0 new, 3 already imported"


@pytest.mark.parametrize("version", ["02", "08"])
async def test_camt053_batch_entries_are_split_into_their_transactions(
    app_client: Any, version: str
) -> None:
    admin = await make_key("admin")
    entries = fx.camt_entries()
    answer = await upload(
        app_client,
        admin,
        "camt053",
        f"stmt.{version}.xml",
        fx.camt053(version, entries),
        currency="CNY",
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["new_records"] == 8
    assert answer.json()["totals"]["CNY"]["amount"] == sum(e[1] for e in entries)
    stored = await records()
    batch = [r for r in stored if r.raw["entry_ref"] == "NTRYBATCH"]
    assert [(r.amount, r.counterparty, r.end_to_end_id) for r in batch] == [
        (20_000, "张三", "E2E-NRB-001"),
        (30_050, "李四", "E2E-NRB-002"),
        (45_001, "杭州市公安局", "E2E-NRB-003"),
    ]
    assert [r.external_id for r in batch] == [
        "1202020409900012345:TXB001",
        "1202020409900012345:TXB002",
        "1202020409900012345:TXB003",
    ]
    assert {r.booked_on.isoformat() for r in batch} == {"2026-11-07"}
    assert len({r.line_no for r in stored}) == 8  # each names where it is in the file
    again = await upload(app_client, admin, "camt053", "again.xml", fx.camt053(version, entries))
    assert again.json()["summary"] == "0 new, 8 already imported"


async def test_the_stripe_payout_report_converts_major_units_exactly(app_client: Any) -> None:
    finance = await make_key("finance")
    rows = fx.stripe_rows(40)
    answer = await upload(
        app_client,
        finance,
        "stripe_payout_recon",
        "payout_reconciliation.itemized.5.csv",
        fx.stripe_report(rows),
    )
    assert answer.status_code == 201, answer.text
    stored = await records()
    assert len(stored) == 40
    first = stored[0]
    assert (first.external_id, first.amount, first.fee, first.net, first.currency) == (
        "txn_3QhzA00000",
        12_600,
        76,
        12_524,
        "CNY",
    )
    assert first.payment_id == "pay_01jf3k2m9q8w7e6r5t4y000000"
    assert first.payout_id == "po_1QhzNov30" and first.category == "charge"
    assert first.source_id == "ch_3QhzA00000"
    assert sum(r.net for r in stored if r.net is not None) == sum(
        12_600 + n * 100 - (76 + n) for n in range(40)
    )


async def test_only_keys_that_see_every_department_may_import(app_client: Any) -> None:
    bound = await make_key("finance", ["PSB"])
    department = await make_key("department", ["PSB"])
    content = fx.stripe_report(fx.stripe_rows(2))
    refused = await upload(app_client, bound, "stripe_payout_recon", "r.csv", content)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "import_needs_all_departments"
    assert (
        await upload(app_client, department, "stripe_payout_recon", "r.csv", content)
    ).status_code == 403
    listing = await app_client.get("/api/v1/reconciliation/imports", headers=auth(bound))
    assert listing.status_code == 403
    assert await counts() == (0, 0)


async def test_imports_are_listed_and_say_who_imported_them(app_client: Any) -> None:
    finance = await make_key("finance")
    admin = await make_key("admin")
    first = await upload(
        app_client, finance, "stripe_payout_recon", "a.csv", fx.stripe_report(fx.stripe_rows(2))
    )
    second = await upload(
        app_client, admin, "camt053", "b.xml", fx.camt053("08", fx.camt_entries()[:1])
    )
    assert first.status_code == second.status_code == 201
    page = await app_client.get(
        "/api/v1/reconciliation/imports", params={"limit": 1}, headers=auth(finance)
    )
    assert page.status_code == 200, page.text
    assert [i["id"] for i in page.json()["data"]] == [second.json()["id"]]
    rest = await app_client.get(
        "/api/v1/reconciliation/imports",
        params={"cursor": page.json()["next_cursor"]},
        headers=auth(finance),
    )
    assert [i["id"] for i in rest.json()["data"]] == [first.json()["id"]]
    one = await app_client.get(
        f"/api/v1/reconciliation/imports/{first.json()['id']}", headers=auth(admin)
    )
    assert one.status_code == 200
    assert one.json()["imported_by"].startswith("key:")
    assert one.json()["imported_by"] != second.json()["imported_by"]
    assert one.json()["file_name"] == "a.csv"
    missing = await app_client.get("/api/v1/reconciliation/imports/imp_nope", headers=auth(admin))
    assert missing.status_code == 404 and missing.json()["code"] == "import_not_found"


async def test_profiles_are_saved_listed_and_checked(app_client: Any) -> None:
    finance = await make_key("finance")
    await save_profile(app_client, finance, fx.GBK_PROFILE)
    twice = await app_client.post(
        "/api/v1/reconciliation/profiles", json=fx.GBK_PROFILE, headers=auth(finance)
    )
    assert twice.status_code == 409 and twice.json()["code"] == "profile_exists"
    broken = {**fx.SIGNED_PROFILE, "name": "broken", "sign_convention": "debit_credit"}
    refused = await app_client.post(
        "/api/v1/reconciliation/profiles", json=broken, headers=auth(finance)
    )
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_profile"
    listing = await app_client.get("/api/v1/reconciliation/profiles", headers=auth(finance))
    assert [p["name"] for p in listing.json()["data"]] == ["icbc-hangzhou"]
    assert listing.json()["data"][0]["columns"]["counterparty"] == "对方户名"
    unknown = await upload(app_client, finance, "bank_csv", "x.csv", b"a,b\n", profile="nope")
    assert unknown.status_code == 404 and unknown.json()["code"] == "profile_not_found"
