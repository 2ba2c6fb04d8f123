"""The exceptions queue: what runs could not match, and how staff resolve it.

Resolving takes an action and a reason, and records who did it and when:

- `match`: pair the item by hand with `match_with` — ledger transaction ids (`txn_…`)
  or Stripe payout ids (`po_…`) for a Stripe record or bank line; one external record
  id (`rec_…`) for a ledger transaction or a payout. Several payouts may go with one
  bank line (their sum must be the line). A payout matched to a bank line is booked as
  arrived (booking.book_payout_arrival; a difference goes to platform:suspense).
- `adjust`: post a correcting entry through platform:suspense — never an edit. Our
  side's account (Stripe clearing for Stripe, platform:bank for the bank, bank in
  transit for a payout) moves by the difference the exception shows, and suspense
  takes the other side until someone finds out where the money belongs. It is
  effective now (the open period), linked by `corrects_id` to the transaction it
  corrects when there is one. For a payout whose bank line differs, the correction is
  the payout's arrival itself, with the difference in suspense. An `amount_differs`
  adjusted is also recorded as matched. (`outside_date_window` and `ambiguous` have
  nothing to adjust: match or accept them.)
- `accept`: close it with the reason; the books stay as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import (
    BANK,
    BANK_IN_TRANSIT,
    STRIPE_CLEARING,
    SUSPENSE,
    ensure_platform_accounts,
)
from ledger.journal import post_transaction
from ledger.models import (
    EXCEPTION_REASONS,
    accounts,
    entries,
    exceptions,
    external_records,
    matches,
    transactions,
)
from ledger.reconciliation import matching
from ledger.reconciliation.booking import BANK_SOURCES, book_payout_arrival
from ledger.reconciliation.matching import Item, Pairing, Rule
from ledger.reconciliation.runs import day_of, save_match
from ledger.types import Line
from onetrip.clock import utcnow
from onetrip.errors import Conflict, NotFound, ValidationFailed
from onetrip.pagination import page

ACTIONS = ("match", "adjust", "accept")
STATUSES = ("open", "resolved")
MAX_MATCH_WITH = 20
MAX_REASON = 500

MANUAL = Rule("manual", 0, 0, 100, "matched by hand")
ADJUSTED = Rule("adjusted", 0, 0, 100, "paired by hand, the difference through suspense")

#: the reasons `adjust` can correct
ADJUSTABLE = (
    matching.AMOUNT_DIFFERS,
    matching.MISSING_IN_LEDGER,
    matching.MISSING_IN_STRIPE,
    matching.MISSING_IN_BANK,
    matching.DUPLICATE,
)


class ExceptionNotFound(NotFound):
    code = "exception_not_found"
    title = "No such reconciliation exception"


class ExceptionResolved(Conflict):
    code = "exception_already_resolved"
    title = "The exception is already resolved"


@dataclass(frozen=True)
class ExceptionView:
    id: str
    run_id: str
    reason: str
    status: str
    item_kind: str
    item_id: str
    department: str | None
    currency: str
    amount: int
    counterpart_amount: int | None
    on_date: date
    detail: str
    candidates: list[dict[str, Any]]
    created_at: datetime
    resolution: str | None
    resolution_reason: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    adjustment_id: str | None


def view_of(row: Any) -> ExceptionView:
    return ExceptionView(
        id=row.id,
        run_id=row.run_id,
        reason=row.reason,
        status=row.status,
        item_kind=row.item_kind,
        item_id=row.item_id,
        department=row.department,
        currency=row.currency,
        amount=int(row.amount),
        counterpart_amount=None if row.counterpart_amount is None else int(row.counterpart_amount),
        on_date=row.on_date,
        detail=row.detail,
        candidates=list(row.candidates or []),
        created_at=row.created_at,
        resolution=row.resolution,
        resolution_reason=row.resolution_reason,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
        adjustment_id=row.adjustment_id,
    )


def _invalid(field: str, message: str, *, code: str = "validation_failed") -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[{"field": field, "message": message}])


def _visible(scope: Sequence[str] | None) -> Any:
    """Exceptions a key may see: all (scope None), else its departments' — payouts and
    bank lines have none and are for keys that see every department."""
    if scope is None:
        return true()
    return exceptions.c.department.in_(list(scope))


async def list_exceptions(
    session: AsyncSession,
    *,
    scope: Sequence[str] | None = None,
    status: str | None = None,
    department: str | None = None,
    reason: str | None = None,
    run_id: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> list[ExceptionView]:
    """Exceptions newest first, narrowed by status, department, reason and run; one more
    than `limit` when there is a next page (see onetrip.pagination.page)."""
    if status is not None and status not in STATUSES:
        raise _invalid("status", "must be open or resolved", code="invalid_status")
    if reason is not None and reason not in EXCEPTION_REASONS:
        raise _invalid(
            "reason", f"must be one of {', '.join(EXCEPTION_REASONS)}", code="invalid_reason"
        )
    stmt = select(exceptions).where(_visible(scope))
    if status is not None:
        stmt = stmt.where(exceptions.c.status == status)
    if department is not None:
        stmt = stmt.where(exceptions.c.department == department)
    if reason is not None:
        stmt = stmt.where(exceptions.c.reason == reason)
    if run_id is not None:
        stmt = stmt.where(exceptions.c.run_id == run_id)
    stmt = page(stmt, exceptions.c.id, cursor, limit, prefix="recexc")
    return [view_of(row) for row in (await session.execute(stmt)).all()]


async def get_exception(
    session: AsyncSession, exception_id: str, *, scope: Sequence[str] | None = None
) -> ExceptionView:
    row = await _load(session, exception_id, scope, lock=False)
    return view_of(row)


async def _load(
    session: AsyncSession, exception_id: str, scope: Sequence[str] | None, *, lock: bool
) -> Any:
    stmt = select(exceptions).where(exceptions.c.id == exception_id, _visible(scope))
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    if row is None:
        raise ExceptionNotFound(f"no reconciliation exception {exception_id}")
    return row


# --- resolving -------------------------------------------------------------------------------


async def resolve(
    session: AsyncSession,
    exception_id: str,
    *,
    action: str,
    reason: str,
    resolved_by: str,
    match_with: Sequence[str] | None = None,
    scope: Sequence[str] | None = None,
) -> ExceptionView:
    """Resolve an open exception (see the module docstring); never commits. 404 for an
    exception the key does not see, 409 `exception_already_resolved`, 422 for an action
    that does not fit (with the field and why)."""
    if action not in ACTIONS:
        raise _invalid("action", "must be match, adjust or accept", code="invalid_action")
    reason = (reason or "").strip()
    if not reason:
        raise _invalid("reason", "say why (it is kept with the resolution)", code="reason_required")
    if len(reason) > MAX_REASON:
        raise _invalid("reason", f"at most {MAX_REASON} characters")
    if action == "match" and not match_with:
        raise _invalid("match_with", "name what the item goes with", code="match_with_required")
    if action != "match" and match_with:
        raise _invalid("match_with", "only for action match")
    row = await _load(session, exception_id, scope, lock=True)
    if row.status != "open":
        raise ExceptionResolved(
            f"exception {exception_id} was resolved ({row.resolution}) by {row.resolved_by}"
        )
    now = utcnow()
    adjustment_id = None
    if action == "match":
        await _match(session, row, list(match_with or []), reason, resolved_by, now, scope)
    elif action == "adjust":
        adjustment_id = await _adjust(session, row, reason, resolved_by, now)
    await session.execute(
        update(exceptions)
        .where(exceptions.c.id == exception_id)
        .values(
            status="resolved",
            resolution=action,
            resolution_reason=reason,
            resolved_by=resolved_by,
            resolved_at=now,
            adjustment_id=adjustment_id,
        )
    )
    return view_of(await _load(session, exception_id, None, lock=False))


async def _item(session: AsyncSession, item_id: str) -> Item | None:
    """What an id names, as the rules see it: a ledger transaction (its Stripe-clearing
    or bank leg, else its debits), a booked Stripe payout, or an external record."""
    if item_id.startswith("po_"):
        stmt = (
            select(transactions.c.effective_at, entries.c.amount, entries.c.currency)
            .select_from(
                entries.join(transactions, transactions.c.id == entries.c.transaction_id).join(
                    accounts, accounts.c.id == entries.c.account_id
                )
            )
            .where(
                transactions.c.idempotency_key == f"stripe:{item_id}",
                accounts.c.code == BANK_IN_TRANSIT,
            )
        )
        found = (await session.execute(stmt)).first()
        if found is None:
            return None
        return Item("payout", item_id, int(found.amount), found.currency,
                    day_of(found.effective_at), key=item_id)  # fmt: skip
    if item_id.startswith("rec_"):
        record = (
            await session.execute(select(external_records).where(external_records.c.id == item_id))
        ).first()
        if record is None:
            return None
        kind = "bank" if record.source in BANK_SOURCES else "stripe"
        department = (record.raw or {}).get("payment_metadata[department]") or None
        return Item(kind, record.id, int(record.amount), record.currency, day_of(record.booked_on),
                    key=record.payment_id, department=department)  # fmt: skip
    stmt = (
        select(
            transactions.c.metadata,
            transactions.c.effective_at,
            entries.c.amount,
            entries.c.currency,
            accounts.c.code,
        )
        .select_from(
            entries.join(transactions, transactions.c.id == entries.c.transaction_id).join(
                accounts, accounts.c.id == entries.c.account_id
            )
        )
        .where(transactions.c.id == item_id)
    )
    legs = (await session.execute(stmt)).all()
    if not legs:
        return None
    preferred = [leg for leg in legs if leg.code in (STRIPE_CLEARING, BANK)]
    amount = preferred[0].amount if preferred else sum(leg.amount for leg in legs if leg.amount > 0)
    metadata = legs[0].metadata or {}
    return Item("ledger", item_id, int(amount), legs[0].currency, day_of(legs[0].effective_at),
                key=metadata.get("payment_id"), department=metadata.get("department"))  # fmt: skip


def _is_left(item: Item) -> bool:
    return item.kind in ("ledger", "payout")


async def _match(
    session: AsyncSession,
    row: Any,
    match_with: list[str],
    reason: str,
    resolved_by: str,
    now: datetime,
    scope: Sequence[str] | None,
) -> None:
    if len(match_with) > MAX_MATCH_WITH or len(set(match_with)) != len(match_with):
        raise _invalid("match_with", f"1 to {MAX_MATCH_WITH} different ids")
    subject = await _item(session, row.item_id)
    if subject is None:
        raise ExceptionNotFound(f"the item {row.item_id} of exception {row.id} is gone")
    others = []
    for other_id in match_with:
        other = await _item(session, other_id)
        # A scoped key pairs only what it sees: its departments' ledger items, and
        # records of no department (bank lines, payouts) or of its own (a Stripe charge's
        # metadata names its department: another's is that department's to pair).
        if other is None or (
            scope is not None
            and (other.kind == "ledger" or other.department is not None)
            and other.department not in scope
        ):
            raise _invalid("match_with", f"{other_id} is not a ledger transaction, payout or "
                           "record this key sees", code="match_with_not_found")  # fmt: skip
        others.append(other)
    if _is_left(subject):
        if len(others) != 1 or _is_left(others[0]):
            raise _invalid("match_with", "a ledger item goes with one Stripe record or bank line")
        lefts, right = [subject], others[0]
    else:
        if not all(_is_left(other) for other in others):
            raise _invalid(
                "match_with", "an external record goes with ledger transactions or payouts"
            )
        lefts, right = others, subject
    if any(other.currency != subject.currency for other in others):
        raise _invalid("match_with", "the items are in different currencies")
    taken = (
        (
            await session.execute(
                select(matches.c.left_id).where(matches.c.left_id.in_([left.id for left in lefts]))
            )
        )
        .scalars()
        .all()
    )
    if taken:
        raise Conflict(f"{', '.join(taken)} is matched already", code="already_matched")
    right_taken = await session.scalar(
        select(matches.c.left_id).where(matches.c.right_id == right.id).limit(1)
    )
    if right_taken is not None:
        raise Conflict(
            f"{right.id} is matched already (with {right_taken})", code="already_matched"
        )
    payouts = [left for left in lefts if left.kind == "payout"]
    if right.kind == "bank" and len(payouts) > 1 and sum(p.amount for p in payouts) != right.amount:
        raise _invalid(
            "match_with", "the payouts do not add up to the bank line", code="amounts_differ"
        )
    department = row.department or next(
        (left.department for left in lefts if left.department), None
    )
    pairing = Pairing(tuple(lefts), right, MANUAL, MANUAL.score, f"by hand: {reason}")
    await save_match(session, pairing, department=department, run_id=None,
                     matched_by=resolved_by, at=now, exception_id=row.id)  # fmt: skip
    await _close_siblings(session, row.id, [*(left.id for left in lefts), right.id],
                          resolved_by, now)  # fmt: skip


async def _close_siblings(
    session: AsyncSession, exception_id: str, item_ids: list[str], resolved_by: str, now: datetime
) -> None:
    """The other open exceptions of items now matched (the payout's missing_in_bank when
    its line is matched by hand) are resolved with them."""
    await session.execute(
        update(exceptions)
        .where(
            exceptions.c.status == "open",
            exceptions.c.id != exception_id,
            exceptions.c.item_id.in_(item_ids),
            exceptions.c.reason.in_(
                [
                    matching.MISSING_IN_BANK,
                    matching.MISSING_IN_LEDGER,
                    matching.MISSING_IN_STRIPE,
                    matching.AMBIGUOUS,
                    matching.OUTSIDE_DATE_WINDOW,
                ]
            ),
        )
        .values(
            status="resolved",
            resolution="matched",
            resolution_reason=f"matched by hand with exception {exception_id}",
            resolved_by=resolved_by,
            resolved_at=now,
        )
    )


async def _adjust(
    session: AsyncSession, row: Any, reason: str, resolved_by: str, now: datetime
) -> str:
    if row.reason not in ADJUSTABLE:
        raise _invalid(
            "action",
            f"{row.reason} has nothing to adjust: match it or accept it",
            code="adjust_not_applicable",
        )
    subject = await _item(session, row.item_id)
    if subject is None:
        raise ExceptionNotFound(f"the item {row.item_id} of exception {row.id} is gone")
    counterpart = None
    if row.reason == matching.AMOUNT_DIFFERS and row.candidates:
        counterpart = await _item(session, row.candidates[0]["id"])
    # A payout's bank line that differs: the payout's arrival is the correction.
    if subject.kind == "bank" and counterpart is not None and counterpart.kind == "payout":
        arrival = await book_payout_arrival(session, counterpart.id, subject.id)
        pairing = Pairing((counterpart,), subject, ADJUSTED, ADJUSTED.score, f"adjusted: {reason}")
        await _pair_without_booking(session, pairing, row, resolved_by, now)
        return arrival.id
    account = {
        "stripe": STRIPE_CLEARING,
        "bank": BANK,
        "payout": BANK_IN_TRANSIT,
        "ledger": STRIPE_CLEARING,
    }[subject.kind]
    corrects = None
    if row.reason == matching.AMOUNT_DIFFERS:
        if row.counterpart_amount is None:
            raise _invalid("action", "the exception shows no other amount to adjust to")
        if subject.kind == "payout":
            delta = int(row.counterpart_amount) - subject.amount  # Stripe's totals vs booked
            corrects = await _transaction_id(session, f"stripe:{subject.id}")
        else:
            delta = subject.amount - int(row.counterpart_amount)
            corrects = (
                counterpart.id if counterpart is not None and counterpart.kind == "ledger" else None
            )
    elif row.reason in (matching.MISSING_IN_LEDGER, matching.DUPLICATE):
        delta = subject.amount  # money we hold and did not book
    elif row.reason == matching.MISSING_IN_STRIPE:
        delta = -subject.amount  # booked as held at Stripe, and it is not there
        corrects = subject.id
    else:  # missing_in_bank
        delta = -subject.amount  # in transit, and it never arrived
        corrects = await _transaction_id(session, f"stripe:{subject.id}")
    if delta == 0:
        raise _invalid("action", "there is no difference to adjust")
    await ensure_platform_accounts(session, subject.currency)
    posted = await post_transaction(
        session,
        idempotency_key=f"reconciliation:{row.id}:adjust",
        description=f"Reconciliation adjustment ({row.reason}) of {subject.id}: {reason}",
        lines=[Line(account, delta, subject.currency), Line(SUSPENSE, -delta, subject.currency)],
        metadata={
            "kind": "reconciliation_adjustment",
            "exception_id": row.id,
            "reason": row.reason,
            "item_id": subject.id,
            "department": row.department,
            "adjusted_by": resolved_by,
        },
        corrects_id=corrects,
    )
    if counterpart is not None and row.reason == matching.AMOUNT_DIFFERS:
        left, right = (subject, counterpart) if _is_left(subject) else (counterpart, subject)
        pairing = Pairing((left,), right, ADJUSTED, ADJUSTED.score, f"adjusted: {reason}")
        await _pair_without_booking(session, pairing, row, resolved_by, now)
    return posted.id


async def _pair_without_booking(
    session: AsyncSession, pairing: Pairing, row: Any, resolved_by: str, now: datetime
) -> None:
    left = pairing.lefts[0]
    taken = await session.scalar(select(matches.c.id).where(matches.c.left_id == left.id))
    if taken is not None:
        return
    await session.execute(
        matches.insert(),
        [
            {
                "run_id": None,
                "exception_id": row.id,
                "rule": pairing.rule.name,
                "score": pairing.score,
                "reason": pairing.reason[:300],
                "left_kind": "payout" if left.kind == "payout" else "ledger",
                "left_id": left.id,
                "right_id": pairing.right.id,
                "department": row.department,
                "currency": pairing.right.currency,
                "expected_amount": left.amount,
                "actual_amount": pairing.right.amount,
                "on_date": left.on,
                "matched_by": resolved_by,
                "matched_at": now,
            }
        ],
    )


async def _transaction_id(session: AsyncSession, key: str) -> str | None:
    return await session.scalar(
        select(transactions.c.id).where(transactions.c.idempotency_key == key)
    )
