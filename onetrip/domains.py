"""The one list of domains: the only place a domain is registered.

The app (routes, template folders), the worker and the relay (job modules, queues), the
migrations and the tests (models) read `DOMAINS`; adding a domain means writing its
`Domain` in its `__init__.py` and adding it here. `KERNEL` is the kernel's own share
(its tables and actors), loaded before the domains'.

Wiring: this module imports every domain, so no kernel or domain module may import it
(`lint-imports` enforces it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dramatiq
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

import delivery
import ledger
import notifications
import payments
from onetrip.broker import ensure_broker
from onetrip.db import Base
from onetrip.domain import Domain
from onetrip.errors import ValidationFailed

KERNEL = Domain(
    name="onetrip",
    jobs=("onetrip.webhooks.jobs",),
    models=(
        "onetrip.auth",
        "onetrip.idempotency",
        "onetrip.outbox",
        "onetrip.states",
        "onetrip.webhooks.models",
    ),
    queues=("webhooks",),
)

#: In dependency order: a domain may read the ones before it, never the ones after.
DOMAINS: tuple[Domain, ...] = (
    payments.domain,
    ledger.domain,
    delivery.domain,
    notifications.domain,
)


def every() -> tuple[Domain, ...]:
    """The kernel's share, then every domain."""
    return (KERNEL, *DOMAINS)


def route_handlers() -> list[Any]:
    """The kernel's admin key endpoints, then every domain's Litestar handlers."""
    from onetrip.keys_api import admin_keys_controller  # the relay and worker need no routes

    kernel = [admin_keys_controller(check_key_scope)]
    return kernel + [handler for domain in DOMAINS for handler in domain.route_handlers()]


async def check_key_scope(
    session: AsyncSession, departments: Sequence[str], partner: str | None
) -> None:
    """A key bound to a department or partner that does not exist would never work (the
    kernel's keys cannot know the domains' tables, so the wiring checks)."""
    from delivery.models import CourierPartner
    from payments.models import Department

    for code in departments:
        if await session.get(Department, code) is None:
            raise ValidationFailed(f"there is no department {code}", code="unknown_department")
    if partner and await session.get(CourierPartner, partner) is None:
        raise ValidationFailed(f"there is no courier partner {partner}", code="unknown_partner")


def template_dirs() -> list[Path]:
    """Every domain's template folders, searched in this order."""
    return [folder for domain in DOMAINS for folder in domain.templates]


def queues() -> tuple[str, ...]:
    """Every Dramatiq queue the kernel and the domains use, without repeats."""
    return tuple(dict.fromkeys(q for domain in every() for q in domain.queues))


def load_job_modules(broker: dramatiq.Broker | None = None) -> None:
    """Declare every actor, and every listed queue on `broker` (default: the current one).

    A worker consumes the broker's declared queues; declaring them from the list (not
    only through whichever actors were imported) makes it consume every domain's queue.
    Safe to call again: imports and declarations happen once per broker.
    """
    for domain in every():
        domain.load_jobs()
    broker = broker or ensure_broker()
    for queue in queues():
        broker.declare_queue(queue)


def load_models() -> MetaData:
    """Every table of the kernel and the domains, on the shared metadata."""
    for domain in every():
        domain.load_models()
    return Base.metadata
