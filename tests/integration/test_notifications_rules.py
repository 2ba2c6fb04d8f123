"""The pure rules of notifications (no database): which events tell the applicant what,
when a failed attempt is tried again, how recipients are masked and numbers written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from delivery.jobs import DRAWING_PRIORITY
from notifications import jobs, messages
from notifications.service import mask_recipient, next_attempt_at, sms_number
from notifications.triggers import EVENT_TYPES, TRIGGERS, trigger_for

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_every_trigger_has_a_template_and_every_applicant_kind_a_trigger() -> None:
    kinds = {t.kind for t in TRIGGERS}
    assert kinds <= set(messages.KINDS)
    assert kinds == set(messages.KINDS) - messages.DEPARTMENT_KINDS
    assert len({(t.event_type, tuple(t.when.items())) for t in TRIGGERS}) == len(TRIGGERS)


def test_a_parcel_tells_the_applicant_only_when_it_is_out_or_an_attempt_failed() -> None:
    def kind(status: str) -> str | None:
        found = trigger_for("dispatch.status_changed", {"status": status})
        return found.kind if found else None

    assert kind("out_for_delivery") == "out_for_delivery"
    assert kind("failed_attempt") == "failed_attempt"
    assert [kind(s) for s in ("accepted", "picked_up", "in_transit", "delivered")] == [None] * 4
    assert trigger_for("license.rendered", {}) is None
    assert "license.rendered" not in EVENT_TYPES and "dispatch.status_changed" in EVENT_TYPES


def test_only_the_successful_payment_carries_the_receipt() -> None:
    assert [t.event_type for t in TRIGGERS if t.attach_receipt] == ["payment.succeeded"]


def test_retries_back_off_from_30_seconds_to_6_hours_and_stop_after_a_day() -> None:
    exact = lambda low, high: 1.0  # noqa: E731 (no jitter)
    delays = [
        next_attempt_at(n, now=T0, created_at=T0, uniform=exact) - T0  # type: ignore[operator]
        for n in range(1, 7)
    ]
    assert delays == [
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(hours=1),
        timedelta(hours=6),
        timedelta(hours=6),
    ]
    late = T0 + timedelta(hours=20)
    assert next_attempt_at(6, now=late, created_at=T0, uniform=exact) is None
    # a provider's Retry-After longer than the schedule's delay wins
    hinted = next_attempt_at(1, now=T0, created_at=T0, retry_after=300, uniform=exact)
    assert hinted == T0 + timedelta(minutes=5)


def test_jitter_keeps_each_retry_within_15_percent() -> None:
    low = next_attempt_at(1, now=T0, created_at=T0, uniform=lambda a, b: a)
    high = next_attempt_at(1, now=T0, created_at=T0, uniform=lambda a, b: b)
    assert low == T0 + timedelta(seconds=25.5) and high == T0 + timedelta(seconds=34.5)


def test_recipients_are_masked_on_the_timeline() -> None:
    assert mask_recipient("email", "zhang.wei@example.cn") == "z***@example.cn"
    assert mask_recipient("sms", "+8613800138000") == "+86138****8000"
    assert mask_recipient("none", "") == ""


def test_mainland_mobile_numbers_are_written_as_e164() -> None:
    assert sms_number("138 0013 8000") == "+8613800138000"
    assert sms_number("+8613800138000") == "+8613800138000"
    assert sms_number("not a phone") == "not a phone"  # its channel refuses it, recorded


def test_notifications_wait_behind_payments_and_delivery_work() -> None:
    # Dramatiq: a higher number is a lower priority
    assert jobs.notify_applicant.priority > DRAWING_PRIORITY
    assert jobs.send_notification.priority > DRAWING_PRIORITY
    assert jobs.notify_applicant.queue_name == "notifications"
