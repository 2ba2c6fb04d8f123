"""Money: arithmetic in one currency, exact major units, formatting and the capital form."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onetrip.money import (
    BPS_WHOLE,
    CurrencyMismatchError,
    Money,
    amount_in_chinese_words,
    chinese_capital,
    currency_exponent,
    format_amount,
)

# --- amount in words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "words"),
    [
        (0, "零元整"),
        (1, "壹分"),
        (10, "壹角整"),
        (11, "壹角壹分"),
        (100, "壹元整"),
        (1000, "壹拾元整"),
        (10005, "壹佰元零伍分"),
        (1000500, "壹万零伍元整"),
        (12345678, "壹拾贰万叁仟肆佰伍拾陆元柒角捌分"),
        (123450, "壹仟贰佰叁拾肆元伍角整"),
        # The People's Bank's own examples for writing amounts on bills.
        (140950, "壹仟肆佰零玖元伍角整"),
        (600714, "陆仟零柒元壹角肆分"),
        (1640902, "壹万陆仟肆佰零玖元零贰分"),
        (32504, "叁佰贰拾伍元零肆分"),
        (168032, "壹仟陆佰捌拾元叁角贰分"),
        (10700053, "壹拾万柒仟元伍角叁分"),
        (2000001, "贰万元零壹分"),
        (10_000_000_000, "壹亿元整"),
        (10_001_000_000, "壹亿零壹万元整"),
        (11_000_000_000, "壹亿壹仟万元整"),
        (10_000_000_100, "壹亿零壹元整"),
        (100_000_000_000_000, "壹万亿元整"),
    ],
)
def test_amount_in_chinese_words(fen, words):
    assert amount_in_chinese_words(fen) == words


def test_negative_amounts_have_no_words():
    with pytest.raises(ValueError):
        amount_in_chinese_words(-1)


@pytest.mark.parametrize("fen", [1.5, True, "100"])
def test_amount_in_words_takes_only_integer_fen(fen):
    with pytest.raises(TypeError):
        amount_in_chinese_words(fen)


_DIGIT_VALUES = {d: i for i, d in enumerate("零壹贰叁肆伍陆柒捌玖")}


def _read_integer(words: str) -> int:
    """Read capital numerals back (inverse of the converter, for the property test)."""
    if "亿" in words:
        high, low = words.rsplit("亿", 1)
        return _read_integer(high) * 10**8 + _read_integer(low)
    if "万" in words:
        high, low = words.split("万", 1)
        return _read_integer(high) * 10**4 + _read_integer(low)
    total, digit = 0, 0
    for char in words:
        if char in _DIGIT_VALUES:
            digit = _DIGIT_VALUES[char]
        else:
            total += digit * {"拾": 10, "佰": 100, "仟": 1000}[char]
            digit = 0
    return total + digit


def _read_words(words: str) -> int:
    match = re.fullmatch(r"(?:(.+)元)?(?:零?(.)角)?(?:零?(.)分)?整?", words)
    assert match, words
    yuan, jiao, fen = match.groups()
    value = _read_integer(yuan) if yuan and yuan != "零" else 0
    return value * 100 + _DIGIT_VALUES.get(jiao, 0) * 10 + _DIGIT_VALUES.get(fen, 0)


@given(st.integers(min_value=0, max_value=10**15))
def test_amount_in_words_reads_back_to_the_same_amount(fen):
    words = amount_in_chinese_words(fen)
    assert _read_words(words) == fen
    assert "零零" not in words
    assert not re.search(r"零[元万亿角]", words) or words == "零元整"
    assert words.endswith(("整", "分"))
    assert not re.search(r"(?<![壹贰叁肆伍陆柒捌玖])[拾佰仟]", words)


# --- money formatting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123450, "CNY", "¥1,234.50"),
        (5, "CNY", "¥0.05"),
        (0, "CNY", "¥0.00"),
        (123456789012, "CNY", "¥1,234,567,890.12"),
        (-3450, "CNY", "-¥34.50"),
        (1250, "EUR", "EUR 12.50"),
        (1500, "JPY", "JPY 1,500"),
    ],
)
def test_format_amount_is_exact(minor, currency, text):
    assert format_amount(Money(minor, currency)) == text


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "text"),
    [
        (12000, "CNY", "zh-CN", "¥120.00"),
        (12000, "CNY", "en", "CNY 120.00"),
        (-250, "CNY", "zh-CN", "-¥2.50"),  # the sign before the symbol, not "¥-2.50"
        (-250, "CNY", "en", "-CNY 2.50"),
        (-150, "CNY", "zh-CN", "-¥1.50"),
        (1000, "JPY", "zh-CN", "JPY 1,000"),  # not "JPY 10.00": the yen has no minor unit
        (1000, "JPY", "en", "¥1,000"),  # ¥ reads as the yen to an English reader
        (-1234567, "JPY", "en", "-¥1,234,567"),
        (1234567, "KWD", "zh-CN", "KWD 1,234.567"),
        (5, "BHD", "en", "BHD 0.005"),
        (99, "EUR", "en", "EUR 0.99"),
        (100000000, "CNY", "zh-CN", "¥1,000,000.00"),
        (7, "XYZ", "zh-CN", "XYZ 0.07"),  # an unknown valid code has two places
    ],
)
def test_format_amount_by_locale(minor, currency, locale, text):
    assert format_amount(Money(minor, currency), locale) == text


def test_format_amount_defaults_to_chinese_and_refuses_other_locales():
    assert format_amount(Money(12000, "CNY")) == "¥120.00"
    with pytest.raises(ValueError, match="locale"):
        format_amount(Money(12000, "CNY"), "fr")


# --- the capital form ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (12000, "人民币壹佰贰拾元整"),
        (1234, "人民币壹拾贰元叁角肆分"),
        (1000500, "人民币壹万零伍元整"),
        (102050, "人民币壹仟零贰拾元伍角整"),
        (50, "人民币伍角整"),
        (5, "人民币伍分"),
        (0, "人民币零元整"),
        (-250, "人民币负贰元伍角整"),
        (-12000, "人民币负壹佰贰拾元整"),
        (123456789012, "人民币壹拾贰亿叁仟肆佰伍拾陆万柒仟捌佰玖拾元壹角贰分"),
        (1_000_000_000, "人民币壹仟万元整"),
        (30000000000, "人民币叁亿元整"),
        (100_0000_0300, "人民币壹亿零叁元整"),
        (100_0050_0000, "人民币壹亿零伍仟元整"),
        (100_5000_0000, "人民币壹亿零伍拾万元整"),
    ],
)
def test_chinese_capital(fen, text):
    assert chinese_capital(Money(fen, "CNY")) == text


@pytest.mark.parametrize("currency", ["JPY", "USD", "HKD"])
def test_only_the_yuan_has_a_capital_form(currency):
    with pytest.raises(ValueError, match="only CNY"):
        chinese_capital(Money(100, currency))


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_a_negative_capital_is_the_positive_one_with_fu(fen):
    positive = chinese_capital(Money(abs(fen), "CNY"))
    text = chinese_capital(Money(fen, "CNY"))
    assert text == (positive.replace("人民币", "人民币负") if fen < 0 else positive)


# --- the type ------------------------------------------------------------------------------


def test_money_is_immutable_and_compares_by_value():
    money = Money(12000, "CNY")
    with pytest.raises(AttributeError):
        money.amount = 1  # type: ignore[misc]
    assert money == Money(12000, "CNY")
    assert money != Money(12000, "JPY")
    assert hash(money) == hash(Money(12000, "CNY"))
    assert Money.zero("CNY") == Money(0, "CNY")
    assert not Money.zero("CNY")
    assert Money(1, "CNY")


@pytest.mark.parametrize("amount", [1.5, 100.0, Decimal("1"), "100", True, None])
def test_money_takes_only_integer_minor_units(amount):
    with pytest.raises(TypeError):
        Money(amount, "CNY")


@pytest.mark.parametrize("currency", ["cny", "CN", "RMB1", "", "¥"])
def test_money_needs_an_iso_currency_code(currency):
    with pytest.raises(ValueError):
        Money(1, currency)


def test_arithmetic_in_one_currency():
    a, b = Money(12000, "CNY"), Money(3450, "CNY")
    assert a + b == Money(15450, "CNY")
    assert a - b == Money(8550, "CNY")
    assert b - a == Money(-8550, "CNY")
    assert -a == Money(-12000, "CNY")
    assert abs(Money(-5, "CNY")) == Money(5, "CNY")
    assert a * 3 == 3 * a == Money(36000, "CNY")
    assert sum([a, b], Money.zero("CNY")) == Money(15450, "CNY")
    assert b < a <= a and a > b >= b
    assert max(a, b) == a


@pytest.mark.parametrize(
    "combine",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_mixing_currencies_is_refused(combine):
    with pytest.raises(CurrencyMismatchError, match="CNY with JPY"):
        combine(Money(100, "CNY"), Money(100, "JPY"))


@pytest.mark.parametrize("factor", [1.5, Decimal("2"), True, Money(2, "CNY")])
def test_money_multiplies_by_an_int_only(factor):
    with pytest.raises(TypeError):
        Money(100, "CNY") * factor
    with pytest.raises(TypeError):
        factor * Money(100, "CNY")


@pytest.mark.parametrize("other", [1, Decimal("1"), 0.5])
def test_money_adds_and_compares_only_with_money(other):
    money = Money(100, "CNY")
    for combine in (lambda: money + other, lambda: other - money, lambda: money < other):
        with pytest.raises(TypeError):
            combine()


def test_currency_exponents_follow_iso_4217():
    assert [currency_exponent(c) for c in ("CNY", "JPY", "KWD", "BHD", "KRW", "EUR", "XYZ")] == [
        2,
        0,
        3,
        3,
        0,
        2,
        2,
    ]
    assert Money(1, "JPY").exponent == 0
    with pytest.raises(ValueError):
        currency_exponent("yen")


@pytest.mark.parametrize(
    ("major", "currency", "minor"),
    [
        (Decimal("12.34"), "CNY", 1234),
        (Decimal("12.3"), "CNY", 1230),
        (Decimal("12.340"), "CNY", 1234),  # trailing zeros are no extra precision
        (Decimal("-0.05"), "CNY", -5),
        ("1000", "JPY", 1000),
        (Decimal("1E+3"), "JPY", 1000),
        (7, "KWD", 7000),
        (Decimal("1.234"), "KWD", 1234),
        (Decimal("12345678901234567890123456789.01"), "CNY", 1234567890123456789012345678901),
    ],
)
def test_from_major_is_exact(major, currency, minor):
    assert Money.from_major(major, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("major", "currency"),
    [
        (Decimal("12.345"), "CNY"),
        (Decimal("1.5"), "JPY"),
        (Decimal("0.0001"), "KWD"),
        (Decimal("NaN"), "CNY"),
        (Decimal("Infinity"), "CNY"),
        ("twelve", "CNY"),
    ],
)
def test_from_major_refuses_what_it_cannot_represent(major, currency):
    with pytest.raises(ValueError):
        Money.from_major(major, currency)


def test_from_major_refuses_float():
    with pytest.raises(TypeError):
        Money.from_major(12.34, "CNY")  # type: ignore[arg-type]


def test_to_major_keeps_the_currencys_places():
    assert str(Money(12000, "CNY").to_major()) == "120.00"
    assert str(Money(-5, "CNY").to_major()) == "-0.05"
    assert str(Money(1000, "JPY").to_major()) == "1000"
    assert str(Money(1, "KWD").to_major()) == "0.001"


currencies = st.sampled_from(["CNY", "JPY", "KWD", "EUR", "CLF"])
amounts = st.integers(min_value=-(10**30), max_value=10**30)


@given(amounts, currencies)
def test_minor_to_major_and_back_is_the_identity(minor, currency):
    money = Money(minor, currency)
    major = money.to_major()
    assert -major.as_tuple().exponent == money.exponent
    assert Money.from_major(major, currency) == money
    assert Money.from_major(str(major), currency) == money


@given(amounts, amounts, amounts, st.integers(min_value=-1000, max_value=1000))
def test_arithmetic_matches_integer_arithmetic(a, b, c, factor):
    x, y, z = Money(a, "CNY"), Money(b, "CNY"), Money(c, "CNY")
    assert (x + y) + z == x + (y + z)
    assert x + y == y + x
    assert x - y == x + (-y)
    assert (x + y).amount == a + b
    assert (x * factor).amount == a * factor
    assert (x < y) == (a < b) and (x == y) == (a == b)


@st.composite
def shares(draw):
    """Basis-point shares adding up to 10000, one to five parts."""
    cuts = sorted(draw(st.lists(st.integers(0, BPS_WHOLE), max_size=4)))
    bounds = [0, *cuts, BPS_WHOLE]
    return [(f"dept{i}", hi - lo) for i, (lo, hi) in enumerate(itertools.pairwise(bounds))]


@given(amounts, shares(), currencies)
def test_split_parts_sum_to_the_whole_in_the_same_currency(minor, parts, currency):
    money = Money(minor, currency)
    split = money.split_by_bps(parts)
    assert [key for key, _ in split] == [key for key, _ in parts]
    assert sum((part for _, part in split), Money.zero(currency)) == money
    for (_, bps), (_, part) in zip(parts, split, strict=True):
        exact = Fraction(minor * bps, BPS_WHOLE)
        assert part.currency == currency
        assert abs(part.amount - exact) < 1  # each part within one minor unit of its share
