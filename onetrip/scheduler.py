"""Periodic jobs: actors sent every N seconds by the relay process (or `onetrip serve`).

Every periodic actor is idempotent, so two relays sending the same tick is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class PeriodicJob:
    actor: Any
    interval: float
    due: float = 0.0


_jobs: list[PeriodicJob] = []


def periodic(interval_seconds: float) -> Callable[[Any], Any]:
    def register(actor: Any) -> Any:
        if not any(job.actor is actor for job in _jobs):
            _jobs.append(PeriodicJob(actor=actor, interval=interval_seconds))
        return actor

    return register


def send_due(now: float | None = None) -> int:
    """Send every job whose time has come; returns how many were sent."""
    now = time.monotonic() if now is None else now
    sent = 0
    for job in _jobs:
        if job.due <= now:
            job.actor.send()
            job.due = now + job.interval
            sent += 1
    return sent
