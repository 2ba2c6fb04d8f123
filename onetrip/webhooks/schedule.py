"""When to try a webhook again: pure functions of an attempt's outcome (no I/O, no clock).

The schedule of API.md: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h after the failed
attempts 1–6, then daily, for at most 3 days after the delivery was created. Each delay
gets ±15 % jitter, so receivers that failed together are not retried in lock step; a
`Retry-After` longer than the schedule's delay wins, up to a day.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
THEN_EVERY = timedelta(days=1)
GIVE_UP_AFTER = timedelta(days=3)
JITTER = 0.15
MAX_RETRY_AFTER = timedelta(days=1)


class Outcome(enum.StrEnum):
    """What an attempt's result means for its delivery."""

    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # timeout, connection error, 429, 5xx
    GONE = "gone"  # 410: the receiver says the endpoint is gone for good
    FAILED = "failed"  # any other answer, or a refused address: retrying will not help


def classify(status: int | None) -> Outcome:
    """The outcome of a response status; `None` is a timeout or connection error."""
    if status is None or status == 429 or status >= 500:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.GONE
    # 1xx/3xx too: redirects are not followed (they could lead past the address check).
    return Outcome.FAILED


def base_delay(attempt: int) -> timedelta:
    """The schedule's delay after failed attempt number `attempt` (1-based), no jitter."""
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    return SCHEDULE[attempt - 1] if attempt <= len(SCHEDULE) else THEN_EVERY


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A `Retry-After` header (delay-seconds or an HTTP date) as a delay, if it is valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates: RFC 9110 dates are GMT
        when = when.replace(tzinfo=now.tzinfo)
    return max(when - now, timedelta(0))


@dataclass(frozen=True)
class Next:
    """A retryable attempt's consequence: try again at `at`, or give up (`at` is None)."""

    at: datetime | None
    delay: timedelta | None


def next_attempt(
    attempt: int,
    *,
    now: datetime,
    created_at: datetime,
    retry_after: timedelta | None = None,
    uniform: Callable[[float, float], float] = random.uniform,
) -> Next:
    """When to try again after retryable attempt `attempt` failed at `now`.

    Gives up (at=None) when that time would fall more than 3 days after `created_at`.
    """
    delay = base_delay(attempt) * uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    at = now + delay
    if at > created_at + GIVE_UP_AFTER:
        return Next(at=None, delay=None)
    return Next(at=at, delay=delay)
