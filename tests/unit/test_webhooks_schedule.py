"""The retry schedule of API.md, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from onetrip.urls import is_public_address
from onetrip.webhooks.schedule import (
    GIVE_UP_AFTER,
    Outcome,
    base_delay,
    classify,
    next_attempt,
    parse_retry_after,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def no_jitter(low: float, high: float) -> float:
    return 1.0


def test_the_schedule_is_5s_5m_30m_2h_5h_10h_then_daily() -> None:
    expected = [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(days=1),
        timedelta(days=1),
    ]
    assert [base_delay(n) for n in range(1, 9)] == expected
    with pytest.raises(ValueError):
        base_delay(0)


def test_retries_stop_three_days_after_the_delivery_was_created() -> None:
    now, attempt, times = T0, 1, [T0]
    while True:
        upcoming = next_attempt(attempt, now=now, created_at=T0, uniform=no_jitter)
        if upcoming.at is None:
            break
        times.append(upcoming.at)
        now, attempt = upcoming.at, attempt + 1
    offsets = [t - T0 for t in times]
    assert offsets[:3] == [timedelta(0), timedelta(seconds=5), timedelta(minutes=5, seconds=5)]
    assert offsets[-1] <= GIVE_UP_AFTER
    assert offsets[-1] + timedelta(days=1) > GIVE_UP_AFTER
    assert len(times) == 9  # 6 scheduled steps, then daily within 3 days


def test_jitter_stays_within_fifteen_percent_and_varies() -> None:
    delays = {next_attempt(2, now=T0, created_at=T0).delay for _ in range(50)}
    assert len(delays) > 1
    for delay in delays:
        assert delay is not None
        assert timedelta(minutes=5) * 0.85 <= delay <= timedelta(minutes=5) * 1.15


def test_a_longer_retry_after_wins_up_to_a_day_and_a_shorter_one_does_not() -> None:
    longer = next_attempt(1, now=T0, created_at=T0, retry_after=timedelta(minutes=10))
    assert longer.delay == timedelta(minutes=10)
    shorter = next_attempt(
        3, now=T0, created_at=T0, retry_after=timedelta(seconds=1), uniform=no_jitter
    )
    assert shorter.delay == timedelta(minutes=30)
    huge = next_attempt(1, now=T0, created_at=T0, retry_after=timedelta(days=30))
    assert huge.delay == timedelta(days=1)


def test_retry_after_is_seconds_or_an_http_date() -> None:
    assert parse_retry_after("120", T0) == timedelta(seconds=120)
    http_date = format_datetime(T0 + timedelta(minutes=7), usegmt=True)
    assert parse_retry_after(http_date, T0) == timedelta(minutes=7)
    assert parse_retry_after(format_datetime(T0 - timedelta(hours=1), usegmt=True), T0) == (
        timedelta(0)
    )
    for junk in (None, "", "soon", "-5", "1.5"):
        assert parse_retry_after(junk, T0) is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (None, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (410, Outcome.GONE),
        (400, Outcome.FAILED),
        (401, Outcome.FAILED),
        (404, Outcome.FAILED),
        (301, Outcome.FAILED),
    ],
)
def test_what_a_response_means(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "203.119.25.1", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(address)
