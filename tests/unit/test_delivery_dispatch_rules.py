"""Pure dispatch rules: tracking numbers, delivery addresses, service-area matching, and
the conversion of legacy partner secrets."""

from __future__ import annotations

import base64

import pytest

from delivery.allocation import CITY, DISTRICT, PROVINCE, specificity
from delivery.dispatching import (
    address_problems,
    checked_address,
    luhn_digit,
    new_tracking_number,
    valid_tracking_number,
)
from delivery.service import standard_secret
from onetrip.errors import ValidationFailed
from onetrip.webhooks.signing import secret_key
from tests.factories import ADDRESS


def test_tracking_numbers_are_ot_twelve_digits_with_a_luhn_check_digit() -> None:
    numbers = {new_tracking_number() for _ in range(500)}
    assert len(numbers) == 500
    for number in numbers:
        assert number.startswith("OT") and len(number) == 14 and number[2:].isdigit()
        assert valid_tracking_number(number)
    assert luhn_digit("7992739871") == "3"  # the textbook example


def test_a_mistyped_tracking_number_is_recognised() -> None:
    number = new_tracking_number()
    digits = number[2:]
    for position in range(12):
        wrong = str((int(digits[position]) + 1) % 10)
        assert not valid_tracking_number("OT" + digits[:position] + wrong + digits[position + 1 :])
    assert not valid_tracking_number("SF" + digits)
    assert not valid_tracking_number(number + "0")


def test_an_address_needs_recipient_phone_province_city_district_and_line1() -> None:
    assert address_problems(ADDRESS) == []
    assert checked_address({**ADDRESS, "recipient": " 张伟 "})["recipient"] == "张伟"
    problems = address_problems({"recipient": "张伟", "province": "浙江省", "district": " "})
    assert [p["field"] for p in problems] == [
        "address.phone",
        "address.city",
        "address.district",
        "address.line1",
    ]
    assert address_problems("浙江省杭州市")[0]["field"] == "address"
    with pytest.raises(ValidationFailed) as raised:
        checked_address({**ADDRESS, "line1": None})
    assert raised.value.status == 422 and raised.value.code == "invalid_address"


def test_an_area_serves_an_address_by_province_city_or_district() -> None:
    assert specificity({"province": "浙江省"}, ADDRESS) == PROVINCE
    assert specificity({"province": "浙江省", "city": "杭州市"}, ADDRESS) == CITY
    area = {"province": "浙江省", "city": "杭州市", "district": "西湖区"}
    assert specificity(area, ADDRESS) == DISTRICT
    assert specificity({**area, "district": "滨江区"}, ADDRESS) == 0
    assert specificity({"province": "浙江省", "city": "宁波市"}, ADDRESS) == 0
    assert specificity({"province": "上海市"}, ADDRESS) == 0


def test_a_legacy_secret_keeps_its_key_and_a_broken_one_is_replaced() -> None:
    key = bytes(range(200, 232))
    legacy = "whsec_" + base64.urlsafe_b64encode(key).decode().rstrip("=")
    converted = standard_secret(legacy)
    assert converted != legacy and secret_key(converted) == key
    assert standard_secret(converted) == converted  # a valid one is kept as it is
    for broken in (None, "", "whsec_", "whsec_!!", "plain-text"):
        assert secret_key(standard_secret(broken))  # a new valid secret
