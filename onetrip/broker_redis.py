"""The Redis broker, configured so that a killed worker's jobs run again within seconds.

Dramatiq's RedisBroker keeps the messages each worker has taken (fetched, not yet
acknowledged) in an ack set per worker and queue, and refreshes a heartbeat per worker on
every command. Messages of a worker whose heartbeat expired go back to their queue only
during "maintenance", which the dispatch script runs for the queue of the command that
carries it, on a random 0.1% of commands by default: after a SIGKILL its jobs could wait
for many minutes, or for ever on a quiet queue. Here each worker process runs maintenance
on every queue it consumes every `REDIS_MAINTENANCE_INTERVAL` seconds, and a worker is
dead after `REDIS_HEARTBEAT_TIMEOUT_MS` of silence.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

#: A Redis worker silent this long is dead and its taken messages go back to their
#: queues. Live workers refresh it on every command and at least every
#: `REDIS_MAINTENANCE_INTERVAL` (the maintenance pass is a command too), however long
#: their jobs run; being wrong costs a duplicate delivery, which consumers deduplicate.
REDIS_HEARTBEAT_TIMEOUT_MS = 20_000
#: How often each worker gives back dead workers' messages, on every queue it consumes.
REDIS_MAINTENANCE_INTERVAL = 5.0
#: Dead-lettered messages (retries exhausted) are kept this long for inspection; the
#: outbox keeps the event itself, and the relay sends unconsumed events again anyway.
REDIS_DEAD_MESSAGE_TTL_MS = 7 * 24 * 3600 * 1000


class RecoveringRedisBroker(RedisBroker):
    """Dramatiq's RedisBroker whose dead-worker recovery runs on time, not by chance."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("heartbeat_timeout", REDIS_HEARTBEAT_TIMEOUT_MS)
        kwargs.setdefault("dead_message_ttl", REDIS_DEAD_MESSAGE_TTL_MS)
        super().__init__(**kwargs)
        self._maintaining = threading.local()

    def _should_do_maintenance(self, command: str) -> int:
        # The one hook Dramatiq's dispatch offers: forced while `recover_dead_workers`
        # runs on this thread, Dramatiq's own odds otherwise.
        if getattr(self._maintaining, "now", False):
            return 1
        return int(super()._should_do_maintenance(command))

    def recover_dead_workers(self) -> None:
        """Put the taken, unacknowledged messages of every worker whose heartbeat expired
        back on their queues (delay queues included), and drop expired dead letters.

        Maintenance runs inside the dispatch script for the queue of the command that
        carries it, so one harmless command (`qsize`) per queue carries it here.
        """
        self._maintaining.now = True
        try:
            for queue in sorted(self.get_declared_queues() | self.get_declared_delay_queues()):
                self.do_qsize(queue)  # type: ignore[attr-defined]  # dispatched by __getattr__
        finally:
            self._maintaining.now = False


class RedisRecovery(Middleware):
    """In a worker process, run `recover_dead_workers` at boot and every few seconds."""

    def __init__(self, interval: float = REDIS_MAINTENANCE_INTERVAL) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if not isinstance(broker, RecoveringRedisBroker):
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(broker,), name="onetrip-redis-recovery", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, broker: RecoveringRedisBroker) -> None:
        while True:
            try:
                broker.recover_dead_workers()
            except Exception:  # Redis away for a moment: the next pass tries again
                log.warning("could not recover dead Redis workers' messages", exc_info=True)
            if self._stop.wait(self.interval):
                return


def make_redis_broker(url: str, **kwargs: Any) -> RecoveringRedisBroker:
    """A Redis broker for `url` that gives back dead workers' messages on time."""
    broker = RecoveringRedisBroker(url=url, **kwargs)
    broker.add_middleware(RedisRecovery())
    return broker
