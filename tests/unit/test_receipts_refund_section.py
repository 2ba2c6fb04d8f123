"""A re-issued receipt lists its refunds one by one and says which version it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from payments.receipt import MAX_REFUND_LINES, render_receipt
from tests.unit.test_receipt import joint_receipt, page_text, passport_receipt

FIRST = datetime(2025, 3, 15, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
SECOND = datetime(2025, 3, 16, 9, 30, tzinfo=UTC)  # 17:30 in Beijing


def test_each_refund_is_listed_with_its_beijing_date_and_amount_then_the_total():
    data = joint_receipt(refunds=[(FIRST, 3000), (SECOND, 450)], version=3, issued_at=SECOND)
    text = page_text(render_receipt(data))
    for expected in (
        "2025年03月15日 10:00  退款 ¥30.00",
        "2025年03月16日 17:30  退款 ¥4.50",
        "合计 ¥34.50（部分退款）",
        "已部分退款",  # under the title
        "PARTIALLY REFUNDED",
        "¥1,200.00",  # net paid
    ):
        assert expected in text, expected


def test_a_fully_refunded_receipt_says_so_under_its_title():
    data = passport_receipt(amount_refunded=12000, refunds=[(FIRST, 12000)], version=2)
    text = page_text(render_receipt(data))
    assert "已全额退款" in text and "FULLY REFUNDED" in text
    assert "合计 ¥120.00（全额退款）" in text
    assert "¥0.00" in text


def test_a_re_issue_keeps_the_number_and_shows_its_version_and_date():
    data = passport_receipt(
        amount_refunded=2000, refunds=[(FIRST, 2000)], version=2, issued_at=SECOND
    )
    text = page_text(render_receipt(data))
    assert "pay_01JQ8Z4K7M2N3P4Q5R6S7T8V9W" in text
    assert "第 2 版，2025年03月16日 重新开具" in text
    assert "Version 2, re-issued 2025-03-16" in text
    first_issue = page_text(render_receipt(passport_receipt()))
    assert "重新开具" not in first_issue and "Version" not in first_issue


def test_many_refunds_stay_on_one_page_the_rest_summed_in_one_line():
    refunds = [(FIRST + timedelta(hours=n), 100) for n in range(MAX_REFUND_LINES + 4)]
    data = passport_receipt(amount_refunded=100 * len(refunds), refunds=refunds, version=2)
    text = page_text(render_receipt(data))  # page_text asserts the one page
    assert text.count("退款 ¥1.00") == MAX_REFUND_LINES
    assert "另有 4 笔退款，共 ¥4.00" in text
    assert f"合计 ¥{len(refunds)}.00（部分退款）" in text
    assert "¥110.00" in text  # net paid


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_refunded": 3000, "refunds": [(FIRST, 2000)]},  # does not add up
        {"amount_refunded": 0, "refunds": [(FIRST, 0)]},  # a refund of nothing
        {"amount_refunded": 10, "refunds": [(datetime(2025, 3, 15), 10)]},  # naive date
        {"version": 0},
    ],
)
def test_refunds_that_do_not_add_up_are_refused(changes):
    with pytest.raises(ValueError):
        passport_receipt(**changes)
