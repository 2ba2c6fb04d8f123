"""The ledger's pure rules: which postings are refused before touching the database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.service import (
    COUNTER_CASH,
    STRIPE_CLEARING,
    STRIPE_FEES,
    InvalidPosting,
    Line,
    department_fees_account,
    validate_lines,
)
from onetrip.errors import ValidationFailed
from onetrip.money import BPS_WHOLE, split_by_bps

PSB_FEES = department_fees_account("PSB")  # 公安局
AMR_FEES = department_fees_account("AMR")  # 市场监管局


def test_department_fees_account_code_names_the_department() -> None:
    assert department_fees_account("PSB") == "dept:PSB:fees_payable"


def test_a_balanced_passport_fee_posting_is_accepted() -> None:
    net = validate_lines(
        [
            Line(STRIPE_CLEARING, 11_880, "CNY"),
            Line(STRIPE_FEES, 120, "CNY"),
            Line(PSB_FEES, -12_000, "CNY"),
        ]
    )
    assert net[(PSB_FEES, "CNY")] == -12_000


def test_unbalanced_lines_are_refused_with_ledger_unbalanced() -> None:
    with pytest.raises(InvalidPosting) as caught:
        validate_lines([Line(STRIPE_CLEARING, 12_000, "CNY"), Line(PSB_FEES, -11_999, "CNY")])
    assert caught.value.code == "ledger_unbalanced"
    assert caught.value.status == 422


def test_lines_balanced_overall_but_not_per_currency_are_refused() -> None:
    with pytest.raises(InvalidPosting) as caught:
        validate_lines([Line(STRIPE_CLEARING, 10_000, "CNY"), Line(PSB_FEES, -10_000, "HKD")])
    assert caught.value.code == "ledger_unbalanced"


def test_a_zero_line_is_refused_with_ledger_zero_amount() -> None:
    with pytest.raises(InvalidPosting) as caught:
        validate_lines(
            [
                Line(COUNTER_CASH, 5_000, "CNY"),
                Line(AMR_FEES, 0, "CNY"),
                Line(PSB_FEES, -5_000, "CNY"),
            ]
        )
    assert caught.value.code == "ledger_zero_amount"
    assert caught.value.errors == [{"field": "lines[1].amount", "message": "must not be zero"}]


def test_a_single_line_is_refused_with_ledger_too_few_lines() -> None:
    with pytest.raises(InvalidPosting) as caught:
        validate_lines([Line(COUNTER_CASH, 5_000, "CNY")])
    assert caught.value.code == "ledger_too_few_lines"


def test_a_float_amount_is_refused_because_money_is_integer_minor_units() -> None:
    with pytest.raises(InvalidPosting) as caught:
        validate_lines([Line(COUNTER_CASH, 50.0, "CNY"), Line(PSB_FEES, -50, "CNY")])  # type: ignore[arg-type]
    assert caught.value.code == "ledger_amount_not_int"


def test_a_lower_case_currency_is_refused_with_ledger_invalid_currency() -> None:
    with pytest.raises(InvalidPosting) as caught:
        validate_lines([Line(COUNTER_CASH, 5_000, "cny"), Line(PSB_FEES, -5_000, "cny")])
    assert caught.value.code == "ledger_invalid_currency"


def test_posting_errors_are_validation_failures_for_the_problem_handler() -> None:
    assert issubclass(InvalidPosting, ValidationFailed)


@st.composite
def shares(draw: st.DrawFn) -> list[tuple[str, int]]:
    """1..6 departments whose basis points add up to 10000 (zero shares allowed)."""
    count = draw(st.integers(min_value=1, max_value=6))
    cuts = sorted(draw(st.lists(st.integers(0, BPS_WHOLE), min_size=count - 1, max_size=count - 1)))
    bounds = [0, *cuts, BPS_WHOLE]
    return [(f"D{index}", bounds[index + 1] - bounds[index]) for index in range(count)]


@given(amount=st.integers(min_value=-(10**12), max_value=10**12), parts=shares())
def test_split_by_bps_parts_sum_to_the_amount_and_stay_within_one_fen_of_the_exact_share(
    amount: int, parts: list[tuple[str, int]]
) -> None:
    split = split_by_bps(amount, parts)
    assert sum(part for _, part in split) == amount
    assert [key for key, _ in split] == [key for key, _ in parts]
    for (_, part), (_, bps) in zip(split, parts, strict=True):
        # |part − amount·bps/10000| < 1, in integers: |part·10000 − amount·bps| < 10000
        assert abs(part * BPS_WHOLE - amount * bps) < BPS_WHOLE
