"""The import's fast paths give exactly what the general paths give."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ledger.reconciliation import lines
from ledger.reconciliation.errors import ImportRefused
from ledger.reconciliation.imports import record_ids
from ledger.reconciliation.lines import _PLAIN, _plain_minor, parse_major
from onetrip.ids import is_id
from onetrip.money import Money


def _by_decimal(text: str, currency: str) -> int | None:
    if not _PLAIN.fullmatch(text):
        return None
    try:
        return Money.from_major(Decimal(text), currency).amount
    except ValueError:
        return None


@pytest.mark.parametrize("currency", ["CNY", "JPY", "KWD", "CLF", "cny", "XX"])
def test_plain_amounts_parse_as_the_decimal_path_does(currency):
    generator = random.Random(10)
    alphabet = "0123456789.+-١ e"
    for _ in range(20_000):
        text = "".join(generator.choice(alphabet) for _ in range(generator.randint(1, 9)))
        fast = _plain_minor(text, currency)
        # never a different answer, never a refusal of what the Decimal path accepts
        assert fast == _by_decimal(text, currency), text


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("-123.45", "CNY", -12345),
        ("+0.5", "CNY", 50),
        ("12.300", "CNY", 1230),
        ("7", "JPY", 7),
        ("7.00", "JPY", 7),
        ("1.234", "KWD", 1234),
        ("00012.3", "CNY", 1230),
    ],
)
def test_plain_amounts(text, currency, minor):
    assert parse_major(text, currency, 1, "gross") == minor


@pytest.mark.parametrize("text", ["12.345", "1.5e2", "12.", ".5", "--1", "1,00"])
def test_refusals_name_the_line_and_value(text):
    with pytest.raises(ImportRefused) as refused:
        parse_major(text, "CNY", 7, "fee")
    assert refused.value.errors[0]["field"] == "line 7"
    assert repr(text) in str(refused.value)


def test_bulk_record_ids_are_ids_and_unique():
    ids = list(itertools.islice(record_ids(), 250_000))
    assert all(is_id(value, "rec") for value in ids[::997] + ids[-5:])
    assert len(set(ids)) == len(ids)
    assert list(itertools.islice(record_ids(), 1)) != ids[:1]  # a fresh head each time


def test_a_seen_amount_is_the_same_amount_for_its_currency_only():
    lines._MINOR_SEEN.clear()
    assert parse_major("7.00", "JPY", 1, "gross") == 7
    assert parse_major("7.00", "CNY", 2, "gross") == 700  # not the JPY answer
    assert parse_major("7.00", "CNY", 3, "gross") == 700  # now from the seen texts
    assert lines._MINOR_SEEN[("7.00", "CNY")] == 700
    # other separators never read (nor fill) what plain texts stored
    assert parse_major("7,00", "CNY", 4, "gross", decimal_separator=",") == 700
    assert (
        parse_major("1.234,00", "CNY", 5, "x", decimal_separator=",", thousands_separator=".")
        == 123400
    )
    assert ("1.234,00", "CNY") not in lines._MINOR_SEEN
    with pytest.raises(ImportRefused):
        parse_major("7.00", "CNY", 6, "gross", decimal_separator=",")


def test_the_seen_amounts_stay_bounded():
    lines._MINOR_SEEN.clear()
    for cents in range(lines._MINOR_SEEN_SIZE + 10):
        text = f"{cents // 100}.{cents % 100:02d}"
        assert parse_major(text, "CNY", 1, "gross") == cents
    assert len(lines._MINOR_SEEN) <= lines._MINOR_SEEN_SIZE


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-03 08:15:02",
        "2026-11-03T08:15:02",
        " 2026-11-03 08:15:02 ",
        "2026-11-03 08:15:02+08:00",
        "2026-11-03 08:15+08",
        "2026-11-03",
    ],
)
def test_report_timestamps_read_as_the_general_path_does(text):
    general = datetime.fromisoformat(text.strip())
    general = general.replace(tzinfo=UTC) if general.tzinfo is None else general.astimezone(UTC)
    moment = lines.parse_timestamp(text, 1, "created")
    assert moment == general and moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["2026-11-03 25:15:02", "2026-13-03 08:15:02", "yesterday"])
def test_bad_report_timestamps_name_the_line(text):
    with pytest.raises(ImportRefused) as refused:
        lines.parse_timestamp(text, 9, "created_utc")
    assert refused.value.errors[0]["field"] == "line 9"
