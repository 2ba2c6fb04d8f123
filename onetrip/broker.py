"""Dramatiq broker set-up: StubBroker in-process by default, RabbitMQ or Redis at scale.

Actors are declared against whichever broker is current when their module is imported;
`configure_broker` swaps the broker and re-declares every known actor on it, so the
process (or a test) can choose at start-up. Which queues a worker consumes comes from
the one list of domains (`onetrip.domains.load_job_modules` declares them after the swap).

A worker killed mid-batch (SIGKILL, OOM, a lost host) must not lose the messages it had
taken. RabbitMQ returns a connection's unacknowledged messages when the connection drops,
which the kernel does at once when a process dies. Redis keeps each worker's taken
messages in an ack set of its own, and only gives back those of a worker whose heartbeat
expired when "maintenance" runs for that queue, which Dramatiq leaves to chance (0.1% of
commands, so minutes to hours); `onetrip.broker_redis` runs it for every queue every few
seconds from each worker, with a heartbeat timeout short enough that a dead worker's jobs
run again within half a minute.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO

log = logging.getLogger(__name__)


def make_broker(url: str | None) -> dramatiq.Broker:
    if not url:
        broker: dramatiq.Broker = StubBroker()
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Nothing to add for crashes: a worker takes at most its prefetch (2 x threads)
        # unacknowledged, and RabbitMQ requeues them when the worker's connection closes.
        broker = RabbitmqBroker(url=url)
    elif url.startswith(("redis://", "rediss://")):
        from onetrip.broker_redis import make_redis_broker  # imports redis: only when used

        broker = make_redis_broker(url)
    else:
        raise ValueError(f"BROKER_URL must be amqp:// or redis://, not {url.split(':')[0]}")
    broker.add_middleware(AsyncIO())
    return broker


def configure_broker(url: str | None) -> dramatiq.Broker:
    """Make a broker for `url` the global one and move every declared actor onto it."""
    previous = dramatiq.get_broker() if _configured else None
    broker = make_broker(url)
    dramatiq.set_broker(broker)
    if previous is not None:
        for name in previous.get_declared_actors():
            actor = previous.get_actor(name)
            actor.broker = broker
            broker.declare_actor(actor)
    _mark_configured()
    return broker


_configured = False


def _mark_configured() -> None:
    global _configured
    _configured = True


def ensure_broker() -> dramatiq.Broker:
    """The current broker, configuring an in-process one from settings if none is yet."""
    if not _configured:
        from onetrip.settings import get_settings

        return configure_broker(get_settings().broker_url)
    return dramatiq.get_broker()


def broker_reachable(broker: dramatiq.Broker) -> bool:
    """For /health/ready: can we talk to the broker at all?"""
    try:
        if isinstance(broker, StubBroker):
            return True
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        if isinstance(broker, RabbitmqBroker):
            return _rabbitmq_reachable(broker)
        from dramatiq.brokers.redis import RedisBroker

        if isinstance(broker, RedisBroker):
            return bool(broker.client.ping())
    except Exception:  # health checks report, they do not raise
        log.warning("broker health check failed", exc_info=True)
        return False
    return True


def _rabbitmq_reachable(broker: dramatiq.Broker) -> bool:
    """Talk to RabbitMQ on this thread's connection, reconnecting once if it was lost.

    A pika BlockingConnection only notices that the server went away when it does I/O,
    so `is_open` alone would report a dead broker as reachable forever; processing
    pending events (heartbeats included) is that I/O.
    """
    for attempt in (1, 2):
        try:
            connection = broker.connection  # type: ignore[attr-defined]
            connection.process_data_events(time_limit=0)
            return bool(connection.is_open)
        except Exception:
            del broker.connection  # type: ignore[attr-defined]  # drop it; reconnect next
            if attempt == 2:
                raise
    return False
