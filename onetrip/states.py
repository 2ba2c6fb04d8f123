"""State machines as data, applied in the caller's unit of work.

A `Machine` is a table `(state, event) → state` over one ORM model, and the outbox event
type each state reached emits. `apply` is the one way a row moves:

- it takes the row lock (SELECT … FOR UPDATE, re-reading the row), so concurrent events
  for one subject are applied one after the other;
- an event that led to the current state (or a self-loop of the table) is a repeat: no
  change, nothing written, so at-least-once consumers and retried webhooks are harmless;
- with `refuse_older`, an event that occurred before the last one applied is recorded
  but not applied (a courier's late `in_transit` cannot move a delivered dispatch back);
- any other move the table lacks raises InvalidTransition;
- an applied move sets the status (and `updated_at`), runs the domain's `effect` (ledger
  booking, related rows — the domain's business, not the kernel's), records the
  transition in `state_transitions` and writes the outbox event with the payload the
  effect returned. Nothing commits here: all of it lands with the caller's unit of work,
  or none of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import msgspec
from sqlalchemy import Boolean, Index, String, func, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from onetrip import outbox
from onetrip.clock import utcnow
from onetrip.db import Base, BigIntPK, UTCDateTime
from onetrip.errors import InvalidTransition, NotFound

R = TypeVar("R")

Outcome = Literal["applied", "unchanged", "stale"]


class StateTransition(Base):
    """Every move a machine made, and every stale event it refused (applied = false)."""

    __tablename__ = "state_transitions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    machine: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    applied: Mapped[bool] = mapped_column(Boolean)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_state_transitions_subject", "machine", "subject_id", "occurred_at"),
    )


def _no_routing(row: Any) -> Mapping[str, str | None]:
    return {}


@dataclass(frozen=True)
class Machine(Generic[R]):
    """A state machine over an ORM model, declared by the domain that owns the model."""

    #: short name: the transition records' `machine`, and "no <name> <id>" errors
    name: str
    model: type[R]
    #: (current state, event) → next state; anything else is not allowed
    transitions: Mapping[tuple[str, str], str]
    #: state reached → the outbox event type the move emits
    emits: Mapping[str, str]
    status_column: str = "status"
    #: set to the moment of each applied move; None when the model has no such column
    updated_column: str | None = "updated_at"
    #: refuse (record, do not apply) an event that occurred before the last one applied
    refuse_older: bool = False
    #: the outbox columns besides the subject: e.g. {"payment_id": …, "department": …}
    routing: Callable[[R], Mapping[str, str | None]] = _no_routing
    #: state → the events that lead into it (derived from the table)
    _into: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        into: dict[str, set[str]] = {}
        for (_, event), target in self.transitions.items():
            into.setdefault(target, set()).add(event)
        object.__setattr__(self, "_into", {s: frozenset(e) for s, e in into.items()})
        missing = set(into) - set(self.emits)
        if missing:
            raise ValueError(f"machine {self.name}: no outbox event for {sorted(missing)}")

    def target(self, state: str, event: str) -> str | None:
        """The state `event` moves `state` to, or None if the table does not allow it."""
        return self.transitions.get((state, event))

    def is_repeat(self, state: str, event: str) -> bool:
        """True if `event` is one that leads into `state`: applying it again changes
        nothing (a self-loop of the table is a repeat too)."""
        target = self.target(state, event)
        return target == state or (target is None and event in self._into.get(state, ()))


@dataclass(frozen=True)
class Transition(Generic[R]):
    """What `apply` did to one row."""

    row: R
    event: str
    previous: str
    #: the row's state now (unchanged for a repeat or a stale event)
    current: str
    occurred_at: datetime
    outcome: Outcome

    @property
    def changed(self) -> bool:
        return self.outcome == "applied"


#: the domain's part of an applied move; returns the outbox event's data
Effect = Callable[[R, Transition[R]], Awaitable[Any]]


async def lock(session: AsyncSession, machine: Machine[R], subject_id: str) -> R:
    """The subject's row under a row lock, re-read from the database (not the session's
    possibly stale copy); NotFound if there is none."""
    model: Any = machine.model
    key = inspect(model).primary_key[0]
    stmt = (
        select(model)
        .where(key == subject_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no {machine.name} {subject_id}", code=f"{machine.name}_not_found")
    return row


async def last_applied_at(
    session: AsyncSession, machine: Machine[Any], subject_id: str
) -> datetime | None:
    """When the latest applied event of this subject occurred (None before the first)."""
    table = StateTransition.__table__.c
    stmt = select(func.max(table.occurred_at)).where(
        table.machine == machine.name, table.subject_id == subject_id, table.applied.is_(True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def apply(
    session: AsyncSession,
    machine: Machine[R],
    subject: str | R,
    event: str,
    effect: Effect[R],
    *,
    occurred_at: datetime | None = None,
) -> Transition[R]:
    """Apply `event` to the subject (its id, or its row) under its row lock.

    `effect(row, transition)` runs after the status moved and before the outbox event
    is written, only for an applied move; it returns the event's data (a msgspec Struct
    or a dict). Raises NotFound for no such row and InvalidTransition for a move the
    table lacks."""
    subject_id = _identity(machine, subject) if isinstance(subject, machine.model) else subject
    row = await lock(session, machine, subject_id)
    current = getattr(row, machine.status_column)
    now = utcnow()
    moment = occurred_at or now

    def result(outcome: Outcome, state: str) -> Transition[R]:
        return Transition(row, event, current, state, moment, outcome)

    if machine.is_repeat(current, event):
        return result("unchanged", current)
    target = machine.target(current, event)
    if machine.refuse_older:
        last = await last_applied_at(session, machine, subject_id)
        if last is not None and moment < last:
            await _record(session, machine, subject_id, event, current, target, moment, now, False)
            return result("stale", current)
    if target is None:
        raise InvalidTransition(
            f"{machine.name} {subject_id} is {current}; cannot {event}",
            code="invalid_state_transition",
        )
    setattr(row, machine.status_column, target)
    if machine.updated_column:
        setattr(row, machine.updated_column, now)
    transition = result("applied", target)
    data = await effect(row, transition)
    await _record(session, machine, subject_id, event, current, target, moment, now, True)
    await outbox.record_event(
        session,
        machine.emits[target],
        _builtins(data),
        subject_id=subject_id,
        occurred_at=moment,
        **machine.routing(row),
    )
    await session.flush()
    return transition


def _identity(machine: Machine[Any], row: Any) -> str:
    key = inspect(machine.model).primary_key[0]
    return str(getattr(row, key.key))


def _builtins(data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    return msgspec.to_builtins(data)  # type: ignore[no-any-return]


async def _record(
    session: AsyncSession,
    machine: Machine[Any],
    subject_id: str,
    event: str,
    previous: str,
    target: str | None,
    occurred_at: datetime,
    recorded_at: datetime,
    applied: bool,
) -> None:
    await session.execute(
        insert(StateTransition.__table__).values(
            machine=machine.name,
            subject_id=subject_id,
            event=event,
            from_state=previous,
            # a stale event the table would not even allow is recorded as going nowhere
            to_state=target or previous,
            applied=applied,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
        )
    )
