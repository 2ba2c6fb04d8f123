"""One external line as every importer hands it over, and the value parsers they share.

Amounts never pass through float: a major-unit text is checked character by character,
made a Decimal and converted exactly with the currency's exponent (`Money.from_major`),
so "12.345" CNY is refused rather than rounded. The plain texts almost every line holds
("-123.45") take a fast path with the same result: integer arithmetic on the two halves
(a million-line Stripe report has three amounts a line; the Decimal path was half of
its parsing time, benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ledger.reconciliation.errors import bad_line
from onetrip.money import Money, currency_exponent, valid_currency


@dataclass(slots=True)
class Line:
    line_no: int
    external_id: str
    booked_on: date
    amount: int
    currency: str
    raw: dict[str, Any]
    value_on: date | None = None
    fee: int | None = None
    net: int | None = None
    counterparty: str | None = None
    reference: str | None = None
    end_to_end_id: str | None = None
    payout_id: str | None = None
    payment_id: str | None = None
    source_id: str | None = None
    category: str | None = None
    # When the movement happened, to the second (a Stripe balance transaction's
    # `created`); None for bank lines, which give a day (booked_on) only.
    created_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS}


_COLUMNS = tuple(f.name for f in fields(Line))
_PLAIN = re.compile(r"[+-]?\d+(\.\d+)?")
#: the same texts as _PLAIN, in parts: sign, whole, fraction
_PLAIN_PARTS = re.compile(r"([+-]?)(\d+)(?:\.(\d+))?")


@functools.lru_cache(maxsize=64)
def _places(currency: str) -> int:
    return currency_exponent(currency)  # a ValueError (not a code) is not cached


def _plain_minor(value: str, currency: str) -> int | None:
    """Minor units of a plain "-123.45" text, exactly as `Money.from_major` would give
    them; None for anything else (other forms, an invalid currency, or a value it
    refuses: the Decimal path then raises with its own message)."""
    match = _PLAIN_PARTS.fullmatch(value)
    if match is None:
        return None
    try:
        places = _places(currency)
    except ValueError:
        return None
    sign, whole, fraction = match.groups()
    if fraction is None:
        minor = int(whole) * 10**places
    else:
        if len(fraction) > places:
            if fraction[places:].strip("0"):
                return None  # more precision than the currency has: refused below
            fraction = fraction[:places]
        minor = int(whole) * 10**places + (
            int(fraction) * 10 ** (places - len(fraction)) if fraction else 0
        )
    return -minor if sign == "-" else minor


#: minor units of the plain texts seen, by (text, currency): a report repeats few amounts
#: (a matter's fee, its Stripe fee) across a million lines. Emptied when full.
_MINOR_SEEN: dict[tuple[str, str], int] = {}
_MINOR_SEEN_SIZE = 8192


def parse_major(
    text: str,
    currency: str,
    line: int,
    what: str,
    *,
    decimal_separator: str = ".",
    thousands_separator: str | None = None,
) -> int:
    """Minor units of a major-unit text ("1,234.56", "1.234,56", "-12.30"), exactly."""
    plain = decimal_separator == "." and not thousands_separator
    if plain:
        seen = _MINOR_SEEN.get((text, currency))
        if seen is not None:
            return seen
    value = text.strip().replace(" ", "").replace("\u00a0", "")
    if thousands_separator:
        sign = value[:1] if value[:1] in "+-" else ""
        body = value[len(sign) :]
        whole, _, fraction = body.partition(decimal_separator)
        if thousands_separator in whole:
            groups = whole.split(thousands_separator)
            if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
                raise bad_line(line, f"{what} {text!r} is not an amount", code="import_bad_amount")
            whole = "".join(groups)
        value = sign + whole + ("." + fraction if decimal_separator in body else "")
    elif decimal_separator != ".":
        if "." in value:
            raise bad_line(line, f"{what} {text!r} is not an amount", code="import_bad_amount")
        value = value.replace(decimal_separator, ".")
    minor = _plain_minor(value, currency)
    if minor is not None:
        if plain:
            if len(_MINOR_SEEN) >= _MINOR_SEEN_SIZE:
                _MINOR_SEEN.clear()
            _MINOR_SEEN[text, currency] = minor
        return minor
    if not _PLAIN.fullmatch(value):
        raise bad_line(line, f"{what} {text!r} is not an amount", code="import_bad_amount")
    try:
        return Money.from_major(Decimal(value), currency).amount
    except ValueError as exc:
        raise bad_line(line, f"{what} {text!r}: {exc}", code="import_bad_amount") from None


#: how Chinese banks' exports name currencies besides the ISO code
CURRENCY_NAMES = {
    "人民币": "CNY",
    "RMB": "CNY",
    "美元": "USD",
    "港币": "HKD",
    "港元": "HKD",
    "欧元": "EUR",
    "日元": "JPY",
    "英镑": "GBP",
}


@functools.lru_cache(maxsize=256)
def _currency_code(text: str) -> str | None:
    code = text.strip().upper()
    code = CURRENCY_NAMES.get(code, code)
    return code if valid_currency(code) else None


def parse_currency(text: str, line: int, expected: str | None) -> str:
    code = _currency_code(text)
    if code is None:
        raise bad_line(line, f"currency {text!r} is not an ISO 4217 code")
    check_currency(code, line, expected)
    return code


def check_currency(code: str, line: int, expected: str | None) -> None:
    if expected is not None and code != expected:
        raise bad_line(
            line,
            f"the line is in {code} but the import is for {expected}",
            code="import_wrong_currency",
        )


def parse_date(text: str, fmt: str, line: int, what: str) -> date:
    try:
        return datetime.strptime(text.strip(), fmt).date()
    except ValueError:
        raise bad_line(
            line, f"{what} {text!r} is not a date as {fmt!r}", code="import_bad_date"
        ) from None


def parse_timestamp(text: str, line: int, what: str) -> datetime:
    """Stripe report timestamps ("2026-11-03 08:15:02", ISO 8601), UTC when naive."""
    if len(text) == 19 and text[10] == " ":
        # The report's own form, naive: read as UTC directly (`replace(tzinfo=…)`
        # costs five times the parse).
        try:
            return datetime.fromisoformat(text + "+00:00")
        except ValueError:
            pass  # the general path below names the problem
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise bad_line(
            line, f"{what} {text!r} is not a timestamp", code="import_bad_date"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def line_hash(*parts: object) -> str:
    """A stable id for a line the bank gave no id to: the same line always hashes alike."""
    text = json.dumps([str(p) if p is not None else None for p in parts], ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def text_or_none(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:limit] if value else None
