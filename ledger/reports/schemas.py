"""The settlement report's JSON shape (GET /api/v1/reports/settlement, `onetrip report
settlement --format json`): integer minor units, dates as YYYY-MM-DD."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

import msgspec
from msgspec import Struct

from ledger.reports.settlement import SettlementReport


class TotalsOut(Struct):
    collected: int
    refunded: int
    fees: int  # borne by the department
    disputes: int
    adjustments: int
    net: int  # collected − refunded − fees − disputes + adjustments
    payments: int
    refunds: int


class MatterOut(TotalsOut):
    matter_code: str
    matter_name: str | None  # as its payments were booked; null for older postings


class DayOut(TotalsOut):
    day: date


class PayoutOut(Struct):
    payout_id: str
    paid_on: date
    amount: int  # the department's share of it
    arrived: bool


class OpenItemOut(Struct):
    id: str
    reason: str
    item_kind: str
    item_id: str
    amount: int
    currency: str
    on_date: date
    detail: str
    brought_forward: bool
    department: str | None  # null: the platform's item about a payout carrying its money


class LedgerCheckOut(Struct):
    opening: int  # the department's accounts, credits − debits, before the period
    closing: int  # … at its end
    movement: int  # closing − opening: equals totals.net


class SettlementOut(Struct):
    department: str
    department_name: str
    timezone: str
    currency: str
    date_from: date
    date_to: date
    starts_at: datetime
    ends_at: datetime
    generated_at: datetime
    closed: bool
    totals: TotalsOut
    platform_fees: int
    paid_out: int
    in_transit: int
    by_matter: list[MatterOut]
    by_day: list[DayOut]
    payouts: list[PayoutOut]
    open_items: list[OpenItemOut]
    ledger_check: LedgerCheckOut


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec's JSON schema with its $defs references inlined (no recursion here)."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(copy.deepcopy(definitions[node["$ref"].rsplit("/", 1)[-1]]))
            return {key: resolve(value) for key, value in node.items() if key != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


SETTLEMENT_SCHEMA = _inline(msgspec.json.schema(SettlementOut))


def settlement_out(report: SettlementReport) -> SettlementOut:
    from ledger.reports.formats import report_dict

    return msgspec.convert(report_dict(report), SettlementOut)
