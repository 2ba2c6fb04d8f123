"""Bad statements: a clear error naming the line and the problem, nothing half-imported
(one transaction, even past the first batches), nothing stored twice."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ledger.reconciliation.imports import BATCH
from tests.factories import auth, make_key
from tests.integration import test_reconciliation_support as fx
from tests.integration.test_reconciliation_imports import counts, records, save_profile, upload

OPENAPI_CONFORMANCE = True


def long_month(n: int) -> list[fx.BankLine]:
    """More lines than several insert batches, so a late bad line comes after writes."""
    base = fx.month_of_lines()
    return [replace(base[i % len(base)], ref=f"HZL{i:07d}") for i in range(n)]


@pytest.fixture
async def finance(app_client: Any) -> str:
    key = await make_key("finance")
    await save_profile(app_client, key, fx.GBK_PROFILE)
    await save_profile(app_client, key, fx.SIGNED_PROFILE)
    return key


def refused(answer: Any, code: str) -> dict[str, Any]:
    assert answer.status_code == 422, answer.text
    problem = dict(answer.json())
    assert problem["code"] == code, problem
    assert "nothing was imported" in problem["detail"]
    return problem


async def test_missing_columns_are_named(app_client: Any, finance: str) -> None:
    content = fx.gbk_csv(fx.month_of_lines()).decode("gbk").replace(",贷方发生额", "", 1)
    answer = await upload(
        app_client, finance, "bank_csv", "x.csv", content.encode("gbk"), profile="icbc-hangzhou"
    )
    problem = refused(answer, "import_missing_columns")
    assert problem["errors"] == [{"field": "line 3", "message": "missing column(s): 贷方发生额"}]
    assert await counts() == (0, 0)


async def test_a_file_in_another_encoding_than_the_profile_says(
    app_client: Any, finance: str
) -> None:
    lines = fx.month_of_lines()
    utf8_profile = {**fx.GBK_PROFILE, "name": "icbc-utf8", "encoding": "utf-8"}
    await save_profile(app_client, finance, utf8_profile)
    answer = await upload(
        app_client, finance, "bank_csv", "x.csv", fx.gbk_csv(lines), profile="icbc-utf8"
    )
    problem = refused(answer, "import_wrong_encoding")
    assert problem["errors"][0]["field"] == "line 1"
    assert "not valid utf-8" in problem["detail"]
    assert await counts() == (0, 0)


async def test_one_line_in_another_encoding_deep_in_a_file_is_named_exactly(
    app_client: Any, finance: str
) -> None:
    rows = [
        (f"2026-11-{1 + n % 30:02d}", f"{1260 + n}.00", "CNY", "张三", f"机动车驾驶证 {n}", f"E{n}")
        for n in range(1500)
    ]
    content = fx.signed_csv(rows).split(b"\n")
    content[1200] = content[1200].replace("张三".encode(), "杭州市公安局".encode("gbk"))
    answer = await upload(
        app_client, finance, "bank_csv", "x.csv", b"\n".join(content), profile="boc-signed"
    )
    problem = refused(answer, "import_wrong_encoding")
    assert problem["errors"][0]["field"] == "line 1201"
    assert await counts() == (0, 0)


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("12,60.00", "'12,60.00' is not an amount"),
        ("12.345", "more than 2 decimal places for CNY"),
        ("一百", "'一百' is not an amount"),
        ("1e3", "'1e3' is not an amount"),
    ],
)
async def test_malformed_amounts_late_in_a_long_file_import_nothing(
    app_client: Any, finance: str, amount: str, message: str
) -> None:
    lines = long_month(3 * BATCH + 7)
    bad = fx.gbk_csv(lines).decode("gbk").splitlines()
    at = 3 + 2 * BATCH + 100  # a data line after two whole batches were written
    x = lines[at - 4]
    bad[at - 1] = f'{x.day:%Y/%m/%d},,{x.ref},{x.party},{x.memo},"","{amount}",CNY'
    answer = await upload(
        app_client,
        finance,
        "bank_csv",
        "x.csv",
        ("\r\n".join(bad) + "\r\n").encode("gbk"),
        profile="icbc-hangzhou",
    )
    problem = refused(answer, "import_bad_amount")
    assert problem["errors"][0]["field"] == f"line {at}"
    assert message in problem["errors"][0]["message"]
    assert await counts() == (0, 0)


async def test_duplicated_lines_are_refused_with_their_line_numbers(
    app_client: Any, finance: str
) -> None:
    lines = long_month(2 * BATCH)
    good = await upload(
        app_client, finance, "bank_csv", "good.csv", fx.gbk_csv(lines[:10]), profile="icbc-hangzhou"
    )
    assert good.status_code == 201, good.text
    twice = [*lines, lines[20], lines[BATCH + 3]]  # lines 24 and BATCH+7 again, at the end
    answer = await upload(
        app_client, finance, "bank_csv", "dup.csv", fx.gbk_csv(twice), profile="icbc-hangzhou"
    )
    problem = refused(answer, "import_duplicate_lines")
    end = 3 + len(lines)
    assert problem["errors"] == [
        {"field": f"line {end + 1}", "message": f"repeats line 24 ({lines[20].ref})"},
        {
            "field": f"line {end + 2}",
            "message": f"repeats line {BATCH + 7} ({lines[BATCH + 3].ref})",
        },
    ]
    assert await counts() == (1, 10)  # only the good import


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL stores a file a batch at a time: make batches a few lines long."""
    from ledger.reconciliation import imports

    monkeypatch.setattr(imports, "COPY_BATCH", 5)


async def test_repeats_in_later_batches_are_refused_and_nothing_is_kept(
    app_client: Any, finance: str, small_batches: None
) -> None:
    lines = long_month(60)
    good = await upload(
        app_client, finance, "bank_csv", "good.csv", fx.gbk_csv(lines[:10]), profile="icbc-hangzhou"
    )
    assert good.status_code == 201, good.text
    # line 10 (held by the earlier import) twice: skipped, not refused; lines 24 and 40
    # again in later batches; line 52 again right after itself (the same batch)
    twice = [*lines[:50], lines[6], lines[20], lines[48], lines[48], *lines[50:], lines[36]]
    answer = await upload(
        app_client, finance, "bank_csv", "dup.csv", fx.gbk_csv(twice), profile="icbc-hangzhou"
    )
    problem = refused(answer, "import_duplicate_lines")
    assert problem["errors"] == [
        {"field": "line 55", "message": f"repeats line 24 ({lines[20].ref})"},
        {"field": "line 56", "message": f"repeats line 52 ({lines[48].ref})"},
        {"field": "line 57", "message": f"repeats line 52 ({lines[48].ref})"},
        {"field": "line 68", "message": f"repeats line 40 ({lines[36].ref})"},
    ]
    assert problem["detail"].startswith("4 line(s) repeat an earlier line")
    assert await counts() == (1, 10)  # only the good import

    whole = await upload(
        app_client, finance, "bank_csv", "all.csv", fx.gbk_csv(lines), profile="icbc-hangzhou"
    )
    assert whole.json()["summary"] == "50 new, 10 already imported", whole.text
    assert [r.external_id for r in await records()] == [x.ref for x in lines]


async def test_a_first_repeat_after_stored_batches_is_found_and_nothing_is_kept(
    app_client: Any, finance: str, small_batches: None
) -> None:
    """A repeat, or an overlap with an earlier import, first met after batches were
    stored: found, counted once, and nothing kept of a refused file."""
    lines = long_month(60)
    late_repeat = [*lines[:45], lines[2], *lines[45:]]  # line 46 repeats line 6
    answer = await upload(
        app_client,
        finance,
        "bank_csv",
        "late.csv",
        fx.gbk_csv(late_repeat),
        profile="icbc-hangzhou",
    )
    problem = refused(answer, "import_duplicate_lines")
    assert problem["errors"] == [
        {"field": "line 49", "message": f"repeats line 6 ({lines[2].ref})"},
    ]
    assert await counts() == (0, 0)
    # a file overlapping an earlier import only after its first batches: those lines
    # skipped, the rest new, each counted once
    first = await upload(
        app_client, finance, "bank_csv", "a.csv", fx.gbk_csv(lines[40:]), profile="icbc-hangzhou"
    )
    assert first.json()["summary"] == "20 new, 0 already imported", first.text
    whole = await upload(
        app_client, finance, "bank_csv", "b.csv", fx.gbk_csv(lines), profile="icbc-hangzhou"
    )
    assert whole.json()["summary"] == "40 new, 20 already imported", whole.text
    assert sorted(r.external_id for r in await records()) == sorted(x.ref for x in lines)


async def test_a_line_in_another_currency_is_refused(app_client: Any, finance: str) -> None:
    rows = [
        ("2026-11-03", "1260.00", "CNY", "张三", "机动车驾驶证", "E2E-001"),
        ("2026-11-03", "180.00", "USD", "李四", "机动车驾驶证", "E2E-002"),
    ]
    answer = await upload(
        app_client,
        finance,
        "bank_csv",
        "x.csv",
        fx.signed_csv(rows),
        profile="boc-signed",
        currency="CNY",
    )
    problem = refused(answer, "import_wrong_currency")
    assert problem["errors"] == [
        {"field": "line 3", "message": "the line is in USD but the import is for CNY"}
    ]
    camt = await upload(
        app_client,
        finance,
        "camt053",
        "usd.xml",
        fx.camt053("08", fx.camt_entries(), currency="USD"),
        currency="CNY",
    )
    assert "USD" in refused(camt, "import_wrong_currency")["detail"]
    usd_row = '2026/11/30,2026/11/30,HZUSD0001,李四,护照,"","180.00",美元'
    gbk = await upload(
        app_client,
        finance,
        "bank_csv",
        "icbc.csv",
        fx.gbk_csv(fx.month_of_lines(), extra_rows=[usd_row]),
        profile="icbc-hangzhou",  # the profile says CNY
    )
    assert refused(gbk, "import_wrong_currency")["errors"] == [
        {
            "field": f"line {3 + len(fx.month_of_lines()) + 1}",
            "message": "the line is in USD but the import is for CNY",
        }
    ]
    stripe = fx.stripe_rows(3)
    stripe[2]["currency"] = "usd"
    report = await upload(
        app_client,
        finance,
        "stripe_payout_recon",
        "r.csv",
        fx.stripe_report(stripe),
        currency="CNY",
    )
    assert refused(report, "import_wrong_currency")["errors"][0]["field"] == "line 4"
    assert await counts() == (0, 0)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"date,amount\n2026-11-01,12.00\n", "not well-formed XML"),
        (
            b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:'
            b'pain.001.001.09"><CstmrCdtTrfInitn/></Document>',
            "not a camt.053 bank statement",
        ),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.052.001.08"/>',
            "not a camt.053 bank statement",
        ),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.04"/>',
            "camt.053.001.04 is not supported",
        ),
        (b"", "not well-formed XML"),
    ],
)
async def test_what_is_not_a_camt053_statement_is_refused(
    app_client: Any, finance: str, content: bytes, fragment: str
) -> None:
    answer = await upload(app_client, finance, "camt053", "stmt.xml", content)
    assert fragment in refused(answer, "import_not_camt053")["detail"]
    assert await counts() == (0, 0)


async def test_a_truncated_camt053_file_imports_nothing(app_client: Any, finance: str) -> None:
    whole = fx.camt053("02", fx.camt_entries())
    answer = await upload(app_client, finance, "camt053", "cut.xml", whole[: len(whole) - 200])
    problem = refused(answer, "import_not_camt053")
    assert problem["errors"][0]["field"].startswith("line ")
    assert await counts() == (0, 0)


async def test_a_batch_that_does_not_add_up_is_refused(app_client: Any, finance: str) -> None:
    entries = fx.camt_entries()
    ref, fen, day, txs = entries[-1]
    entries[-1] = (ref, fen + 1, day, txs)  # the entry is one fen more than its parts
    answer = await upload(app_client, finance, "camt053", "x.xml", fx.camt053("08", entries))
    assert "do not add up" in refused(answer, "import_bad_amount")["detail"]
    assert await records() == []


async def test_a_stripe_report_with_too_many_decimals_names_the_line(
    app_client: Any, finance: str
) -> None:
    rows = fx.stripe_rows(5)
    rows[3]["fee"] = "0.765"
    answer = await upload(
        app_client, finance, "stripe_payout_recon", "r.csv", fx.stripe_report(rows)
    )
    problem = refused(answer, "import_bad_amount")
    assert problem["errors"][0]["field"] == "line 5"
    assert "more than 2 decimal places" in problem["errors"][0]["message"]
    header_only = fx.STRIPE_HEADER.replace("gross,", "").encode() + b"\n"
    missing = await upload(app_client, finance, "stripe_payout_recon", "r.csv", header_only)
    assert refused(missing, "import_missing_columns")["errors"][0]["message"] == (
        "missing column(s): gross"
    )
    twice = fx.stripe_report(fx.stripe_rows(2)).replace(b"\n", b",fee\n", 1)
    named_twice = await upload(app_client, finance, "stripe_payout_recon", "r.csv", twice)
    assert refused(named_twice, "import_missing_columns")["errors"][0] == {
        "field": "line 1",
        "message": "column(s) named twice in the header: 'fee'",
    }
    assert await counts() == (0, 0)


async def test_requests_that_make_no_sense_are_refused_clearly(
    app_client: Any, finance: str
) -> None:
    csv = fx.signed_csv([("2026-11-03", "1.00", "CNY", "张三", "x", "")])
    unknown = await upload(app_client, finance, "paypal", "x.csv", csv)
    assert unknown.json()["code"] == "import_unknown_source"
    no_profile = await upload(app_client, finance, "bank_csv", "x.csv", csv)
    assert no_profile.json()["code"] == "import_profile_required"
    no_file = await app_client.post(
        "/api/v1/reconciliation/imports",
        files={"source": (None, "camt053")},
        headers=auth(finance),
    )
    assert no_file.json()["code"] == "import_file_required"
    not_multipart = await app_client.post(
        "/api/v1/reconciliation/imports", headers=auth(finance), data={"source": "camt053"}
    )
    assert not_multipart.status_code == 400, not_multipart.text
    assert await counts() == (0, 0)
