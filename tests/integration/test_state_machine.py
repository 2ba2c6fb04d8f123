"""`onetrip.states.apply` on a real database, both dialects: on a small model of its own
(a parcel, declared here on a metadata of its own so it is no part of the schema), and
through payments and refunds, which run on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from onetrip import states
from onetrip.clock import utcnow
from onetrip.db import Database, UTCDateTime, get_database, unit_of_work
from onetrip.errors import InvalidTransition, NotFound
from onetrip.ids import new_id
from onetrip.outbox import OutboxEvent
from onetrip.states import Machine, StateTransition, Transition
from tests.factories import auth
from tests.integration.test_payments_support import create_payment, idem, paid_payment

pytest_plugins = ["tests.integration.test_payments_support"]


class _TestBase(DeclarativeBase):
    pass


class Parcel(_TestBase):
    __tablename__ = "test_parcels"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    courier: Mapped[str | None] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


PARCELS = Machine(
    name="parcel",
    model=Parcel,
    transitions={
        ("created", "pick_up"): "in_transit",
        ("in_transit", "deliver"): "delivered",
        ("in_transit", "lose"): "lost",
        ("lost", "deliver"): "delivered",
    },
    emits={
        "in_transit": "parcel.in_transit",
        "delivered": "parcel.delivered",
        "lost": "parcel.lost",
    },
    status_column="state",
    updated_column="changed_at",
    refuse_older=True,  # couriers report late and out of order
)

#: the same table, for a subject whose events always apply in the order they arrive
PARCELS_IN_ORDER = Machine(
    name="parcel_any",
    model=Parcel,
    transitions=PARCELS.transitions,
    emits=PARCELS.emits,
    status_column="state",
    updated_column="changed_at",
)


@pytest.fixture
async def parcels(db: Database) -> AsyncIterator[None]:
    async with db.engine.begin() as connection:
        await connection.run_sync(_TestBase.metadata.create_all)
    yield
    # PostgreSQL's test database is shared by the session: leave it as migrated.
    async with db.engine.begin() as connection:
        await connection.run_sync(_TestBase.metadata.drop_all)


async def new_parcel() -> str:
    parcel_id = new_id("pcl")
    async with unit_of_work() as session:
        session.add(Parcel(id=parcel_id, state="created", changed_at=utcnow()))
    return parcel_id


def note(courier: str | None = None) -> Any:
    """An effect: what the domain does with an applied move, and the event it emits."""

    async def effect(parcel: Parcel, move: Transition[Parcel]) -> dict[str, Any]:
        parcel.courier = courier or parcel.courier
        return {"parcel_id": parcel.id, "from": move.previous, "to": move.current}

    return effect


async def pick_up_and(event: str, parcel_id: str, **kw: Any) -> Transition[Parcel]:
    async with unit_of_work() as session:
        return await states.apply(session, PARCELS, parcel_id, event, note(), **kw)


async def records(parcel_id: str) -> list[tuple[str, str, str, bool]]:
    async with get_database().session() as session:
        rows = (
            await session.execute(
                select(StateTransition)
                .where(StateTransition.subject_id == parcel_id)
                .order_by(StateTransition.id)
            )
        ).scalars()
        return [(r.event, r.from_state, r.to_state, r.applied) for r in rows]


async def emitted(subject_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with get_database().session() as session:
        rows = (
            await session.execute(
                select(OutboxEvent)
                .where(OutboxEvent.subject_id == subject_id)
                .order_by(OutboxEvent.id)
            )
        ).scalars()
        return [(r.type, r.data) for r in rows]


async def state_of(parcel_id: str) -> Parcel:
    async with get_database().session() as session:
        parcel = await session.get(Parcel, parcel_id)
        assert parcel is not None
        return parcel


async def test_an_applied_move_sets_the_state_runs_the_effect_records_and_emits(parcels):
    parcel_id = await new_parcel()
    before = utcnow()
    async with unit_of_work() as session:
        move = await states.apply(session, PARCELS, parcel_id, "pick_up", note("SF"))
    assert (move.previous, move.current, move.outcome, move.changed) == (
        "created",
        "in_transit",
        "applied",
        True,
    )
    parcel = await state_of(parcel_id)
    assert (parcel.state, parcel.courier) == ("in_transit", "SF")
    assert parcel.changed_at >= before
    assert await records(parcel_id) == [("pick_up", "created", "in_transit", True)]
    assert await emitted(parcel_id) == [
        ("parcel.in_transit", {"parcel_id": parcel_id, "from": "created", "to": "in_transit"})
    ]


async def test_a_repeated_event_changes_nothing_and_writes_nothing(parcels):
    parcel_id = await new_parcel()
    await pick_up_and("pick_up", parcel_id)
    again = await pick_up_and("pick_up", parcel_id)
    assert (again.outcome, again.changed, again.current) == ("unchanged", False, "in_transit")
    assert len(await records(parcel_id)) == 1
    assert len(await emitted(parcel_id)) == 1


async def test_a_move_the_table_lacks_is_refused_and_leaves_no_trace(parcels):
    parcel_id = await new_parcel()
    with pytest.raises(InvalidTransition) as refused:
        await pick_up_and("deliver", parcel_id)
    assert refused.value.code == "invalid_state_transition"
    assert "parcel" in refused.value.detail and "created" in refused.value.detail
    assert (await state_of(parcel_id)).state == "created"
    assert await records(parcel_id) == [] and await emitted(parcel_id) == []


async def test_no_such_subject_is_not_found(parcels):
    with pytest.raises(NotFound) as missing:
        await pick_up_and("pick_up", "pcl_nothing")
    assert missing.value.code == "parcel_not_found"


async def test_an_event_older_than_the_last_applied_is_recorded_not_applied(parcels):
    parcel_id = await new_parcel()
    t0 = utcnow() - timedelta(hours=2)
    await pick_up_and("pick_up", parcel_id, occurred_at=t0)
    await pick_up_and("deliver", parcel_id, occurred_at=t0 + timedelta(hours=1))
    # The courier's "lost" scan from before the delivery arrives late.
    late = await pick_up_and("lose", parcel_id, occurred_at=t0 + timedelta(minutes=30))
    assert (late.outcome, late.changed, late.current) == ("stale", False, "delivered")
    assert (await state_of(parcel_id)).state == "delivered"
    assert await records(parcel_id) == [
        ("pick_up", "created", "in_transit", True),
        ("deliver", "in_transit", "delivered", True),
        ("lose", "delivered", "delivered", False),  # a move the table lacks, kept anyway
    ]
    assert [t for t, _ in await emitted(parcel_id)] == ["parcel.in_transit", "parcel.delivered"]


async def test_a_late_event_the_table_allows_is_not_applied_either(parcels):
    parcel_id = await new_parcel()
    t0 = utcnow() - timedelta(hours=2)
    await pick_up_and("pick_up", parcel_id, occurred_at=t0 + timedelta(hours=1))
    late = await pick_up_and("lose", parcel_id, occurred_at=t0)
    assert late.outcome == "stale"
    assert (await state_of(parcel_id)).state == "in_transit"
    assert (await records(parcel_id))[-1] == ("lose", "in_transit", "lost", False)
    # A newer one still applies.
    newer = await pick_up_and("lose", parcel_id, occurred_at=t0 + timedelta(hours=2))
    assert newer.outcome == "applied" and (await state_of(parcel_id)).state == "lost"


async def test_a_machine_that_does_not_refuse_older_events_applies_them(parcels):
    parcel_id = await new_parcel()
    t0 = utcnow() - timedelta(hours=2)
    async with unit_of_work() as session:
        await states.apply(session, PARCELS_IN_ORDER, parcel_id, "pick_up", note(), occurred_at=t0)
        late = await states.apply(
            session, PARCELS_IN_ORDER, parcel_id, "lose", note(), occurred_at=t0 - timedelta(1)
        )
    assert late.outcome == "applied" and (await state_of(parcel_id)).state == "lost"


async def test_the_move_its_record_and_its_event_commit_with_the_callers_work_or_not_at_all(
    parcels,
):
    parcel_id = await new_parcel()

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with unit_of_work() as session:
            move = await states.apply(session, PARCELS, parcel_id, "pick_up", note("SF"))
            assert move.changed
            # Inside the unit of work, all three are there...
            assert (
                await session.execute(
                    select(StateTransition.to_state).where(StateTransition.subject_id == parcel_id)
                )
            ).scalars().all() == ["in_transit"]
            raise Abandon()
    # ...and after the rollback, none of them is.
    parcel = await state_of(parcel_id)
    assert (parcel.state, parcel.courier) == ("created", None)
    assert await records(parcel_id) == [] and await emitted(parcel_id) == []


async def test_a_failing_effect_rolls_the_move_back(parcels):
    parcel_id = await new_parcel()

    async def refuse(parcel: Parcel, move: Transition[Parcel]) -> dict[str, Any]:
        raise RuntimeError("the ledger said no")

    with pytest.raises(RuntimeError):
        async with unit_of_work() as session:
            await states.apply(session, PARCELS, parcel_id, "pick_up", refuse)
    assert (await state_of(parcel_id)).state == "created"
    assert await records(parcel_id) == [] and await emitted(parcel_id) == []


async def test_apply_takes_the_row_and_rereads_it(parcels):
    parcel_id = await new_parcel()
    async with unit_of_work() as session:
        stale_copy = await session.get(Parcel, parcel_id)
        assert stale_copy is not None
        stale_copy.state = "lost"  # never flushed: the database still says created
        session.expunge(stale_copy)
        move = await states.apply(session, PARCELS, stale_copy, "pick_up", note())
    assert move.previous == "created" and move.current == "in_transit"


# --- payments and refunds run on it -------------------------------------------------


async def test_a_payments_moves_are_recorded_and_its_repeats_are_not(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    assert await records(payment["id"]) == [
        ("start", "created", "started", True),
        ("succeed", "started", "succeeded", True),
    ]
    from payments import service

    async with unit_of_work() as session:
        again, changed = await service.apply_event(session, payment["id"], "succeed")
        assert (again.status, changed) == ("succeeded", False)
        with pytest.raises(InvalidTransition):
            await service.apply_event(session, payment["id"], "cancel")
    assert len(await records(payment["id"])) == 2
    types = [t for t, _ in await emitted(payment["id"])]
    assert types == ["payment.created", "payment.started", "payment.succeeded"]


async def test_a_cancelled_payment_records_the_cancel(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/cancel", headers=auth(keys["psb"], idem("c"))
    )
    assert response.status_code == 200, response.text
    assert await records(payment["id"]) == [("cancel", "created", "cancelled", True)]


async def test_a_refund_paid_then_failed_walks_the_refund_machine_once(app_client, keys):
    from payments import service

    payment = await paid_payment(app_client, keys["psb"])
    response = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 3000, "reason": "申请人撤回申请"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert response.status_code == 201, response.text
    refund_id = response.json()["id"]
    async with unit_of_work() as session:
        _, repeated = await service.settle_refund(session, refund_id, "succeeded")
        _, undone = await service.settle_refund(session, refund_id, "failed")
        _, undone_again = await service.settle_refund(session, refund_id, "failed")
        _, reopened = await service.settle_refund(session, refund_id, "succeeded")
    assert (repeated, undone, undone_again, reopened) == (False, True, False, False)
    assert await records(refund_id) == [
        ("succeed", "pending", "succeeded", True),
        ("fail", "succeeded", "failed", True),
    ]
    events = await emitted(refund_id)
    assert [t for t, _ in events] == ["refund.created", "refund.succeeded", "refund.failed"]
    assert events[-1][1]["amount_refunded"] == 0 and events[-1][1]["refund_status"] == "none"
