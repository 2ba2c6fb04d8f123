"""Helpers shared by every domain's actors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq

from onetrip.broker import ensure_broker


def actor(queue: str, **options: Any) -> Callable[[Callable[..., Any]], dramatiq.Actor]:
    """Declare a Dramatiq actor on the configured broker (async functions are fine)."""

    def decorate(fn: Callable[..., Any]) -> dramatiq.Actor:
        broker = ensure_broker()
        options.setdefault("max_retries", 20)
        options.setdefault("min_backoff", 1_000)
        options.setdefault("max_backoff", 300_000)
        return dramatiq.actor(fn, queue_name=queue, broker=broker, **options)

    return decorate
