"""The background machinery: outbox relay, periodic ticks, and the in-process worker.

The relay also sends again, once a minute, the events a consumer never applied
(`onetrip.consumers.resend_unconsumed`): a message lost by a broker or taken by a worker
that died is work nobody else will notice is missing. Two relays may both send a copy:
consumers deduplicate, so it costs a read.

`onetrip relay` runs `run_relay` on its own; `onetrip serve` in embedded mode runs the
relay and a Dramatiq worker (on a StubBroker) inside the API process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

import dramatiq

from onetrip import consumers, domains, outbox, scheduler
from onetrip.clock import utcnow
from onetrip.db import get_database
from onetrip.settings import get_settings

log = logging.getLogger(__name__)

#: Seconds between two passes looking for events their consumers never applied.
RESEND_EVERY = 60.0


class Relay:
    """Publishes committed outbox events promptly: woken after each local commit, and
    polling at `ONETRIP_RELAY_INTERVAL` for commits made by other processes."""

    def __init__(self, interval: float | None = None, with_scheduler: bool = True) -> None:
        self.interval = interval if interval is not None else get_settings().relay_interval
        self.with_scheduler = with_scheduler
        self._resend_due = 0.0  # at start: a restart after a crash looks at once
        self._resent_at: datetime | None = None  # the last pass's time
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def wake(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        database = get_database()
        database.after_commit.append(self.wake)
        try:
            while not self._stopping:
                try:
                    while await outbox.relay_batch():
                        pass
                    if self.with_scheduler:
                        scheduler.send_due()
                        await self._resend_unconsumed()
                except Exception:
                    log.exception("relay pass failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
                self._wake.clear()
        finally:
            with contextlib.suppress(ValueError):
                database.after_commit.remove(self.wake)

    async def _resend_unconsumed(self) -> None:
        now = time.monotonic()
        if now < self._resend_due:
            return
        self._resend_due = now + RESEND_EVERY
        await consumers.resend_unconsumed()
        at = utcnow()
        # What left the window since the last pass (at start: one pass's worth) is given
        # up from now on: said once, as an error.
        since = self._resent_at or at - timedelta(seconds=RESEND_EVERY)
        await consumers.report_abandoned(since=since, now=at)
        self._resent_at = at

    def stop(self) -> None:
        self._stopping = True
        self.wake()


class EmbeddedRuntime:
    """Relay + Dramatiq worker inside the API process (no BROKER_URL)."""

    def __init__(self, worker_threads: int = 2) -> None:
        self.worker_threads = worker_threads
        self.relay = Relay()
        self.worker: dramatiq.Worker | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        domains.load_job_modules()
        # A short consumer timeout: in-process the StubBroker is local, and a long one
        # only delays shutdown.
        self.worker = dramatiq.Worker(
            dramatiq.get_broker(), worker_threads=self.worker_threads, worker_timeout=100
        )
        self.worker.start()
        self.task = asyncio.create_task(self.relay.run(), name="onetrip-relay")

    async def stop(self) -> None:
        self.relay.stop()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, timeout=5)
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
