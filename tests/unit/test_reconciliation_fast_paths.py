"""The import's fast paths give exactly what the general paths give."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest

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
