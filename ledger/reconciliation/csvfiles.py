"""CSV importers: Stripe's itemized payout reconciliation report and bank statements
read through a saved mapping profile. Rows are read lazily, one at a time.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from ledger.reconciliation.errors import bad_file, bad_line
from ledger.reconciliation.lines import (
    Line,
    line_hash,
    parse_currency,
    parse_date,
    parse_major,
    parse_timestamp,
    text_or_none,
)

csv.field_size_limit(1 << 20)


class _Rows:
    """csv rows with their physical line numbers; a line that does not decode in the
    profile's encoding is named exactly (each line is decoded on its own: the encodings
    allowed are ASCII-compatible, so a newline byte is always a newline)."""

    def __init__(self, binary: IO[bytes], encoding: str, delimiter: str, skip: int) -> None:
        if not ascii_compatible(encoding):
            raise bad_file(
                f"encoding {encoding!r} is unknown or not ASCII-compatible (e.g. utf-8, gbk, "
                "gb18030)",
                code="import_wrong_encoding",
            )
        if codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"  # a BOM (Excel's UTF-8 CSV) is not part of the header
        self.binary = binary
        self.encoding = encoding
        self.skip = skip
        self.delimiter = delimiter
        self.line = 0

    def _text(self) -> Iterator[str]:
        decode = codecs.getdecoder(self.encoding)
        for raw in self.binary:
            self.line += 1
            try:
                text = decode(raw)[0]
            except UnicodeDecodeError:
                name = codecs.lookup(self.encoding).name.removesuffix("-sig")
                raise bad_line(
                    self.line,
                    f"the text is not valid {name} (is the file in another encoding, "
                    "e.g. GBK or UTF-8?)",
                    code="import_wrong_encoding",
                ) from None
            if self.line > self.skip:
                yield text

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(self._text(), delimiter=self.delimiter, strict=True)
        try:
            for row in reader:
                if not "".join(row).strip():  # every cell blank (or none)
                    continue
                yield self.line, row
        except csv.Error as exc:
            raise bad_line(self.line, f"not readable as CSV: {exc}") from None


def ascii_compatible(encoding: str) -> bool:
    try:
        return "Date,1.0\r\n".encode(encoding) == b"Date,1.0\r\n"
    except (LookupError, UnicodeError):
        return False


def _header(
    rows: Iterator[tuple[int, list[str]]], required: list[str]
) -> tuple[int, dict[str, int]]:
    try:
        line, header = next(rows)
    except StopIteration:
        raise bad_file("the file is empty: no header line", code="import_missing_columns") from None
    index = {name.strip(): i for i, name in enumerate(header)}
    if len(index) != len(header):
        names = [name.strip() for name in header]
        twice = sorted({name for name in names if names.count(name) > 1})
        raise bad_line(
            line,
            "column(s) named twice in the header: " + ", ".join(map(repr, twice)),
            code="import_missing_columns",
        )
    missing = [name for name in required if name not in index]
    if missing:
        raise bad_line(
            line,
            "missing column(s): " + ", ".join(missing),
            code="import_missing_columns",
        )
    return line, index


def _cells(line: int, row: list[str], index: dict[str, int]) -> dict[str, str]:
    if len(row) != len(index):
        raise bad_line(line, f"{len(row)} fields where the header has {len(index)}")
    # `index` names every column, in order (_header refuses a name given twice)
    return dict(zip(index, row, strict=True))


# --- Stripe: payout_reconciliation.itemized.5 ------------------------------------------

STRIPE_REQUIRED = [
    "balance_transaction_id",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
]


def stripe_payout_recon(binary: IO[bytes], currency: str | None) -> Iterator[Line]:
    rows = iter(_Rows(binary, "utf-8", ",", 0))
    header_line, index = _header(rows, STRIPE_REQUIRED)
    created_column = next((c for c in ("created_utc", "created") if c in index), None)
    if created_column is None:
        raise bad_line(header_line, "missing column(s): created", code="import_missing_columns")
    available_column = next((c for c in ("available_on_utc", "available_on") if c in index), None)
    for line, row in rows:
        cells = _cells(line, row, index)
        txn = cells["balance_transaction_id"].strip()
        if not txn:
            raise bad_line(line, "balance_transaction_id is empty")
        code = parse_currency(cells["currency"], line, currency)
        gross = parse_major(cells["gross"], code, line, "gross")
        fee = parse_major(cells["fee"], code, line, "fee")
        net = parse_major(cells["net"], code, line, "net")
        if gross - fee != net:
            raise bad_line(
                line, f"gross − fee ≠ net ({cells['gross']} − {cells['fee']} ≠ {cells['net']})"
            )
        created = parse_timestamp(cells[created_column], line, created_column)
        available = (
            parse_timestamp(cells[available_column], line, available_column)
            if available_column and cells[available_column].strip()
            else None
        )
        yield Line(
            line_no=line,
            external_id=txn,
            booked_on=created.date(),
            value_on=available.date() if available else None,
            amount=gross,
            fee=fee,
            net=net,
            currency=code,
            reference=text_or_none(cells.get("description"), 500),
            payout_id=text_or_none(cells.get("automatic_payout_id"), 100),
            payment_id=text_or_none(cells.get("payment_metadata[payment_id]"), 100),
            source_id=text_or_none(cells.get("source_id") or cells.get("charge_id"), 100),
            category=text_or_none(cells["reporting_category"], 64),
            created_at=created,
            raw=cells,
        )


# --- bank statements through a mapping profile ------------------------------------------

#: our field -> whether a profile must map it
PROFILE_FIELDS = {
    "booked_on": True,
    "value_on": False,
    "amount": False,  # signed convention
    "debit": False,  # debit_credit convention
    "credit": False,
    "currency": False,
    "counterparty": False,
    "reference": False,
    "end_to_end_id": False,
    "external_id": False,
}


@dataclass(frozen=True)
class Profile:
    name: str
    bank: str
    encoding: str = "utf-8"
    delimiter: str = ","
    date_format: str = "%Y-%m-%d"
    decimal_separator: str = "."
    thousands_separator: str | None = None
    sign_convention: str = "signed"
    columns: dict[str, str] | None = None
    currency: str | None = None
    skip_rows: int = 0

    @property
    def namespace(self) -> str:
        return f"bank:{self.bank}"


def profile_problems(profile: Profile) -> list[dict[str, str]]:
    """What is wrong with a profile, as validation errors (empty when it is usable)."""
    problems = []
    columns = profile.columns or {}
    for name in columns:
        if name not in PROFILE_FIELDS:
            problems.append({"field": f"columns.{name}", "message": "is not a field we read"})
    for name, required in PROFILE_FIELDS.items():
        if required and not columns.get(name):
            problems.append({"field": f"columns.{name}", "message": "is required"})
    if profile.sign_convention == "signed" and not columns.get("amount"):
        problems.append({"field": "columns.amount", "message": "is required for signed"})
    if profile.sign_convention == "debit_credit" and not (
        columns.get("debit") and columns.get("credit")
    ):
        problems.append(
            {"field": "columns.debit", "message": "debit and credit are required for debit_credit"}
        )
    if profile.sign_convention not in ("signed", "debit_credit"):
        problems.append({"field": "sign_convention", "message": "must be signed or debit_credit"})
    if not ascii_compatible(profile.encoding):
        problems.append(
            {"field": "encoding", "message": "is not a known ASCII-compatible encoding"}
        )
    if profile.decimal_separator not in (".", ","):
        problems.append({"field": "decimal_separator", "message": "must be . or ,"})
    if profile.thousands_separator not in (None, ",", ".", " ", "'"):
        problems.append({"field": "thousands_separator", "message": "must be , . ' or space"})
    if profile.thousands_separator == profile.decimal_separator:
        problems.append(
            {"field": "thousands_separator", "message": "must differ from the decimal separator"}
        )
    if len(profile.delimiter) != 1:
        problems.append({"field": "delimiter", "message": "must be one character"})
    if "%" not in profile.date_format:
        problems.append({"field": "date_format", "message": "must be a strftime format"})
    return problems


def bank_csv(binary: IO[bytes], profile: Profile, currency: str | None) -> Iterator[Line]:
    columns = dict(profile.columns or {})
    expected = currency or profile.currency
    rows = iter(_Rows(binary, profile.encoding, profile.delimiter, profile.skip_rows))
    _, index = _header(rows, list(dict.fromkeys(columns.values())))
    if expected is None and "currency" not in columns:
        raise bad_file(
            "the profile has no currency column and no currency: say which (currency=CNY)",
            code="import_currency_required",
            field="currency",
        )

    def get(cells: dict[str, str], name: str) -> str | None:
        column = columns.get(name)
        return cells[column] if column else None

    for line, row in rows:
        cells = _cells(line, row, index)
        if "currency" in columns:
            code = parse_currency(cells[columns["currency"]], line, expected)
        else:
            assert expected is not None
            code = expected
        amount = _bank_amount(cells, columns, profile, code, line)
        booked = parse_date(cells[columns["booked_on"]], profile.date_format, line, "booked date")
        value_text = get(cells, "value_on")
        value = (
            parse_date(value_text, profile.date_format, line, "value date")
            if value_text and value_text.strip()
            else None
        )
        counterparty = text_or_none(get(cells, "counterparty"), 300)
        reference = text_or_none(get(cells, "reference"), 500)
        end_to_end = text_or_none(get(cells, "end_to_end_id"), 100)
        if end_to_end and end_to_end.upper() == "NOTPROVIDED":
            end_to_end = None
        own_id = text_or_none(get(cells, "external_id"), 1000)
        if own_id and len(own_id) > 255:
            raise bad_line(line, "the entry reference is longer than 255 characters")
        external_id = own_id or line_hash(
            booked, value, amount, code, counterparty, reference, end_to_end
        )
        yield Line(
            line_no=line,
            external_id=external_id,
            booked_on=booked,
            value_on=value,
            amount=amount,
            currency=code,
            counterparty=counterparty,
            reference=reference,
            end_to_end_id=end_to_end,
            raw=cells,
        )


def _bank_amount(
    cells: dict[str, str], columns: dict[str, str], profile: Profile, code: str, line: int
) -> int:
    def parse(text: str, what: str) -> int:
        return parse_major(
            text,
            code,
            line,
            what,
            decimal_separator=profile.decimal_separator,
            thousands_separator=profile.thousands_separator,
        )

    if profile.sign_convention == "signed":
        amount = parse(cells[columns["amount"]], "amount")
    else:
        debit_text = cells[columns["debit"]].strip()
        credit_text = cells[columns["credit"]].strip()
        debit = parse(debit_text, "debit") if debit_text else 0
        credit = parse(credit_text, "credit") if credit_text else 0
        if debit < 0 or credit < 0:
            raise bad_line(line, "debit and credit must not be negative", code="import_bad_amount")
        if debit and credit:
            raise bad_line(line, "both a debit and a credit on one line", code="import_bad_amount")
        amount = credit - debit
    if amount == 0:
        raise bad_line(line, "the amount is zero or missing", code="import_bad_amount")
    return amount


def profile_from(row: Any) -> Profile:
    return Profile(
        name=row.name,
        bank=row.bank,
        encoding=row.encoding,
        delimiter=row.delimiter,
        date_format=row.date_format,
        decimal_separator=row.decimal_separator,
        thousands_separator=row.thousands_separator,
        sign_convention=row.sign_convention,
        columns=dict(row.columns),
        currency=row.currency,
        skip_rows=row.skip_rows,
    )
