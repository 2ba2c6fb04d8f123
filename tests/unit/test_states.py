"""The kernel's Machine (onetrip/states.py) and the rules payments declares on it.

What `apply` does on a database (locks, records, outbox, refusals) is walked in
tests/integration/test_state_machine.py; here, the decisions a machine makes from its
table alone.
"""

from __future__ import annotations

import pytest

from onetrip.states import Machine
from payments.models import Payment, Refund
from payments.states import (
    CANCELLED,
    CREATED,
    EXPIRED,
    FAILED,
    PAYMENT_MACHINE,
    REFUND_MACHINE,
    STARTED,
    SUCCEEDED,
)

EVENTS = ("start", "succeed", "fail", "cancel", "expire")


def walk(machine: Machine[object], start: str, *events: str) -> list[str]:
    """The states a row passes through; 'refused' for a move the machine refuses."""
    state, seen = start, []
    for event in events:
        if machine.is_repeat(state, event):
            seen.append(state)
            continue
        target = machine.target(state, event)
        if target is None:
            seen.append("refused")
            break
        state = target
        seen.append(state)
    return seen


def test_a_declined_card_retried_on_the_same_intent_ends_succeeded():
    assert walk(PAYMENT_MACHINE, CREATED, "start", "fail", "succeed") == [
        STARTED,
        FAILED,
        SUCCEEDED,
    ]


def test_the_gateway_word_that_money_moved_wins_over_expiry_and_cancel():
    assert walk(PAYMENT_MACHINE, CREATED, "expire", "succeed")[-1] == SUCCEEDED
    assert walk(PAYMENT_MACHINE, CREATED, "start", "cancel", "succeed")[-1] == SUCCEEDED


@pytest.mark.parametrize("event", ("start", "fail", "cancel", "expire"))
def test_nothing_moves_a_succeeded_payment(event):
    assert PAYMENT_MACHINE.target(SUCCEEDED, event) is None
    assert not PAYMENT_MACHINE.is_repeat(SUCCEEDED, event)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (SUCCEEDED, "succeed"),
        (FAILED, "fail"),
        (CANCELLED, "cancel"),
        (EXPIRED, "expire"),
        (STARTED, "start"),  # the applicant reopened the page: a self-loop
    ],
)
def test_the_event_that_led_to_the_state_is_a_repeat(state, event):
    assert PAYMENT_MACHINE.is_repeat(state, event)


@pytest.mark.parametrize(
    ("state", "event"),
    [(CREATED, "fail"), (CANCELLED, "start"), (EXPIRED, "cancel"), (SUCCEEDED, "cancel")],
)
def test_a_move_the_table_lacks_is_neither_allowed_nor_a_repeat(state, event):
    assert PAYMENT_MACHINE.target(state, event) is None
    assert not PAYMENT_MACHINE.is_repeat(state, event)


def test_a_failed_payment_closed_by_the_department_cannot_be_started_again():
    assert walk(PAYMENT_MACHINE, CREATED, "start", "fail", "cancel", "start") == [
        STARTED,
        FAILED,
        CANCELLED,
        "refused",
    ]


def test_every_state_a_payment_reaches_emits_its_own_event():
    reached = {target for target in PAYMENT_MACHINE.transitions.values()}
    assert {PAYMENT_MACHINE.emits[s] for s in reached} == {f"payment.{s}" for s in reached}
    assert CREATED not in PAYMENT_MACHINE.emits  # payment.created is written at creation


def test_a_paid_refund_can_fail_later_but_a_failed_one_is_never_paid():
    assert walk(REFUND_MACHINE, "pending", "succeed", "succeed", "fail") == [
        "succeeded",
        "succeeded",
        "failed",
    ]
    assert walk(REFUND_MACHINE, "pending", "fail", "fail", "succeed") == [
        "failed",
        "failed",
        "refused",
    ]
    assert REFUND_MACHINE.emits == {"succeeded": "refund.succeeded", "failed": "refund.failed"}


def test_a_machine_with_a_state_that_emits_nothing_is_refused_when_declared():
    with pytest.raises(ValueError, match="no outbox event"):
        Machine(
            name="broken",
            model=Payment,
            transitions={("a", "go"): "b", ("b", "go"): "c"},
            emits={"b": "broken.b"},
        )


def test_an_event_that_both_leads_into_a_state_and_out_of_it_moves():
    # The table wins over the repeat rule: "next" led into b, and moves b on to c.
    machine = Machine(
        name="steps",
        model=Refund,
        transitions={("a", "next"): "b", ("b", "next"): "c"},
        emits={"b": "steps.b", "c": "steps.c"},
    )
    assert walk(machine, "a", "next", "next", "next") == ["b", "c", "c"]
