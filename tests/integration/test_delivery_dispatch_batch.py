"""Dispatching a print run's licences in batches, on SQLite and PostgreSQL: one
licence's `license.printed` hands on the other printed licences of its run in the same
unit of work, and their own events (after, or racing) make no second dispatch."""

from __future__ import annotations

import asyncio
from typing import Any

from delivery import dispatching
from delivery.models import License, PrintRun, PrintRunItem
from onetrip.clock import utcnow
from onetrip.db import unit_of_work
from onetrip.ids import new_id
from tests.integration.test_delivery_dispatch import (
    add_partner,
    consume_printed,
    dispatches_of,
    license_row,
    printed_license,
)


async def in_one_run(licenses: list[License]) -> str:
    """A sent print run holding the licences, in order (as the print cut-off makes)."""
    run_id = new_id("prn")
    async with unit_of_work() as session:
        session.add(
            PrintRun(
                id=run_id,
                station="default",
                status="sent",
                printer="spool",
                pages=2 * len(licenses),
                license_count=len(licenses),
                attempts=1,
                created_at=utcnow(),
            )
        )
        await session.flush()
        for position, license in enumerate(licenses, start=1):
            session.add(
                PrintRunItem(
                    license_id=license.id,
                    print_no=1,
                    print_run_id=run_id,
                    position=position,
                    sha256="0" * 64,
                    pages=1,
                    cover_sha256=None,
                    cover_pages=0,
                )
            )
    return run_id


async def test_one_printed_event_dispatches_the_printed_licences_of_its_run(db: Any) -> None:
    await add_partner("SF")
    run = [await printed_license() for _ in range(3)]
    pickup = await printed_license(method="pickup")
    outside = await printed_license()  # printed, but in no run with the others
    await in_one_run([*run, pickup])

    await consume_printed(run[0].id)

    for license in run:
        [dispatch] = await dispatches_of(license.id)
        assert (await license_row(license.id)).status == "dispatched"
        assert dispatch.partner == "SF"
    assert (await license_row(pickup.id)).status == "pickup_ready"
    assert await dispatches_of(outside.id) == []
    assert (await license_row(outside.id)).status == "printed"

    for license in [*run, pickup, outside]:  # their own events come later: no-ops
        await consume_printed(license.id)
    for license in [*run, outside]:
        assert len(await dispatches_of(license.id)) == 1


async def test_a_batch_takes_at_most_the_batch_size(db: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(dispatching, "DISPATCH_BATCH", 1)
    await add_partner("SF")
    run = [await printed_license() for _ in range(3)]
    await in_one_run(run)

    await consume_printed(run[0].id)

    statuses = [(await license_row(license.id)).status for license in run]
    assert statuses == ["dispatched", "dispatched", "printed"]


async def test_every_event_of_a_run_at_once_makes_one_dispatch_per_licence(db: Any) -> None:
    await add_partner("SF")
    run = [await printed_license() for _ in range(6)]
    await in_one_run(run)

    await asyncio.gather(*(consume_printed(license.id) for license in run))

    for license in run:
        assert len(await dispatches_of(license.id)) == 1
        assert (await license_row(license.id)).status == "dispatched"
