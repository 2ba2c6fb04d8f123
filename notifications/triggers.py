"""Which outbox events tell the applicant something, and what: the one table.

Adding an event type is a template (`notifications.messages`, the kind) and one line
here. A trigger may ask for a condition on the event's data (`when`): each of its
(field, value) pairs must match, e.g. `dispatch.status_changed` tells the applicant
only when the parcel is out for delivery or an attempt failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Trigger:
    """Event `event_type` (when its data matches `when`) becomes a message of `kind`;
    `attach_receipt`: the email carries the payment's receipt PDF; `licence_step`: it
    tells where the licence is now, so it is out of date once a later step's message
    was sent to the same recipient (then it is skipped, never sent after it)."""

    event_type: str
    kind: str
    when: Mapping[str, Any] = field(default_factory=dict)
    attach_receipt: bool = False
    licence_step: bool = False

    def matches(self, event_type: str, data: Mapping[str, Any]) -> bool:
        return event_type == self.event_type and all(
            data.get(name) == value for name, value in self.when.items()
        )


TRIGGERS: tuple[Trigger, ...] = (
    Trigger("payment.succeeded", "payment_succeeded", attach_receipt=True),
    Trigger("payment.failed", "payment_failed"),
    Trigger("refund.succeeded", "refunded"),
    Trigger("license.printed", "license_printed", licence_step=True),
    Trigger("license.dispatched", "dispatched", licence_step=True),
    Trigger(
        "dispatch.status_changed",
        "out_for_delivery",
        when={"status": "out_for_delivery"},
        licence_step=True,
    ),
    Trigger(
        "dispatch.status_changed",
        "failed_attempt",
        when={"status": "failed_attempt"},
        licence_step=True,
    ),
    Trigger("license.delivered", "delivered", licence_step=True),
    Trigger("license.pickup_ready", "pickup_ready", licence_step=True),
    Trigger("license.collected", "collected", licence_step=True),
    Trigger("license.returned", "returned", licence_step=True),
)

#: Every event type some trigger listens to (what the applicant consumer subscribes to).
EVENT_TYPES: tuple[str, ...] = tuple(dict.fromkeys(t.event_type for t in TRIGGERS))

#: The kinds that tell a step of the licence's way (one licence per payment): of two
#: such messages to one recipient, the one caused by the later event wins.
LICENCE_STEP_KINDS: frozenset[str] = frozenset(t.kind for t in TRIGGERS if t.licence_step)


def trigger_for(event_type: str, data: Mapping[str, Any]) -> Trigger | None:
    """The first trigger matching the event, or None (the event tells nobody anything,
    e.g. a parcel merely in transit)."""
    for trigger in TRIGGERS:
        if trigger.matches(event_type, data):
            return trigger
    return None
