"""Failure and cancel reasons in the applicant's words, and the page language rule."""

from __future__ import annotations

import pytest

from onetrip.i18n import page_language, preferred_language
from payments.gateways.sandbox import TEST_CARDS
from payments.reasons import MESSAGES, reason_key, reason_message

SPOKEN = ("zh-CN", "en")


@pytest.mark.parametrize(
    ("reason", "key"),
    [
        ("Your card was declined.", "card_declined"),  # Stripe's message
        ("card_declined", "card_declined"),
        ("card declined", "card_declined"),  # our reading of an event without a message
        ("do_not_honor", "card_declined"),
        ("Your card has insufficient funds.", "insufficient_funds"),
        ("insufficient_funds", "insufficient_funds"),
        ("Your card has expired.", "expired_card"),
        ("Your card's security code is incorrect.", "incorrect_cvc"),
        ("Your card number is incorrect.", "incorrect_number"),
        ("lost_or_stolen_card", "lost_or_stolen"),
        ("The provided PaymentMethod has failed authentication.", "authentication_failed"),
        (
            "An error occurred while processing your card. Try again in a little bit.",
            "processing_error",
        ),
        ("expired", "expired"),
        ("cancelled by department", "cancelled_by_department"),
        ("Visa — declined", "card_declined"),  # the sandbox's cards
        ("Visa — insufficient funds", "insufficient_funds"),
        ("Something the bank invented", "generic"),
    ],
)
def test_known_reasons_map_to_their_message(reason, key):
    assert reason_key(reason) == key


def test_no_reason_is_no_message():
    assert reason_message(None, "zh-CN") is None
    assert reason_message("  ", "en") is None


def test_every_sandbox_decline_has_a_specific_message():
    for outcome, english, _ in TEST_CARDS.values():
        if outcome == "failed":
            assert reason_key(english) not in (None, "generic"), english


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_each_message_is_chinese_in_chinese_and_english_in_english(key):
    zh, en = MESSAGES[key]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), zh
    assert all(ord(ch) < 0x2E80 for ch in en), en
    assert not any(ch.isascii() and ch.isalpha() for ch in zh.replace("CVC", "")), zh


def test_an_unknown_reason_reads_as_the_generic_message_not_the_raw_text():
    message = reason_message("Your card was declined for reason 42 (xyz).", "zh-CN")
    assert message == MESSAGES["card_declined"][0]
    assert reason_message("zzz_unheard_of", "zh-CN") == MESSAGES["generic"][0]
    assert reason_message("zzz_unheard_of", "en") == MESSAGES["generic"][1]


def test_a_page_about_a_payment_speaks_the_applicants_language_not_the_browsers():
    assert page_language({}, {"language": "en"}, SPOKEN, "zh-CN") == "en"
    assert page_language({}, {}, SPOKEN, "en-US,en;q=0.9") == "zh-CN"
    assert page_language({"lang": "en"}, {}, SPOKEN) == "en"
    assert page_language({"lang": "fr"}, {"language": "en"}, SPOKEN) == "en"


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("en-US,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("fr-FR,en;q=0.5", "en"),
        ("en;q=0.4,zh;q=0.6", "zh-CN"),
        ("en;q=0", "zh-CN"),
        ("de, fr", "zh-CN"),
        ("", "zh-CN"),
        ("en;q=abc", "zh-CN"),
    ],
)
def test_a_page_about_no_payment_follows_accept_language(header, lang):
    assert preferred_language(header, SPOKEN) == lang
    assert page_language({}, None, SPOKEN, header) == lang
