"""The payment status machine as data (payments/states.py)."""

from __future__ import annotations

import itertools

import pytest

from payments.states import (
    CANCELLED,
    CREATED,
    EVENT_TYPES,
    EXPIRED,
    FAILED,
    FINAL,
    STARTED,
    SUCCEEDED,
    TRANSITIONS,
    next_status,
)

STATUSES = (CREATED, STARTED, SUCCEEDED, FAILED, CANCELLED, EXPIRED)
EVENTS = ("start", "succeed", "fail", "cancel", "expire")

ALLOWED = {
    (CREATED, "start"): STARTED,
    (STARTED, "start"): STARTED,
    (CREATED, "succeed"): SUCCEEDED,
    (STARTED, "succeed"): SUCCEEDED,
    (FAILED, "succeed"): SUCCEEDED,
    (EXPIRED, "succeed"): SUCCEEDED,
    (CANCELLED, "succeed"): SUCCEEDED,
    (STARTED, "fail"): FAILED,
    (CREATED, "cancel"): CANCELLED,
    (STARTED, "cancel"): CANCELLED,
    (FAILED, "cancel"): CANCELLED,
    (CREATED, "expire"): EXPIRED,
    (STARTED, "expire"): EXPIRED,
    (FAILED, "expire"): EXPIRED,
}


def test_the_table_is_exactly_the_documented_machine():
    assert TRANSITIONS == ALLOWED


@pytest.mark.parametrize(("current", "event"), sorted(ALLOWED))
def test_allowed_transition_leads_to_its_status(current, event):
    assert next_status(current, event) == ALLOWED[(current, event)]


DISALLOWED = sorted(set(itertools.product(STATUSES, EVENTS)) - set(ALLOWED))


@pytest.mark.parametrize(("current", "event"), DISALLOWED)
def test_disallowed_transition_has_no_next_status(current, event):
    assert next_status(current, event) is None


@pytest.mark.parametrize("event", EVENTS)
def test_nothing_leaves_succeeded(event):
    assert next_status(SUCCEEDED, event) is None


@pytest.mark.parametrize("current", (SUCCEEDED, CANCELLED, EXPIRED))
def test_a_payment_that_ended_cannot_be_cancelled(current):
    assert next_status(current, "cancel") is None


@pytest.mark.parametrize("current", (SUCCEEDED, FAILED, CANCELLED, EXPIRED))
def test_a_payment_that_ended_cannot_be_started_again(current):
    assert next_status(current, "start") is None


@pytest.mark.parametrize("current", (CREATED, FAILED, CANCELLED, EXPIRED, SUCCEEDED))
def test_only_a_started_payment_can_fail(current):
    assert next_status(current, "fail") is None


def test_final_statuses_are_the_four_outcomes():
    assert {SUCCEEDED, FAILED, CANCELLED, EXPIRED} == FINAL


def test_every_status_a_transition_reaches_emits_a_payment_event():
    for target in set(ALLOWED.values()):
        assert EVENT_TYPES[target] == f"payment.{target}"
    assert CREATED not in EVENT_TYPES  # payment.created is written by create_payment itself


def test_unknown_status_or_event_is_not_allowed():
    assert next_status("refunded", "cancel") is None
    assert next_status(CREATED, "refund") is None
