"""Closed periods: a department's day or month that takes no more postings.

For F1 and every other writer of ledger entries, the one check to call:

    async def refuse_closed(session, postings) -> None
        postings: objects with `.lines` (each with `.account`, an account code) and
        `.effective_at` (aware datetime; None = now; naive = UTC), e.g. ledger Posting.
        Raises PeriodClosed (409 period_closed) when any posting is effective inside
        a closed period of a department whose account it touches.

    async def refuse_closed_transactions(session, transaction_ids) -> None
        The same check, set-based, over transactions already written in this unit of
        work (a list of ids or a SELECT of ids): for bulk SQL writers.

Call either AFTER writing, in the same transaction: a period closed meanwhile is then
seen (closing waits for the department's in-flight postings, see close_period), and the
refusal rolls the caller's unit of work back — never catch PeriodClosed and commit.

Rules: only `effective_at` matters (a refund today of a payment from a closed month is
effective today, in an open period); platform accounts have no department, so a
posting is refused when ANY department it touches is closed at its effective time. The
bounds are the period's midnights in the department's own timezone (F1's
department_settings; Asia/Shanghai when it has none), fixed in UTC when it is closed.
Corrections of what lies in a closed period post in the open period with `corrects_id`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ledger.accounts import department_of, department_settings
from ledger.models import accounts, entries, periods
from ledger.queries import require_department
from onetrip.clock import utcnow
from onetrip.errors import Conflict, Forbidden, ValidationFailed
from onetrip.ids import new_id
from onetrip.pagination import check_cursor, check_limit

DEFAULT_TIMEZONE = "Asia/Shanghai"
# ASCII digits only: \d would take "２０２６-１１" and store it as the period's name.
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
_DAY = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
#: The days finance dates may name (periods, reports, runs): beyond them a local
#: midnight is not representable in every timezone, and no book of ours reaches there.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


class PeriodClosed(Conflict):
    code = "period_closed"
    title = "The ledger period is closed"


class PostingLike(Protocol):
    @property
    def lines(self) -> Sequence[Any]: ...

    @property
    def effective_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class ClosedPeriod:
    id: str
    department: str
    period: str  # "2026-11" or "2026-11-30"
    kind: str  # "month" | "day"
    timezone: str
    starts_at: datetime  # UTC, inclusive
    ends_at: datetime  # UTC, exclusive
    closed_by: str
    closed_at: datetime

    def contains(self, moment: datetime) -> bool:
        return self.starts_at <= moment < self.ends_at


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return utcnow()
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _closed(row: Any) -> ClosedPeriod:
    return ClosedPeriod(
        id=row.id,
        department=row.department,
        period=row.period,
        kind=row.kind,
        timezone=row.timezone,
        starts_at=_aware(row.starts_at),
        ends_at=_aware(row.ends_at),
        closed_by=row.closed_by,
        closed_at=_aware(row.closed_at),
    )


def _refusal(department: str, found: ClosedPeriod, moment: datetime) -> PeriodClosed:
    return PeriodClosed(
        f"department {department}'s period {found.period} ({found.timezone}) is closed:"
        f" nothing can be posted effective {moment.isoformat()}; post a correction in"
        " an open period instead (corrects_id)",
        code="period_closed",
    )


# --- the check ------------------------------------------------------------------------


async def refuse_closed_touches(
    session: AsyncSession | AsyncConnection, touches: Iterable[tuple[str, datetime]]
) -> None:
    """Raise PeriodClosed if a (department, effective_at) pair lies in a closed period.

    One query over the departments' closed periods overlapping the pairs' time span;
    none when there are no pairs.
    """
    pairs = {(department, _aware(moment)) for department, moment in touches}
    if not pairs:
        return
    departments = sorted({department for department, _ in pairs})
    earliest = min(moment for _, moment in pairs)
    latest = max(moment for _, moment in pairs)
    rows = await session.execute(
        select(periods).where(
            periods.c.department.in_(departments),
            periods.c.starts_at <= latest,
            periods.c.ends_at > earliest,
        )
    )
    closed: dict[str, list[ClosedPeriod]] = {}
    for row in rows:
        closed.setdefault(row.department, []).append(_closed(row))
    if not closed:
        return
    for department, moment in sorted(pairs):
        for found in closed.get(department, ()):
            if found.contains(moment):
                raise _refusal(department, found, moment)


async def first_open_moment(
    session: AsyncSession | AsyncConnection, departments: Iterable[str], moment: datetime
) -> datetime:
    """`moment`, or — when it lies in a closed period of any of `departments` — the first
    moment after it that lies in none: where a fact learnt late (a card payment whose
    webhook came after its day was closed) is booked, since a closed period takes no
    postings and refusing the booking would lose the fact. Periods close only once
    they have ended, so the answer is never later than now."""
    names = sorted(set(departments))
    at = _aware(moment)
    if not names:
        return at
    rows = await session.execute(
        select(periods)
        .where(periods.c.department.in_(names), periods.c.ends_at > at)
        .order_by(periods.c.starts_at)
    )
    for found in (_closed(row) for row in rows):
        if found.contains(at):
            at = found.ends_at  # periods of several departments may chain
    return at


async def refuse_closed(
    session: AsyncSession | AsyncConnection, postings: Iterable[PostingLike]
) -> None:
    """Raise PeriodClosed when a posting is effective inside a closed period of any
    department whose account it touches (see the module docstring for when to call)."""
    touches: list[tuple[str, datetime]] = []
    for posting in postings:
        moment = _aware(posting.effective_at)
        for line in posting.lines:
            department = department_of(line.account)
            if department is not None:
                touches.append((department, moment))
    await refuse_closed_touches(session, touches)


async def refuse_closed_transactions(
    session: AsyncSession | AsyncConnection, transaction_ids: Sequence[str] | Select[Any]
) -> None:
    """The check over entries already written: `transaction_ids` is a list of ids or a
    SELECT of one id column (set-based, for bulk writers). Raises PeriodClosed naming
    the first offending entry's department and period."""
    if isinstance(transaction_ids, Sequence) and not transaction_ids:
        return
    ids = list(transaction_ids) if isinstance(transaction_ids, Sequence) else transaction_ids
    stmt = (
        select(periods, entries.c.effective_at.label("entry_effective_at"))
        .select_from(
            entries.join(accounts, accounts.c.id == entries.c.account_id).join(
                periods,
                and_(
                    periods.c.department == accounts.c.department,
                    periods.c.starts_at <= entries.c.effective_at,
                    periods.c.ends_at > entries.c.effective_at,
                ),
            )
        )
        .where(entries.c.transaction_id.in_(ids))
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    if row is not None:
        raise _refusal(row.department, _closed(row), _aware(row.entry_effective_at))


# --- closing --------------------------------------------------------------------------


def _bad_period(message: str) -> ValidationFailed:
    return ValidationFailed(
        message, code="invalid_period", errors=[{"field": "period", "message": message}]
    )


def check_day(day: date, field: str) -> None:
    """ValidationFailed (invalid_date, naming `field`) for a day outside
    FIRST_DAY..LAST_DAY."""
    if not FIRST_DAY <= day <= LAST_DAY:
        message = f"must lie between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}"
        raise ValidationFailed(
            f"{field} {message}",
            code="invalid_date",
            errors=[{"field": field, "message": message}],
        )


def parse_period(period: str) -> tuple[str, date, date]:
    """("month" | "day", first day, the day after the last) of "YYYY-MM" | "YYYY-MM-DD"
    (ASCII digits, from FIRST_DAY); ValidationFailed (invalid_period) otherwise."""
    try:
        if match := _MONTH.match(period):
            year, month = int(match[1]), int(match[2])
            first = date(year, month, 1)
            after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
            kind = "month"
        elif match := _DAY.match(period):
            first = date(int(match[1]), int(match[2]), int(match[3]))
            after, kind = first + timedelta(days=1), "day"
        else:
            raise _bad_period("period must be YYYY-MM (a month) or YYYY-MM-DD (a day)")
    except (ValueError, OverflowError):
        raise _bad_period(f"{period!r} is not a real month or day") from None
    if first < FIRST_DAY:
        # (A future period is refused as period_not_ended, once its bounds are known.)
        raise _bad_period(f"period must not lie before {FIRST_DAY.isoformat()}")
    return kind, first, after


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone `name`, or Asia/Shanghai when it is empty or unknown."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of `day` in `tz`, in UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


async def department_timezone(session: AsyncSession, department: str) -> str:
    """The department's own timezone (its ledger settings), else Asia/Shanghai."""
    settings = await department_settings(session, department)
    return str(zone(settings.timezone).key)


def check_scope(department: str, scope: Sequence[str] | None) -> None:
    if scope is not None and department not in scope:
        raise Forbidden(
            f"this key does not cover department {department}", code="department_not_allowed"
        )


async def close_period(
    session: AsyncSession,
    *,
    department: str,
    period: str,
    closed_by: str,
    scope: Sequence[str] | None = None,
) -> tuple[ClosedPeriod, bool]:
    """Close `department`'s month or day; returns (the closed period, created now?).

    Closing the same period again returns it unchanged (False). A period that has not
    ended yet in the department's timezone cannot be closed (422 period_not_ended), nor
    a day of a month already closed (409 period_already_closed). Never commits.
    """
    check_scope(department, scope)
    kind, first, after = parse_period(period)
    await require_department(session, department)
    existing = await _find(session, department, period)
    if existing is not None:
        return existing, False
    tz_name = await department_timezone(session, department)
    tz = zone(tz_name)
    starts_at, ends_at = midnight(first, tz), midnight(after, tz)
    now = utcnow()
    if ends_at > now:
        raise ValidationFailed(
            f"period {period} has not ended yet in {tz_name} (it ends {ends_at.isoformat()})",
            code="period_not_ended",
            errors=[{"field": "period", "message": "has not ended yet"}],
        )
    if kind == "day":
        month = await _find(session, department, first.strftime("%Y-%m"))
        if month is not None:
            raise Conflict(
                f"{period} lies in {month.period}, which is already closed",
                code="period_already_closed",
            )
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        # Wait for postings in flight on the department's accounts (they hold row locks
        # until they commit) and keep new ones out until this close commits; postings
        # check after writing, so they see it (see refuse_closed).
        await conn.execute(
            select(accounts.c.id)
            .where(accounts.c.department == department)
            .order_by(accounts.c.id)
            .with_for_update(read=True)
        )
    values = {
        "id": new_id("lper"),
        "department": department,
        "period": period,
        "kind": kind,
        "timezone": tz_name,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "closed_by": closed_by,
        "closed_at": now,
    }
    try:
        async with session.begin_nested():
            await session.execute(periods.insert().values(**values))
    except IntegrityError:
        # A concurrent close of the same period won: it is the answer.
        found = await _find(session, department, period)
        if found is None:
            raise
        return found, False
    return ClosedPeriod(**values), True


async def _find(session: AsyncSession, department: str, period: str) -> ClosedPeriod | None:
    row = (
        await session.execute(
            select(periods).where(periods.c.department == department, periods.c.period == period)
        )
    ).first()
    return None if row is None else _closed(row)


async def list_periods(
    session: AsyncSession,
    *,
    scope: Sequence[str] | None = None,
    department: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> tuple[list[ClosedPeriod], str | None]:
    """Closed periods the reader may see, newest closing first, and the next cursor."""
    limit = check_limit(limit)
    if department is not None:
        check_scope(department, scope)
        await require_department(session, department)
    stmt = select(periods)
    if department is not None:
        stmt = stmt.where(periods.c.department == department)
    elif scope is not None:
        stmt = stmt.where(periods.c.department.in_(list(scope)))
    if after := check_cursor(cursor, "lper"):
        stmt = stmt.where(periods.c.id < after)
    rows = (await session.execute(stmt.order_by(periods.c.id.desc()).limit(limit + 1))).all()
    items = [_closed(row) for row in rows[:limit]]
    return items, (items[-1].id if len(rows) > limit else None)


async def closed_periods(
    session: AsyncSession, department: str, starts_at: datetime, ends_at: datetime
) -> list[ClosedPeriod]:
    """The department's closed periods overlapping [starts_at, ends_at), oldest first."""
    rows = await session.execute(
        select(periods)
        .where(
            periods.c.department == department,
            periods.c.starts_at < ends_at,
            periods.c.ends_at > starts_at,
        )
        .order_by(periods.c.starts_at)
    )
    return [_closed(row) for row in rows]
