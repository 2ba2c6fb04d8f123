"""Money: integer minor units plus an ISO 4217 currency, and the one place that splits,
converts and formats it.

`Money` is the value; `split_by_bps` the only split (largest remainder, sums exact);
`format_amount` the only way an amount is shown to a person; `chinese_capital` the
capital-numeral form (大写金额) receipts and reports print beside the figures.
Amounts never pass through float: major units are `Decimal`, converted exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar

K = TypeVar("K")

BPS_WHOLE = 10_000
_CURRENCY = re.compile(r"^[A-Z]{3}$")

# ISO 4217 minor-unit exponents that are not 2 (the list's "minor unit" column). Every
# other valid code is taken as 2, which is also what Stripe assumes for unknown ones.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}

LOCALES = ("zh-CN", "en")
# A symbol only where the locale's reader cannot misread it: ¥ is the yuan to a zh-CN
# reader and the yen to an English one (as in CLDR). Every other currency shows its code.
_SYMBOLS: dict[str, dict[str, str]] = {"zh-CN": {"CNY": "¥"}, "en": {"JPY": "¥"}}


class CurrencyMismatchError(ValueError):
    """Arithmetic or comparison between amounts in two currencies."""


def valid_currency(code: str) -> bool:
    """True for a three-letter upper-case ISO 4217 style code."""
    return bool(_CURRENCY.match(code))


def currency_exponent(currency: str) -> int:
    """Decimal places of `currency`'s minor unit (CNY 2, JPY 0, KWD 3; unknown codes 2)."""
    if not valid_currency(currency):
        raise ValueError(f"not an ISO 4217 currency code: {currency!r}")
    return _EXPONENTS.get(currency, 2)


def split_by_bps(amount: int, shares: Sequence[tuple[K, int]]) -> list[tuple[K, int]]:
    """Split `amount` by basis-point shares so the parts always add up to `amount`.

    Largest remainder: each part gets the floor of its exact share, and the fen left
    over go one each to the parts with the largest remainders (ties: earlier share).
    Works for negative amounts too (a refund splits like its payment, mirrored).
    """
    if not shares:
        raise ValueError("no shares to split by")
    if sum(bps for _, bps in shares) != BPS_WHOLE:
        raise ValueError("shares must add up to 10000 basis points")
    if any(bps < 0 for _, bps in shares):
        raise ValueError("shares cannot be negative")
    sign = -1 if amount < 0 else 1
    magnitude = abs(amount)
    floors = []
    remainders = []
    for index, (_, bps) in enumerate(shares):
        whole, rest = divmod(magnitude * bps, BPS_WHOLE)
        floors.append(whole)
        remainders.append((-rest, index))
    left = magnitude - sum(floors)
    for _, index in sorted(remainders)[:left]:
        floors[index] += 1
    return [(key, sign * part) for (key, _), part in zip(shares, floors, strict=True)]


def _is_int(value: object) -> bool:
    # bool is an int subclass, and True fen is always a bug.
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (fen for CNY) of one currency; immutable.

    `+`, `-`, unary `-`, comparisons and `split_by_bps` refuse two currencies
    (`CurrencyMismatchError`); `*` takes an int only. Equality is plain value equality,
    so amounts in two currencies are simply unequal.
    """

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not _is_int(self.amount):
            raise TypeError(f"Money amount must be an int of minor units, not {self.amount!r}")
        if not isinstance(self.currency, str) or not valid_currency(self.currency):
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        """No money in `currency`, the start of a sum."""
        return cls(0, currency)

    @classmethod
    def from_major(cls, value: Decimal | int | str, currency: str) -> Money:
        """`Decimal("12.34"), "CNY"` -> 1234 fen, exactly.

        Refuses float (already inexact), NaN and infinities, and any value with more
        precision than the currency's minor unit (`Decimal("1.005")` CNY, `Decimal("1.5")`
        JPY): a finance import must never round silently. Trailing zeros are fine.
        """
        if isinstance(value, float | bool):
            raise TypeError("major amounts must be Decimal, int or str, never float")
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not an amount: {value!r}") from None
        if not number.is_finite():
            raise ValueError(f"not a finite amount: {value!r}")
        sign, digits, exponent = number.as_tuple()
        assert isinstance(exponent, int)  # finite, checked above
        coefficient = int("".join(map(str, digits)) or "0")
        # Integer arithmetic on the decimal's own digits: no context precision involved.
        shift = exponent + currency_exponent(currency)
        if shift >= 0:
            minor = coefficient * 10**shift
        else:
            minor, rest = divmod(coefficient, 10**-shift)
            if rest:
                places = currency_exponent(currency)
                raise ValueError(f"{value} has more than {places} decimal places for {currency}")
        return cls(-minor if sign else minor, currency)

    @property
    def exponent(self) -> int:
        """Decimal places of this currency's minor unit."""
        return currency_exponent(self.currency)

    def to_major(self) -> Decimal:
        """The amount in major units as an exact Decimal with the currency's places."""
        digits = tuple(int(d) for d in str(abs(self.amount)))
        return Decimal((int(self.amount < 0), digits, -self.exponent))

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatchError(
                f"cannot combine {self.currency} with {other.currency}: convert first"
            )

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: object) -> Money:
        if not _is_int(factor):
            return NotImplemented  # float or Decimal factors would need a rounding rule
        assert isinstance(factor, int)
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __bool__(self) -> bool:
        return self.amount != 0

    def _compare(self, other: object) -> int | None:
        if not isinstance(other, Money):
            return None
        self._same(other)
        return (self.amount > other.amount) - (self.amount < other.amount)

    def __lt__(self, other: object) -> bool:
        result = self._compare(other)
        return NotImplemented if result is None else result < 0

    def __le__(self, other: object) -> bool:
        result = self._compare(other)
        return NotImplemented if result is None else result <= 0

    def __gt__(self, other: object) -> bool:
        result = self._compare(other)
        return NotImplemented if result is None else result > 0

    def __ge__(self, other: object) -> bool:
        result = self._compare(other)
        return NotImplemented if result is None else result >= 0

    def split_by_bps(self, shares: Sequence[tuple[K, int]]) -> list[tuple[K, Money]]:
        """`split_by_bps` on this amount: the parts, in this currency, sum to it exactly."""
        return [
            (key, Money(part, self.currency)) for key, part in split_by_bps(self.amount, shares)
        ]


def format_amount(money: Money, locale: str = "zh-CN") -> str:
    """The amount as a person reads it, exactly (no float).

    zh-CN: `¥1,234.50`, other currencies by code, `EUR 12.50`, `JPY 1,500`.
    en: `CNY 1,234.50`, `EUR 12.50`, and `¥1,500` for the yen. Places follow the
    currency's exponent; thousands separators always; a negative amount puts the sign
    before the symbol or code: `-¥2.50`, `-CNY 2.50`.
    """
    if locale not in _SYMBOLS:
        raise ValueError(f"unknown locale {locale!r}; expected one of {', '.join(LOCALES)}")
    symbol = _SYMBOLS[locale].get(money.currency, f"{money.currency} ")
    places = money.exponent
    whole, fraction = divmod(abs(money.amount), 10**places)
    figures = f"{whole:,}.{fraction:0{places}d}" if places else f"{whole:,}"
    sign = "-" if money.amount < 0 else ""
    return f"{sign}{symbol}{figures}"


# --- the capital form (大写金额) ------------------------------------------------------------

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_SECTION_UNITS = ("仟", "佰", "拾", "")


def _section_words(number: int) -> str:
    """1..9999 in capital numerals; inner runs of zeros read as one 零, trailing ones not."""
    words = []
    pending_zero = False
    for unit, digit in zip(_SECTION_UNITS, f"{number:04d}", strict=True):
        if digit == "0":
            pending_zero = bool(words)
            continue
        if pending_zero:
            words.append("零")
            pending_zero = False
        words.append(_DIGITS[int(digit)] + unit)
    return "".join(words)


def _integer_words(number: int) -> str:
    """A positive whole number in capital numerals with 万 and 亿 (亿 may repeat: 万亿)."""
    if number >= 10**8:
        high, low = divmod(number, 10**8)
        head = _integer_words(high) + "亿"
        if not low:
            return head
        return head + ("零" if low < 10**7 else "") + _integer_words(low)
    if number >= 10**4:
        high, low = divmod(number, 10**4)
        head = _section_words(high) + "万"
        if not low:
            return head
        return head + ("零" if low < 1000 else "") + _section_words(low)
    return _section_words(number)


def amount_in_chinese_words(fen: int) -> str:
    """A non-negative CNY amount in fen as the capital numerals of bills, without 人民币.

    The People's Bank rules for writing amounts on bills (《正确填写票据和结算凭证的基本
    规定》), taking the first option wherever they allow two:
    - 壹拾 not 拾 (壹拾元整, 壹拾贰万…);
    - one 零 for each run of zeros between non-zero digits (壹万零伍元整, 壹仟零贰拾元伍角整);
      when the zero run ends a 万/亿 section or the 元 digit and the next digit is a
      thousands or 角 digit, no 零 (壹拾万柒仟元伍角叁分, 壹仟陆佰捌拾元叁角贰分);
    - 零 after 元 when the 角 digit is zero but 分 is not (壹佰元零伍分, 壹万陆仟肆佰零玖元零贰分);
    - 整 after an amount ending at 元 or at 角 (伍角整: optional after 角, always written
      here), never after 分 (壹角壹分);
    - below one yuan the 元 is left out (伍分, 壹角整); zero is 零元整.
    """
    if not _is_int(fen):
        raise TypeError("fen must be an int")
    if fen < 0:
        raise ValueError("amount cannot be negative")
    if fen == 0:
        return "零元整"
    yuan, rest = divmod(fen, 100)
    jiao, cents = divmod(rest, 10)
    words = _integer_words(yuan) + "元" if yuan else ""
    if jiao:
        words += _DIGITS[jiao] + "角"
    if cents:
        if yuan and not jiao:
            words += "零"
        words += _DIGITS[cents] + "分"
    else:
        words += "整"
    return words


def chinese_capital(money: Money) -> str:
    """A CNY amount as written on receipts: `人民币壹佰贰拾元整`, `人民币负贰元伍角整`.

    Only CNY has a capital form: any other currency raises `ValueError` (a caller that
    shows several currencies checks `money.currency == "CNY"` first). A negative amount
    (a refund, a reversal in a report) reads 负 after 人民币. See
    `amount_in_chinese_words` for the zero and 整 rules.
    """
    if money.currency != "CNY":
        raise ValueError(f"only CNY amounts have a Chinese capital form, not {money.currency}")
    sign = "负" if money.amount < 0 else ""
    return f"人民币{sign}{amount_in_chinese_words(abs(money.amount))}"
