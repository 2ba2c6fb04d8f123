"""The matching rules on their own: identifiers first, tolerance last, never a guess."""

from __future__ import annotations

from datetime import date, timedelta

from ledger.reconciliation import matching
from ledger.reconciliation.matching import (
    BANK_AMOUNT,
    BANK_REFERENCE,
    BANK_SUM,
    PAYMENT_ID,
    REFUND,
    Item,
    Pairing,
)

DAY = date(2026, 11, 16)


def ledger(
    id_: str, amount: int, key: str | None = None, on: date = DAY, dept: str = "PSB"
) -> Item:
    return Item("ledger", id_, amount, "CNY", on, key=key, department=dept)


def stripe(id_: str, amount: int, key: str | None = None, on: date = DAY) -> Item:
    return Item("stripe", id_, amount, "CNY", on, key=key)


def payout(id_: str, amount: int, on: date = DAY) -> Item:
    return Item("payout", id_, amount, "CNY", on, key=id_)


def bank(
    id_: str, amount: int, text: str = "STRIPE 转账", on: date = DAY, key: str | None = None
) -> Item:
    return Item("bank", id_, amount, "CNY", on, key=key, text=text)


def reasons(outcome: matching.Outcome) -> list[tuple[str, str]]:
    return sorted((f.reason, f.item.id) for f in outcome.findings)


def pairs(outcome: matching.Outcome) -> list[tuple[tuple[str, ...], str]]:
    return sorted((tuple(left.id for left in m.lefts), m.right.id) for m in outcome.matches)


# --- by key ----------------------------------------------------------------------------


def test_a_charge_with_our_payment_id_and_the_same_amount_matches_with_full_score():
    outcome = matching.pair_by_key(
        [ledger("txn_a", 12000, "pay_1")], [stripe("rec_a", 12000, "pay_1")], PAYMENT_ID
    )
    assert pairs(outcome) == [(("txn_a",), "rec_a")]
    assert outcome.matches[0].score == 100
    assert outcome.matches[0].reason == "payment_id: amounts equal, 0 day(s) apart"
    assert not outcome.findings and not outcome.lefts and not outcome.rights


def test_a_day_apart_costs_five_points_and_is_said():
    outcome = matching.pair_by_key(
        [ledger("txn_a", 12000, "pay_1", on=DAY)],
        [stripe("rec_a", 12000, "pay_1", on=DAY - timedelta(days=1))],
        PAYMENT_ID,
    )
    assert outcome.matches[0].score == 95
    assert "1 day(s) apart" in outcome.matches[0].reason


def test_the_same_payment_id_with_another_amount_is_amount_differs_naming_both():
    outcome = matching.pair_by_key(
        [ledger("txn_a", 12000, "pay_1")], [stripe("rec_a", 12001, "pay_1")], PAYMENT_ID
    )
    assert reasons(outcome) == [("amount_differs", "rec_a")]
    finding = outcome.findings[0]
    assert finding.counterpart_amount == 12000
    assert [c.item.id for c in finding.candidates] == ["txn_a"]
    assert "+1" in finding.detail
    assert not outcome.matches and not outcome.lefts and not outcome.rights


def test_the_same_payment_id_beyond_the_window_is_outside_date_window():
    outcome = matching.pair_by_key(
        [ledger("txn_a", 12000, "pay_1", on=DAY)],
        [stripe("rec_a", 12000, "pay_1", on=DAY + timedelta(days=PAYMENT_ID.window_days + 1))],
        PAYMENT_ID,
    )
    assert reasons(outcome) == [("outside_date_window", "rec_a")]


def test_a_second_charge_for_one_payment_is_a_duplicate_of_the_first():
    outcome = matching.pair_by_key(
        [ledger("txn_a", 12000, "pay_1")],
        [
            stripe("rec_a", 12000, "pay_1"),
            stripe("rec_b", 12000, "pay_1", on=DAY + timedelta(days=1)),
        ],
        PAYMENT_ID,
    )
    assert pairs(outcome) == [(("txn_a",), "rec_a")]
    assert reasons(outcome) == [("duplicate", "rec_b")]


def test_a_charge_for_a_payment_matched_in_an_earlier_run_is_a_duplicate():
    outcome = matching.pair_by_key(
        [], [stripe("rec_b", 12000, "pay_1")], PAYMENT_ID, taken=[ledger("txn_a", 12000, "pay_1")]
    )
    assert reasons(outcome) == [("duplicate", "rec_b")]
    assert outcome.findings[0].candidates[0].item.id == "txn_a"


def test_items_whose_key_the_other_side_lacks_are_left_unpaired():
    outcome = matching.pair_by_key(
        [ledger("txn_a", 12000, "pay_1"), ledger("txn_x", 5000, None)],
        [stripe("rec_b", 12000, "pay_2")],
        PAYMENT_ID,
    )
    assert not outcome.matches and not outcome.findings
    assert sorted(i.id for i in outcome.lefts) == ["txn_a", "txn_x"]
    assert [i.id for i in outcome.rights] == ["rec_b"]


def test_refunds_of_one_payment_pair_by_amount_whatever_their_order():
    outcome = matching.pair_by_key(
        [ledger("txn_r1", -2000, "pay_1", on=DAY), ledger("txn_r2", -5000, "pay_1", on=DAY)],
        [stripe("rec_r2", -5000, "pay_1", on=DAY), stripe("rec_r1", -2000, "pay_1", on=DAY)],
        REFUND,
    )
    assert pairs(outcome) == [(("txn_r1",), "rec_r1"), (("txn_r2",), "rec_r2")]


def test_two_refunds_of_one_payment_neither_of_the_amount_is_ambiguous_and_never_matched():
    outcome = matching.pair_by_key(
        [ledger("txn_r1", -2000, "pay_1"), ledger("txn_r2", -5000, "pay_1")],
        [stripe("rec_r9", -3000, "pay_1")],
        REFUND,
    )
    assert reasons(outcome) == [("ambiguous", "rec_r9")]
    assert sorted(c.item.id for c in outcome.findings[0].candidates) == ["txn_r1", "txn_r2"]
    assert not outcome.matches
    assert not outcome.lefts  # spoken for by the finding: not reported missing


def test_a_bank_line_naming_a_payout_that_differs_and_its_copy_are_amount_differs_and_duplicate():
    line = bank("rec_1", 821461, "STRIPE po_P1", key="po_P1")
    copy = bank("rec_2", 821461, "STRIPE po_P1", key="po_P1")
    outcome = matching.pair_by_key([payout("po_P1", 821462)], [line, copy], BANK_REFERENCE)
    assert reasons(outcome) == [("amount_differs", "rec_1"), ("duplicate", "rec_2")]
    assert not outcome.lefts


# --- by amount -------------------------------------------------------------------------


def test_the_only_payout_within_tolerance_and_window_matches_when_equal():
    outcome = matching.match_by_amount(
        [payout("po_A", 763929, on=DAY), payout("po_B", 500000, on=DAY)],
        [bank("rec_1", 763929, on=DAY + timedelta(days=1))],
        BANK_AMOUNT,
    )
    assert pairs(outcome) == [(("po_A",), "rec_1")]
    assert outcome.matches[0].score == BANK_AMOUNT.score - 5
    assert [p.id for p in outcome.lefts] == ["po_B"]


def test_one_fen_short_within_tolerance_is_amount_differs_not_a_match():
    outcome = matching.match_by_amount(
        [payout("po_A", 763929)], [bank("rec_1", 763928)], BANK_AMOUNT
    )
    assert reasons(outcome) == [("amount_differs", "rec_1")]
    assert outcome.findings[0].counterpart_amount == 763929
    assert not outcome.lefts and not outcome.rights


def test_beyond_the_tolerance_or_the_window_is_no_candidate():
    outcome = matching.match_by_amount(
        [payout("po_A", 763929)],
        [
            bank("rec_far", 763929, on=DAY + timedelta(days=BANK_AMOUNT.window_days + 1)),
            bank("rec_off", 763929 + BANK_AMOUNT.tolerance + 1),
        ],
        BANK_AMOUNT,
    )
    assert not outcome.matches and not outcome.findings
    assert sorted(r.id for r in outcome.rights) == ["rec_far", "rec_off"]


def test_two_payouts_within_tolerance_of_one_line_are_ambiguous_with_both_scored():
    outcome = matching.match_by_amount(
        [payout("po_A", 100000), payout("po_B", 100050)], [bank("rec_1", 100020)], BANK_AMOUNT
    )
    assert reasons(outcome) == [("ambiguous", "rec_1")]
    candidates = outcome.findings[0].candidates
    assert [c.item.id for c in candidates] == ["po_A", "po_B"]  # the nearer first
    assert candidates[0].score > candidates[1].score
    assert not outcome.matches and not outcome.lefts


def test_one_payout_for_two_different_lines_is_ambiguous():
    outcome = matching.match_by_amount(
        [payout("po_A", 100000)],
        [bank("rec_1", 100000, "转账 甲"), bank("rec_2", 100010, "转账 乙")],
        BANK_AMOUNT,
    )
    assert not outcome.matches
    assert {f.reason for f in outcome.findings} == {"ambiguous"}


def test_one_payout_for_two_alike_lines_matches_the_first_and_the_second_is_a_duplicate():
    outcome = matching.match_by_amount(
        [payout("po_A", 100000)],
        [bank("rec_1", 100000), bank("rec_2", 100000, on=DAY + timedelta(days=1))],
        BANK_AMOUNT,
    )
    assert pairs(outcome) == [(("po_A",), "rec_1")]
    assert reasons(outcome) == [("duplicate", "rec_2")]


def test_a_line_alike_a_matched_one_is_a_duplicate():
    outcome = matching.duplicates_of(
        [bank("rec_2", 821462, "STRIPE"), bank("rec_3", 1000, "利息")],
        [bank("rec_1", 821462, "STRIPE")],
        BANK_AMOUNT,
    )
    assert reasons(outcome) == [("duplicate", "rec_2")]
    assert [r.id for r in outcome.rights] == ["rec_3"]


# --- by sum ----------------------------------------------------------------------------


def test_two_payouts_adding_up_to_one_line_match_many_to_one():
    outcome = matching.match_by_sum(
        [payout("po_A", 300000), payout("po_B", 200001), payout("po_C", 99999)],
        [bank("rec_1", 500001)],
        BANK_SUM,
    )
    assert pairs(outcome) == [(("po_A", "po_B"), "rec_1")]
    assert [p.id for p in outcome.lefts] == ["po_C"]


def test_two_sets_adding_up_to_the_line_are_ambiguous():
    outcome = matching.match_by_sum(
        [payout("po_A", 100), payout("po_B", 200), payout("po_C", 150), payout("po_D", 150)],
        [bank("rec_1", 300)],
        BANK_SUM,
    )
    assert reasons(outcome) == [("ambiguous", "rec_1")]
    assert not outcome.matches


def test_a_payout_id_is_found_in_a_reference_only_when_exactly_one_is_named():
    ids = ["po_1QnovP1a2b3c4d5e", "po_1QnovP2f6g7h8i9j"]
    assert matching.payout_key_in("STRIPE po_1QnovP1a2b3c4d5e | E2E", ids) == ids[0]
    assert matching.payout_key_in("STRIPE 转账", ids) is None
    assert matching.payout_key_in(" ".join(ids), ids) is None


# --- control totals and scores ---------------------------------------------------------


def test_control_totals_of_a_payout_balance_and_say_when_they_do_not():
    rows = [
        ("charge", 12000, 588, 11412, 1),
        ("charge", 50001, 1880, 48121, 1),
        ("refund", -12000, 0, -12000, 1),
        ("dispute", -5000, 1500, -6500, 1),
        ("payout", -41033, 0, -41033, 1),
    ]
    totals = matching.control_totals("po_A", "CNY", rows)
    assert (totals.gross, totals.fees, totals.refunds, totals.disputes) == (
        62001,
        3968,
        12000,
        5000,
    )
    assert totals.net == 62001 - 3968 - 12000 - 5000 == 41033
    assert totals.payout_amount == 41033 and totals.balanced
    short = matching.control_totals("po_A", "CNY", [*rows[:-1], ("payout", -41032, 0, -41032, 1)])
    assert not short.balanced


def test_scores_fall_with_the_distance_and_never_reach_zero():
    assert matching.score(BANK_AMOUNT, 0, 0) == BANK_AMOUNT.score
    assert matching.score(BANK_AMOUNT, 1, 0) < BANK_AMOUNT.score
    assert matching.score(BANK_AMOUNT, 100, 0) < matching.score(BANK_AMOUNT, 1, 0)
    assert matching.score(BANK_AMOUNT, 100, 30) == 1


def test_every_pairing_carries_its_rule():
    outcome = matching.pair_by_key([ledger("txn_a", 1, "k")], [stripe("rec_a", 1, "k")], PAYMENT_ID)
    assert all(isinstance(m, Pairing) and m.rule is PAYMENT_ID for m in outcome.matches)
