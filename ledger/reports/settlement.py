"""The settlement report: a department's money over a period, from the ledger.

Every format (JSON, CSV, XLSX, PDF) renders one `SettlementReport`, so they cannot
disagree. Its numbers come from the entries on the department's own accounts effective
in the period (the department's midnights, in its timezone), each transaction put in
one category by its `kind` (payments' and F1's booking metadata):

    collected   − what payments credited the department (reversals net it down)
    refunded    what refunds took back (a refund that came back lowers it)
    fees        Stripe fees the department bears (department-borne only; the
                platform's own fees on its payments are shown as `platform_fees`)
    disputes    disputes and their reversals
    adjustments everything else on its accounts (corrections, suspense releases, …),
                + when it adds to what the department is owed
    net         collected − refunded − fees − disputes + adjustments

so `net` is exactly the credits minus debits of the department's accounts over the
period: the trial balance's movement (`ledger_check` reads it from `trial_balance`
and states both). What Stripe paid out
for the department (`paid_out`, its share of the net of its payments' balance
transactions in payouts paid in the period) and what of that had not reached the bank
by the end (`in_transit`) come from the imported Stripe records and the payout
bookings. Reconciling items (reconciliation exceptions) still open at the period's end
are listed, those from earlier periods marked `brought_forward`: they carry forward
until resolved.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import BANK, STRIPE_FEES, department_settings
from ledger.models import (
    accounts,
    entries,
    exceptions,
    external_records,
    transactions,
)
from ledger.periods import (
    check_day,
    check_scope,
    closed_periods,
    department_timezone,
    midnight,
    zone,
)
from ledger.queries import require_department, trial_balance
from onetrip.clock import utcnow
from onetrip.errors import ValidationFailed

#: the longest period one report covers (a year and a day, for a leap year's)
MAX_DAYS = 366

# Transaction kinds (metadata "kind") by category; a reversal carries its original's.
COLLECTED_KINDS = frozenset({"payment", "payment_accepted", "counter_payment"})
REFUNDED_KINDS = frozenset({"refund", "refund_returned"})
FEE_KINDS = frozenset({"stripe_fee", "stripe_fees", "fee", "fees"})
DISPUTE_KINDS = frozenset({"dispute", "dispute_reversal", "stripe_dispute"})
UNKNOWN_MATTER = "—"
_TICK = timedelta(microseconds=1)


@dataclass
class Totals:
    """Signed minor units, from the department's point of view (see the module)."""

    collected: int = 0
    refunded: int = 0
    fees: int = 0
    disputes: int = 0
    adjustments: int = 0
    payments: int = 0  # payments collected in the period (distinct ids)
    refunds: int = 0  # refund transactions in the period

    @property
    def net(self) -> int:
        return self.collected - self.refunded - self.fees - self.disputes + self.adjustments


@dataclass(frozen=True)
class MatterLine:
    matter_code: str
    totals: Totals
    # The matter's name as its payments were booked (the catalogue's name then); None
    # when no posting of the period names it (booked before postings carried names).
    matter_name: str | None = None

    @property
    def label(self) -> str:
        """What people read: the name and the code, or the code alone."""
        return f"{self.matter_name} {self.matter_code}" if self.matter_name else self.matter_code


@dataclass(frozen=True)
class DayLine:
    day: date  # in the department's timezone
    totals: Totals


@dataclass(frozen=True)
class PayoutLine:
    payout_id: str
    paid_on: date
    amount: int  # the department's share of it
    arrived: bool  # reached the bank by the period's end


@dataclass(frozen=True)
class OpenItem:
    id: str
    reason: str
    item_kind: str
    item_id: str
    amount: int
    currency: str
    on_date: date
    detail: str
    brought_forward: bool  # from before the period
    # None: the platform's (a bank line, a payout) about a payout carrying its money
    department: str | None = None


@dataclass(frozen=True)
class LedgerCheck:
    """The department's accounts in the trial balance: credits − debits before the
    period, at its end, and the movement between — which equals the report's net."""

    opening: int
    closing: int
    movement: int


@dataclass(frozen=True)
class SettlementReport:
    department: str
    department_name: str
    timezone: str
    currency: str
    date_from: date
    date_to: date
    starts_at: datetime  # UTC, inclusive
    ends_at: datetime  # UTC, exclusive
    generated_at: datetime
    closed: bool  # every day of the period lies in a closed period
    totals: Totals
    platform_fees: int  # Stripe fees on its payments the platform bore (informational)
    paid_out: int
    in_transit: int
    by_matter: list[MatterLine]
    by_day: list[DayLine]
    payouts: list[PayoutLine]
    open_items: list[OpenItem]
    ledger_check: LedgerCheck


def _bad(field_name: str, message: str, *, code: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field_name} {message}", code=code, errors=[{"field": field_name, "message": message}]
    )


def check_dates(date_from: date, date_to: date) -> None:
    check_day(date_from, "date_from")
    check_day(date_to, "date_to")
    if date_to < date_from:
        raise _bad("date_to", "must not be before date_from", code="invalid_report_period")
    if (date_to - date_from).days >= MAX_DAYS:
        raise _bad(
            "date_to", f"must be within {MAX_DAYS} days of date_from", code="invalid_report_period"
        )


def _category(kind: str | None) -> str:
    if kind in COLLECTED_KINDS:
        return "collected"
    if kind in REFUNDED_KINDS:
        return "refunded"
    if kind in FEE_KINDS or "fee" in (kind or "").split("_")[-1]:  # stripe_fee(s), …
        return "fees"
    if kind in DISPUTE_KINDS or (kind or "").startswith("dispute"):
        return "disputes"
    return "adjustments"


def _add(totals: Totals, category: str, amount: int) -> None:
    """`amount` is the entry's signed amount (+ debit) on a liability the department is
    owed: a credit adds to collected / adjustments, a debit to refunded / fees / disputes."""
    if category == "collected":
        totals.collected -= amount
    elif category == "refunded":
        totals.refunded += amount
    elif category == "fees":
        totals.fees += amount
    elif category == "disputes":
        totals.disputes += amount
    else:
        totals.adjustments -= amount


async def _currency_of(session: AsyncSession, department: str, currency: str | None) -> str:
    held = sorted(
        (
            await session.execute(
                select(accounts.c.currency).where(accounts.c.department == department).distinct()
            )
        ).scalars()
    )
    if not held:
        await require_department(session, department)  # raises: it holds no account
    if currency is not None:
        if currency not in held:
            raise _bad("currency", f"must be one of {', '.join(held)}", code="invalid_currency")
        return currency
    if len(held) > 1:
        raise _bad(
            "currency",
            f"is needed: the department holds {', '.join(held)}",
            code="currency_required",
        )
    return held[0]


async def _owed_before(
    session: AsyncSession, department: str, currency: str, moment: datetime
) -> int:
    """Credits − debits of the department's accounts in the trial balance over the
    entries effective before `moment` (the trial balance counts up to and including its
    `as_of`; timestamps are kept to the microsecond)."""
    report = await trial_balance(session, as_of=moment - _TICK, scope=[department])
    return sum(
        line.credits - line.debits
        for line in report.lines
        if line.department == department and line.currency == currency
    )


async def build_settlement(
    session: AsyncSession,
    *,
    department: str,
    date_from: date,
    date_to: date,
    currency: str | None = None,
    scope: Any = None,
) -> SettlementReport:
    """The department's settlement over the local dates date_from..date_to (inclusive).

    Forbidden (department_not_allowed) outside `scope`; NotFound for a department the
    ledger has no accounts of; ValidationFailed for dates out of order or too far apart.
    """
    check_scope(department, scope)
    check_dates(date_from, date_to)
    currency = await _currency_of(session, department, currency)
    tz_name = await department_timezone(session, department)
    tz = zone(tz_name)
    starts_at = midnight(date_from, tz)
    ends_at = midnight(date_to + timedelta(days=1), tz)
    settings = await department_settings(session, department)

    days = [date_from + timedelta(days=n) for n in range((date_to - date_from).days + 1)]
    totals = Totals()
    by_matter: dict[str, Totals] = defaultdict(Totals)
    matter_names: dict[str, str] = {}
    by_day: dict[date, Totals] = {day: Totals() for day in days}
    for group in await _movement(session, department, currency, days, tz, ends_at):
        category = _category(group.kind)
        day = days[group.day_index]
        matter = group.matter_code or UNKNOWN_MATTER
        if group.matter_name:
            # one name, nearly always; if it changed within the period, the greatest, so
            # the choice does not depend on the order the groups come in
            matter_names[matter] = max(group.matter_name, matter_names.get(matter, ""))
        for target in (totals, by_day[day], by_matter[matter]):
            _add(target, category, int(group.amount))
            # A payment is collected once (one posting, one day, one matter): the
            # groups' distinct counts add up.
            if category == "collected":
                target.payments += int(group.payments)
            elif category == "refunded":
                target.refunds += int(group.refunds)

    opening = await _owed_before(session, department, currency, starts_at)
    closing = await _owed_before(session, department, currency, ends_at)
    payouts = await _payouts(session, department, currency, date_from, date_to, ends_at)
    platform_fees = await _platform_fees(session, department, currency, starts_at, ends_at)
    closed_list = await closed_periods(session, department, starts_at, ends_at)
    report = SettlementReport(
        department=department,
        department_name=settings.name if getattr(settings, "known", True) else department,
        timezone=tz_name,
        currency=currency,
        date_from=date_from,
        date_to=date_to,
        starts_at=starts_at,
        ends_at=ends_at,
        generated_at=utcnow(),
        closed=_covers(closed_list, starts_at, ends_at),
        totals=totals,
        platform_fees=platform_fees,
        paid_out=sum(p.amount for p in payouts),
        in_transit=sum(p.amount for p in payouts if not p.arrived),
        by_matter=[
            MatterLine(code, by_matter[code], matter_names.get(code)) for code in sorted(by_matter)
        ],
        by_day=[DayLine(day, by_day[day]) for day in days],
        payouts=payouts,
        open_items=await _open_items(session, department, currency, date_from, date_to, ends_at),
        ledger_check=LedgerCheck(opening=opening, closing=closing, movement=closing - opening),
    )
    if report.ledger_check.movement != totals.net:  # pragma: no cover - a ledger bug
        raise AssertionError(
            f"settlement net {totals.net} differs from the ledger movement"
            f" {report.ledger_check.movement}"
        )
    return report


async def _movement(
    session: AsyncSession,
    department: str,
    currency: str,
    days: list[date],
    tz: Any,
    ends_at: datetime,
) -> list[Any]:
    """The department's entries in the period summed in the database, per (local day,
    kind, matter): one row per group, however many entries. The day is the index of the
    local midnight an entry is before (bounds computed here, so no SQL time zones); the
    matter is the posting's own, else — refunds, fees — that of the payment's posting."""
    bounds = [midnight(day, tz) for day in days[1:]] + [ends_at]
    day_index: Any = literal(0)
    if len(bounds) > 1:
        day_index = case(
            *((entries.c.effective_at < bound, n) for n, bound in enumerate(bounds[:-1])),
            else_=len(bounds) - 1,
        )
    payment_posting = transactions.alias("payment_posting")
    payment_id = transactions.c.metadata["payment_id"].as_string()
    kind = transactions.c.metadata["kind"].as_string()
    matter = func.coalesce(
        transactions.c.metadata["matter_code"].as_string(),
        payment_posting.c.metadata["matter_code"].as_string(),
    )
    matter_name = func.coalesce(
        transactions.c.metadata["matter_name"].as_string(),
        payment_posting.c.metadata["matter_name"].as_string(),
    )
    payment_key = payment_posting.c.idempotency_key
    stmt = (
        select(
            day_index.label("day_index"),
            kind.label("kind"),
            matter.label("matter_code"),
            func.max(matter_name).label("matter_name"),
            func.sum(entries.c.amount).label("amount"),
            func.count(func.distinct(case((entries.c.amount < 0, payment_id)))).label("payments"),
            func.count(func.distinct(case((entries.c.amount > 0, transactions.c.id)))).label(
                "refunds"
            ),
        )
        .select_from(
            entries.join(accounts, accounts.c.id == entries.c.account_id)
            .join(transactions, transactions.c.id == entries.c.transaction_id)
            .outerjoin(
                payment_posting,
                and_(
                    transactions.c.metadata["matter_code"].as_string().is_(None),
                    payment_id.is_not(None),
                    or_(
                        payment_key == literal("payment:") + payment_id + literal(":succeeded"),
                        payment_key == literal("payment:") + payment_id + literal(":received"),
                    ),
                ),
            )
        )
        .where(
            accounts.c.department == department,
            accounts.c.currency == currency,
            entries.c.effective_at >= midnight(days[0], tz),
            entries.c.effective_at < ends_at,
        )
        .group_by(day_index, kind, matter)
    )
    return list((await session.execute(stmt)).all())


def _covers(closed: list[Any], starts_at: datetime, ends_at: datetime) -> bool:
    """Whether the closed periods (oldest first) leave no gap in [starts_at, ends_at)."""
    reached = starts_at
    for found in closed:
        if found.starts_at > reached:
            return False
        reached = max(reached, found.ends_at)
        if reached >= ends_at:
            return True
    return reached >= ends_at


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[n : n + size] for n in range(0, len(items), size)]


async def _department_shares(
    session: AsyncSession, department: str, currency: str, payment_ids: list[str]
) -> dict[str, tuple[int, int]]:
    """payment id → (the department's credit, the whole payment's credits to
    departments) in its payment posting: how a joint payment's money is shared."""
    shares: dict[str, tuple[int, int]] = {}
    # the department's credit is in the payment's posting, or in its acceptance when it
    # waited in review first
    keys = [f"payment:{pid}:{what}" for pid in payment_ids for what in ("succeeded", "accepted")]
    mine: dict[str, int] = defaultdict(int)
    whole: dict[str, int] = defaultdict(int)
    for chunk in _chunks(keys, 500):
        rows = await session.execute(
            select(
                transactions.c.idempotency_key,
                accounts.c.department,
                entries.c.amount,
            )
            .select_from(
                entries.join(accounts, accounts.c.id == entries.c.account_id).join(
                    transactions, transactions.c.id == entries.c.transaction_id
                )
            )
            .where(
                transactions.c.idempotency_key.in_(chunk),
                accounts.c.department.is_not(None),
                accounts.c.currency == currency,
            )
        )
        for key, owner, amount in rows:
            payment_id = key.split(":", 2)[1]
            whole[payment_id] += -int(amount)
            if owner == department:
                mine[payment_id] += -int(amount)
    for payment_id, total in whole.items():
        if mine.get(payment_id):
            shares[payment_id] = (mine[payment_id], total)
    return shares


def _share(amount: int, share: tuple[int, int]) -> int:
    mine, whole = share
    if mine == whole or whole == 0:
        return amount
    return amount * mine // whole


async def _payouts(
    session: AsyncSession,
    department: str,
    currency: str,
    date_from: date,
    date_to: date,
    ends_at: datetime,
) -> list[PayoutLine]:
    """The department's share of the payouts paid in the period: the net (gross − fee)
    of its payments' Stripe balance transactions each payout carried."""
    payout_rows = (
        await session.execute(
            select(
                external_records.c.payout_id,
                external_records.c.source_id,
                external_records.c.external_id,
                external_records.c.booked_on,
                external_records.c.category,
            ).where(
                external_records.c.namespace == "stripe",
                external_records.c.currency == currency,
                external_records.c.category == "payout",
                external_records.c.booked_on >= date_from,
                external_records.c.booked_on <= date_to,
            )
        )
    ).all()
    paid_on: dict[str, date] = {}
    for row in payout_rows:
        payout_id = row.payout_id or row.source_id
        if payout_id:
            paid_on.setdefault(payout_id, row.booked_on)
    if not paid_on:
        return []
    carried = (
        await session.execute(
            select(
                external_records.c.payout_id,
                external_records.c.payment_id,
                external_records.c.amount,
                external_records.c.fee,
                external_records.c.net,
            ).where(
                external_records.c.namespace == "stripe",
                external_records.c.payout_id.in_(list(paid_on)),
                external_records.c.payment_id.is_not(None),
                or_(external_records.c.category.is_(None), external_records.c.category != "payout"),
            )
        )
    ).all()
    shares = await _department_shares(
        session, department, currency, sorted({row.payment_id for row in carried})
    )
    amounts: dict[str, int] = defaultdict(int)
    for row in carried:
        share = shares.get(row.payment_id)
        if share is None:
            continue
        net = row.net if row.net is not None else row.amount - (row.fee or 0)
        amounts[row.payout_id] += _share(int(net), share)
    arrived = await _arrived(session, list(amounts), ends_at)
    return [
        PayoutLine(payout_id=pid, paid_on=paid_on[pid], amount=amounts[pid], arrived=pid in arrived)
        for pid in sorted(amounts, key=lambda p: (paid_on[p], p))
    ]


async def _arrived(session: AsyncSession, payout_ids: list[str], ends_at: datetime) -> set[str]:
    """The payouts whose arrival at the bank (Dr bank / Cr bank in transit, naming the
    payout) is effective before `ends_at`."""
    if not payout_ids:
        return set()
    payout_col = transactions.c.metadata["payout_id"].as_string()
    rows = await session.execute(
        select(transactions.c.external_ref, payout_col.label("payout_id"))
        .select_from(
            transactions.join(entries, entries.c.transaction_id == transactions.c.id).join(
                accounts, accounts.c.id == entries.c.account_id
            )
        )
        .where(
            accounts.c.code == BANK,
            entries.c.amount > 0,
            transactions.c.effective_at < ends_at,
            or_(
                transactions.c.external_ref.in_(payout_ids),
                payout_col.in_(payout_ids),
            ),
        )
    )
    found = set()
    for external_ref, payout_id in rows:
        found.update(p for p in (external_ref, payout_id) if p in payout_ids)
    return found


async def _platform_fees(
    session: AsyncSession, department: str, currency: str, starts_at: datetime, ends_at: datetime
) -> int:
    """Stripe fees the platform bore on payments of this department in the period (the
    fee postings name the payment and its department in their metadata)."""
    department_col = transactions.c.metadata["department"].as_string()
    total = (
        await session.execute(
            select(func.coalesce(func.sum(entries.c.amount), 0))
            .select_from(
                entries.join(accounts, accounts.c.id == entries.c.account_id).join(
                    transactions, transactions.c.id == entries.c.transaction_id
                )
            )
            .where(
                accounts.c.code == STRIPE_FEES,
                accounts.c.currency == currency,
                department_col == department,
                entries.c.effective_at >= starts_at,
                entries.c.effective_at < ends_at,
            )
        )
    ).scalar_one()
    return int(total)


async def _open_items(
    session: AsyncSession,
    department: str,
    currency: str,
    date_from: date,
    date_to: date,
    ends_at: datetime,
) -> list[OpenItem]:
    """Reconciliation exceptions dated on or before the period's last day that were open
    at its end (open still, or resolved since): the department's own, and the
    platform's (a bank line, a payout) about a payout that carried its payments."""
    open_at_end = or_(
        exceptions.c.status == "open",
        and_(exceptions.c.resolved_at.is_not(None), exceptions.c.resolved_at >= ends_at),
    )
    rows = (
        await session.execute(
            select(exceptions)
            .where(
                or_(exceptions.c.department == department, exceptions.c.department.is_(None)),
                exceptions.c.currency == currency,
                exceptions.c.on_date <= date_to,
                open_at_end,
            )
            .order_by(exceptions.c.on_date, exceptions.c.id)
        )
    ).all()
    platform = [row for row in rows if row.department is None]
    payouts_of = {row.id: _payouts_named(row) for row in platform}
    carrying = await _payouts_carrying(
        session, department, sorted({p for named in payouts_of.values() for p in named})
    )
    return [
        OpenItem(
            id=row.id,
            reason=row.reason,
            item_kind=row.item_kind,
            item_id=row.item_id,
            amount=int(row.amount),
            currency=row.currency,
            on_date=row.on_date,
            detail=row.detail,
            brought_forward=row.on_date < date_from,
            department=row.department,
        )
        for row in rows
        if row.department == department or payouts_of[row.id] & carrying
    ]


def _payouts_named(row: Any) -> set[str]:
    """The Stripe payouts a platform exception is about: its item, or its candidates."""
    named = {row.item_id} if row.item_kind == "payout" else set()
    for candidate in row.candidates or ():
        if isinstance(candidate, dict) and candidate.get("kind") == "payout":
            named.add(str(candidate.get("id")))
    return named


async def _payouts_carrying(
    session: AsyncSession, department: str, payout_ids: list[str]
) -> set[str]:
    """Which of `payout_ids` carried a payment of `department` (by Stripe's records)."""
    if not payout_ids:
        return set()
    payment_id = external_records.c.payment_id
    payment_key = transactions.c.idempotency_key
    rows = await session.execute(
        select(external_records.c.payout_id)
        .distinct()
        .select_from(
            external_records.join(
                transactions,
                payment_key == literal("payment:") + payment_id + literal(":succeeded"),
            )
            .join(entries, entries.c.transaction_id == transactions.c.id)
            .join(accounts, accounts.c.id == entries.c.account_id)
        )
        .where(
            external_records.c.payout_id.in_(payout_ids),
            accounts.c.department == department,
        )
    )
    return set(rows.scalars())
