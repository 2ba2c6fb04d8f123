"""The matching rules, pure: which items go together, with what score and why.

Identifiers first, tolerance last. A rule pairs our side (`left`: a ledger transaction,
a Stripe payout) with theirs (`right`: a Stripe record, a bank line):

1. by key (`pair_by_key`): the same identifier on both sides — our payment id in the
   Stripe charge's metadata, the payout id in the bank line's reference. The pair is
   a match when the amounts are equal and the dates within the rule's window, else an
   `amount_differs` or `outside_date_window` finding; a second right for a key that
   takes one is a `duplicate`;
2. by amount (`match_by_amount`): one left and one right within the rule's tolerance
   (minor units) and date window, each the other's only candidate; two or more
   candidates are `ambiguous` and never matched;
3. by sum (`match_by_sum`): several lefts of the window adding up exactly to one right
   (a bank line settling two payouts at once).

Every match and every finding carries a score (0..100) and the reason in words. Nothing
here touches a database: runs.py loads the items, applies these, and stores the result.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

#: Exception reason codes (ledger/models.py EXCEPTION_REASONS).
MISSING_IN_BANK = "missing_in_bank"
MISSING_IN_LEDGER = "missing_in_ledger"
MISSING_IN_STRIPE = "missing_in_stripe"
AMOUNT_DIFFERS = "amount_differs"
OUTSIDE_DATE_WINDOW = "outside_date_window"
DUPLICATE = "duplicate"
AMBIGUOUS = "ambiguous"

#: what a reason counts as in a run's totals
UNMATCHED_LEDGER_REASONS = (MISSING_IN_BANK, MISSING_IN_STRIPE)
UNMATCHED_EXTERNAL_REASONS = (MISSING_IN_LEDGER,)
DISCREPANCY_REASONS = (AMOUNT_DIFFERS, OUTSIDE_DATE_WINDOW, DUPLICATE, AMBIGUOUS)

#: at most this many lefts are tried together against one right (match_by_sum)
MAX_SUM_PARTS = 4
#: and only when a right has at most this many candidates (2^12 subsets at worst)
MAX_SUM_CANDIDATES = 12


@dataclass(frozen=True)
class Rule:
    """One way of finding a counterpart: its amount tolerance in minor units (0 =
    exactly), its date window in days either side, and the score of a perfect pair."""

    name: str
    tolerance: int
    window_days: int
    score: int
    description: str
    #: a key takes one right only (a payment is charged once, a payout lands once): any
    #: further right with the key is a duplicate
    one_per_key: bool = True

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "tolerance": self.tolerance,
            "window_days": self.window_days,
            "score": self.score,
            "description": self.description,
        }


PAYMENT_ID = Rule(
    "payment_id", 0, 3, 100, "our payment id in the Stripe charge's metadata, same amount"
)
REFUND = Rule(
    "refund",
    0,
    3,
    95,
    "the refunded payment's id in the Stripe refund's metadata, same amount",
    one_per_key=False,
)
BANK_REFERENCE = Rule(
    "bank_reference",
    0,
    5,
    100,
    "the Stripe payout id in the bank line's end-to-end id or reference, same amount",
)
BANK_AMOUNT = Rule(
    "bank_amount",
    100,
    3,
    80,
    "the only payout within the tolerance and the date window of the bank line",
)
BANK_SUM = Rule(
    "bank_sum",
    0,
    3,
    60,
    "the only set of payouts of the date window adding up to the bank line exactly",
)
DEFAULT_RULES: tuple[Rule, ...] = (PAYMENT_ID, REFUND, BANK_REFERENCE, BANK_AMOUNT, BANK_SUM)


@dataclass(frozen=True)
class Item:
    """One side's record of a money movement, as the rules see it.

    `kind`: "ledger", "stripe", "bank" or "payout"; `amount` signed minor units as that
    side shows it (a charge +, a refund −, a payout as it reaches the bank +); `key` the
    identifier it is paired by (a payment id, a payout id), if any; `text` what a bank
    line says (reference, end-to-end id, counterparty), searched for payout ids.
    """

    kind: str
    id: str
    amount: int
    currency: str
    on: date
    key: str | None = None
    text: str = ""
    department: str | None = None

    def sort_key(self) -> tuple[date, str]:
        return (self.on, self.id)


@dataclass(frozen=True)
class Candidate:
    item: Item
    score: int
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.item.kind,
            "id": self.item.id,
            "amount": self.item.amount,
            "currency": self.item.currency,
            "on_date": self.item.on.isoformat(),
            "score": self.score,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Pairing:
    """A match: `lefts` (one, or several for a sum) go with `right`."""

    lefts: tuple[Item, ...]
    right: Item
    rule: Rule
    score: int
    reason: str


@dataclass(frozen=True)
class Finding:
    """An exception: `item` could not be matched, for `reason` (a code above)."""

    reason: str
    item: Item
    detail: str
    candidates: tuple[Candidate, ...] = ()
    counterpart_amount: int | None = None


@dataclass
class Outcome:
    """What a rule decided, and what it left for the next rule."""

    matches: list[Pairing] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    lefts: list[Item] = field(default_factory=list)  # still unpaired
    rights: list[Item] = field(default_factory=list)  # still unpaired

    def held(self) -> set[str]:
        """Ids of items a finding already speaks for (not to be reported missing)."""
        ids = {finding.item.id for finding in self.findings}
        for finding in self.findings:
            ids.update(c.item.id for c in finding.candidates)
        return ids


# --- scoring ----------------------------------------------------------------------------


def days_apart(a: date, b: date) -> int:
    return abs((a - b).days)


def score(rule: Rule, difference: int, days: int) -> int:
    """The rule's score, less up to 20 for the amount's distance within the tolerance
    and 5 a day apart; never below 1 for a candidate that is one at all."""
    amount_penalty = 0 if difference == 0 else 1 + (19 * abs(difference)) // max(rule.tolerance, 1)
    return max(1, rule.score - min(amount_penalty, 20) - 5 * days)


def _money(amount: int) -> str:
    return f"{amount:+d}"


def describe(rule: Rule, left: Item, right: Item) -> str:
    difference = right.amount - left.amount
    days = days_apart(left.on, right.on)
    amounts = "amounts equal" if difference == 0 else f"amounts differ by {_money(difference)}"
    return f"{rule.name}: {amounts}, {days} day(s) apart"


# --- 1. by key ----------------------------------------------------------------------------


def judge(left: Item, right: Item, rule: Rule) -> Pairing | Finding:
    """A pair found by identifier: a match when the amounts agree (within the rule's
    tolerance, 0 for identifier rules) in one currency and the dates within its window;
    otherwise a finding on the right item naming the left as its candidate."""
    days = days_apart(left.on, right.on)
    difference = right.amount - left.amount
    reason = describe(rule, left, right)
    candidate = Candidate(left, score(rule, difference, days), reason)
    if left.currency != right.currency:
        return Finding(
            AMOUNT_DIFFERS,
            right,
            f"{rule.name}: {right.currency} against {left.currency} {left.id}",
            (candidate,),
            left.amount,
        )
    if abs(difference) > rule.tolerance:
        return Finding(
            AMOUNT_DIFFERS,
            right,
            f"{rule.name}: {right.amount} against {left.amount} of {left.id} "
            f"({_money(difference)})",
            (candidate,),
            left.amount,
        )
    if days > rule.window_days:
        return Finding(
            OUTSIDE_DATE_WINDOW,
            right,
            f"{rule.name}: {days} days from {left.id}, the window is {rule.window_days}",
            (candidate,),
            left.amount,
        )
    return Pairing((left,), right, rule, candidate.score, reason)


def pair_by_key(
    lefts: Iterable[Item],
    rights: Iterable[Item],
    rule: Rule,
    *,
    taken: Iterable[Item] = (),
) -> Outcome:
    """Pair items sharing a key. `taken` are lefts matched before (by an earlier run):
    under a one-per-key rule a right with their key is a duplicate.

    Within a key, equal amounts pair first, oldest with oldest; what is left pairs one
    to one when it is one left and one right (judged: it may differ), is `ambiguous`
    when it is several of each, and is a `duplicate` (one-per-key rules, or a right
    equal to a right paired already) when no left is left. Items without a key, or
    whose key the other side lacks, are returned unpaired.
    """
    outcome = Outcome()
    by_key_left: dict[str, list[Item]] = defaultdict(list)
    by_key_right: dict[str, list[Item]] = defaultdict(list)
    for item in lefts:
        if item.key is None:
            outcome.lefts.append(item)
        else:
            by_key_left[item.key].append(item)
    for item in rights:
        if item.key is None:
            outcome.rights.append(item)
        else:
            by_key_right[item.key].append(item)
    taken_by_key: dict[str, list[Item]] = defaultdict(list)
    for item in taken:
        if item.key is not None:
            taken_by_key[item.key].append(item)

    for key in sorted(set(by_key_left) | set(by_key_right)):
        group_lefts = sorted(by_key_left.get(key, []), key=Item.sort_key)
        group_rights = sorted(by_key_right.get(key, []), key=Item.sort_key)
        if not group_rights:
            outcome.lefts.extend(group_lefts)
            continue
        earlier = taken_by_key.get(key, [])
        if not group_lefts and not earlier:
            outcome.rights.extend(group_rights)
            continue
        # What holds the key under a one-per-key rule: the left matched before, or
        # the first right judged now; every further right is its duplicate.
        holder: Item | None = earlier[0] if earlier else None
        paired: list[Item] = []
        remaining_rights: list[Item] = []
        # equal amounts first, oldest with oldest
        for right in group_rights:
            twin = next(
                (
                    left
                    for left in group_lefts
                    if left.amount == right.amount and left.currency == right.currency
                ),
                None,
            )
            if twin is None or (rule.one_per_key and holder is not None):
                remaining_rights.append(right)
                continue
            group_lefts.remove(twin)
            holder = right
            verdict = judge(twin, right, rule)
            if isinstance(verdict, Pairing):
                outcome.matches.append(verdict)
                paired.append(right)
            else:
                outcome.findings.append(verdict)
        for right in remaining_rights:
            if rule.one_per_key and holder is not None:
                outcome.findings.append(_duplicate(right, holder, rule))
            elif rule.one_per_key and group_lefts:
                holder = right
                _judged(outcome, judge(group_lefts.pop(0), right, rule))
            elif len(group_lefts) == 1 and len(remaining_rights) == 1:
                _judged(outcome, judge(group_lefts.pop(), right, rule))
            elif group_lefts:
                outcome.findings.append(
                    Finding(
                        AMBIGUOUS,
                        right,
                        f"{rule.name}: {len(group_lefts)} items with key {key}, none of the "
                        "same amount",
                        tuple(
                            Candidate(
                                left,
                                score(rule, right.amount - left.amount, 0),
                                describe(rule, left, right),
                            )
                            for left in group_lefts
                        ),
                    )
                )
            else:
                alike = next((p for p in paired if p.amount == right.amount), None)
                if alike is not None:
                    outcome.findings.append(_duplicate(right, alike, rule))
                else:
                    outcome.rights.append(right)
        outcome.lefts.extend(group_lefts)
    held = outcome.held()
    outcome.lefts = [left for left in outcome.lefts if left.id not in held]
    return outcome


def _judged(outcome: Outcome, verdict: Pairing | Finding) -> None:
    if isinstance(verdict, Pairing):
        outcome.matches.append(verdict)
    else:
        outcome.findings.append(verdict)


def _duplicate(right: Item, first: Item, rule: Rule) -> Finding:
    return Finding(
        DUPLICATE,
        right,
        f"{rule.name}: {right.key} is already taken by {first.id}",
        (Candidate(first, rule.score, f"{rule.name}: the same key, taken before"),),
        first.amount,
    )


# --- 2. by amount -----------------------------------------------------------------------


def candidates_for(right: Item, lefts: Sequence[Item], rule: Rule) -> list[Candidate]:
    """Lefts within the rule's tolerance and window of `right`, best first."""
    found = []
    for left in lefts:
        if left.currency != right.currency:
            continue
        difference = right.amount - left.amount
        days = days_apart(left.on, right.on)
        if abs(difference) <= rule.tolerance and days <= rule.window_days:
            found.append(
                Candidate(left, score(rule, difference, days), describe(rule, left, right))
            )
    found.sort(key=lambda c: (-c.score, c.item.sort_key()))
    return found


def match_by_amount(lefts: Sequence[Item], rights: Sequence[Item], rule: Rule) -> Outcome:
    """One to one within the tolerance and window, when each is the other's only
    candidate: equal amounts match, others are `amount_differs` naming the pair. A right
    with several candidates, or whose candidate has several rights, is `ambiguous`
    (unless those rights are alike — same amount, text and day window — when the oldest
    pairs and the others are duplicates)."""
    outcome = Outcome()
    by_right = {right.id: candidates_for(right, lefts, rule) for right in rights}
    rights_of: dict[str, list[Item]] = defaultdict(list)
    for right in rights:
        for candidate in by_right[right.id]:
            rights_of[candidate.item.id].append(right)
    decided: set[str] = set()
    used_lefts: set[str] = set()
    for right in sorted(rights, key=Item.sort_key):
        if right.id in decided:
            continue
        found = by_right[right.id]
        if not found:
            continue
        if len(found) == 1:
            left = found[0].item
            rivals = sorted(rights_of[left.id], key=Item.sort_key)
            if len(rivals) > 1:
                if all(_alike(rival, rivals[0], rule) for rival in rivals) and all(
                    len(by_right[r.id]) == 1 for r in rivals
                ):
                    first, *others = rivals
                    _pair_or_differ(outcome, left, first, found[0], rule)
                    for other in others:
                        outcome.findings.append(_duplicate_line(other, first, rule))
                    decided.update(r.id for r in rivals)
                    used_lefts.add(left.id)
                    continue
                outcome.findings.append(
                    Finding(
                        AMBIGUOUS,
                        right,
                        f"{rule.name}: {left.id} is a candidate for {len(rivals)} lines",
                        tuple(found),
                    )
                )
                decided.add(right.id)
                continue
            _pair_or_differ(outcome, left, right, found[0], rule)
            decided.add(right.id)
            used_lefts.add(left.id)
            continue
        outcome.findings.append(
            Finding(
                AMBIGUOUS,
                right,
                f"{rule.name}: {len(found)} candidates within {rule.tolerance} and "
                f"{rule.window_days} day(s)",
                tuple(found),
            )
        )
        decided.add(right.id)
    held = outcome.held()
    outcome.lefts = [left for left in lefts if left.id not in used_lefts and left.id not in held]
    outcome.rights = [right for right in rights if right.id not in decided]
    return outcome


def _pair_or_differ(
    outcome: Outcome, left: Item, right: Item, found: Candidate, rule: Rule
) -> None:
    if right.amount == left.amount:
        outcome.matches.append(Pairing((left,), right, rule, found.score, found.reason))
    else:
        outcome.findings.append(
            Finding(
                AMOUNT_DIFFERS,
                right,
                f"{rule.name}: {right.amount} against {left.amount} of {left.id} "
                f"({_money(right.amount - left.amount)}), within the tolerance of "
                f"{rule.tolerance}",
                (found,),
                left.amount,
            )
        )


def _alike(a: Item, b: Item, rule: Rule) -> bool:
    return (
        a.amount == b.amount
        and a.currency == b.currency
        and a.text == b.text
        and days_apart(a.on, b.on) <= rule.window_days
    )


def _duplicate_line(right: Item, first: Item, rule: Rule) -> Finding:
    return Finding(
        DUPLICATE,
        right,
        f"{rule.name}: the same amount and text as {first.id}",
        (
            Candidate(
                first,
                rule.score,
                f"{rule.name}: alike, {days_apart(first.on, right.on)} day(s) apart",
            ),
        ),
        first.amount,
    )


def duplicates_of(rights: Sequence[Item], paired: Sequence[Item], rule: Rule) -> Outcome:
    """Rights alike a right matched already (same amount, text and currency within the
    window): the bank listed one line twice. The rest are returned unpaired."""
    outcome = Outcome()
    for right in rights:
        twin = next((p for p in paired if p.id != right.id and _alike(right, p, rule)), None)
        if twin is None:
            outcome.rights.append(right)
        else:
            outcome.findings.append(_duplicate_line(right, twin, rule))
    return outcome


# --- 3. by sum ------------------------------------------------------------------------------


def match_by_sum(lefts: Sequence[Item], rights: Sequence[Item], rule: Rule) -> Outcome:
    """Several lefts (2..MAX_SUM_PARTS) of one currency within the window adding up
    exactly to a right: matched when that set is the only one, `ambiguous` otherwise."""
    outcome = Outcome()
    used: set[str] = set()
    for right in sorted(rights, key=Item.sort_key):
        pool = [
            left
            for left in lefts
            if left.id not in used
            and left.currency == right.currency
            and days_apart(left.on, right.on) <= rule.window_days
            and (left.amount > 0) == (right.amount > 0)
        ]
        if len(pool) < 2 or len(pool) > MAX_SUM_CANDIDATES:
            outcome.rights.append(right)
            continue
        sets = [
            combo
            for size in range(2, min(MAX_SUM_PARTS, len(pool)) + 1)
            for combo in itertools.combinations(pool, size)
            if sum(item.amount for item in combo) == right.amount
        ]
        if not sets:
            outcome.rights.append(right)
        elif len(sets) == 1:
            combo = sets[0]
            days = max(days_apart(left.on, right.on) for left in combo)
            outcome.matches.append(
                Pairing(
                    tuple(combo),
                    right,
                    rule,
                    score(rule, 0, days),
                    f"{rule.name}: {len(combo)} payouts add up to the line, "
                    f"at most {days} day(s) apart",
                )
            )
            used.update(left.id for left in combo)
        else:
            members = {left.id: left for combo in sets for left in combo}
            outcome.findings.append(
                Finding(
                    AMBIGUOUS,
                    right,
                    f"{rule.name}: {len(sets)} sets of payouts add up to the line",
                    tuple(
                        Candidate(left, score(rule, 0, days_apart(left.on, right.on)), rule.name)
                        for left in sorted(members.values(), key=Item.sort_key)
                    ),
                )
            )
    held = outcome.held()
    outcome.lefts = [left for left in lefts if left.id not in used and left.id not in held]
    return outcome


# --- payouts: finding the payout id in a bank line, control totals ---------------------------


def payout_key_in(text: str, payout_ids: Iterable[str]) -> str | None:
    """The one payout id the text names (Stripe's `po_…`), or None (none, or several)."""
    named = [payout for payout in payout_ids if payout and payout in text]
    return named[0] if len(named) == 1 else None


#: Stripe reporting categories, grouped as a payout's control totals show them
CHARGE_CATEGORIES = frozenset({"charge", "payment"})
REFUND_CATEGORIES = frozenset({"refund", "payment_refund", "refund_failure"})
DISPUTE_CATEGORIES = frozenset({"dispute", "dispute_reversal"})
PAYOUT_CATEGORIES = frozenset({"payout"})


@dataclass(frozen=True)
class ControlTotals:
    """A payout's balance transactions summed: gross − fees − refunds − disputes (+
    other) = net, and net is what the payout should bring to the bank."""

    payout_id: str
    currency: str
    gross: int  # charges, gross
    fees: int  # every fee, positive
    refunds: int  # refunds, positive
    disputes: int  # disputes net of reversals, positive when money left
    other: int  # adjustments and anything else, signed
    net: int
    transactions: int
    payout_amount: int | None  # what the payout itself says (its own balance transaction)

    @property
    def balanced(self) -> bool:
        computed = self.gross - self.fees - self.refunds - self.disputes + self.other
        return computed == self.net and (
            self.payout_amount is None or self.payout_amount == self.net
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "payout_id": self.payout_id,
            "currency": self.currency,
            "gross": self.gross,
            "fees": self.fees,
            "refunds": self.refunds,
            "disputes": self.disputes,
            "other": self.other,
            "net": self.net,
            "transactions": self.transactions,
            "payout_amount": self.payout_amount,
            "balanced": self.balanced,
        }


def control_totals(
    payout_id: str, currency: str, rows: Iterable[tuple[str | None, int, int, int, int]]
) -> ControlTotals:
    """Totals of a payout from its balance transactions, as `(category, amount, fee,
    net, count)` rows (one transaction each, count 1, or sums of `count` of them); the
    payout's own transaction (category payout, amount −net) gives payout_amount."""
    gross = fees = refunds = disputes = other = net = count = 0
    payout_amount: int | None = None
    for category, amount, fee, row_net, rows_count in rows:
        if category in PAYOUT_CATEGORIES:
            payout_amount = (payout_amount or 0) - amount
            continue
        count += rows_count
        fees += fee
        net += row_net
        if category in CHARGE_CATEGORIES:
            gross += amount
        elif category in REFUND_CATEGORIES:
            refunds -= amount
        elif category in DISPUTE_CATEGORIES:
            disputes -= amount
        else:
            other += amount
    return ControlTotals(
        payout_id, currency, gross, fees, refunds, disputes, other, net, count, payout_amount
    )
