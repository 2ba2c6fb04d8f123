"""The licence and dispatch machines, as data, run by the kernel (onetrip/states.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from delivery.models import Dispatch, License
from onetrip.states import Machine

ISSUED, RENDERED, PRINTED, DISPATCHED, DELIVERED = (
    "issued",
    "rendered",
    "printed",
    "dispatched",
    "delivered",
)
PICKUP_READY, COLLECTED, RETURNED, NEEDS_ATTENTION, REVOKED = (
    "pickup_ready",
    "collected",
    "returned",
    "needs_attention",
    "revoked",
)
LICENSE_FINAL: Final = frozenset({DELIVERED, COLLECTED, REVOKED})

#: (current status, event) → new status; anything else is refused (409).
LICENSE_TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (ISSUED, "render"): RENDERED,
    (RENDERED, "print"): PRINTED,
    # after printing: a courier partner takes it, or none serves the address, or the
    # applicant collects it at the window
    (PRINTED, "dispatch"): DISPATCHED,
    (PRINTED, "no_partner"): NEEDS_ATTENTION,
    (PRINTED, "ready_for_pickup"): PICKUP_READY,
    (DISPATCHED, "deliver"): DELIVERED,
    (DISPATCHED, "return"): RETURNED,
    (PICKUP_READY, "collect"): COLLECTED,
    # a department's redispatch (a new dispatch and label, perhaps to a corrected
    # address: the printed licence itself is unchanged) or the decision that the
    # applicant collects it instead
    (RETURNED, "redispatch"): DISPATCHED,
    (NEEDS_ATTENTION, "redispatch"): DISPATCHED,
    (RETURNED, "ready_for_pickup"): PICKUP_READY,
    (NEEDS_ATTENTION, "ready_for_pickup"): PICKUP_READY,
    (RETURNED, "no_partner"): NEEDS_ATTENTION,
    **{
        (state, "revoke"): REVOKED
        for state in (
            ISSUED,
            RENDERED,
            PRINTED,
            DISPATCHED,
            PICKUP_READY,
            RETURNED,
            NEEDS_ATTENTION,
        )
    },
}

#: `license.issued` is written at issue; each move emits the event of the state reached
LICENSE_EVENT_TYPES: Final[dict[str, str]] = {
    RENDERED: "license.rendered",
    PRINTED: "license.printed",
    DISPATCHED: "license.dispatched",
    DELIVERED: "license.delivered",
    RETURNED: "license.returned",
    NEEDS_ATTENTION: "license.needs_attention",
    PICKUP_READY: "license.pickup_ready",
    COLLECTED: "license.collected",
    REVOKED: "license.revoked",
}


def _license_routing(license: License) -> Mapping[str, str | None]:
    return {"payment_id": license.payment_id, "department": license.department}


LICENSE_MACHINE: Final = Machine(
    name="license",
    model=License,
    transitions=LICENSE_TRANSITIONS,
    emits=LICENSE_EVENT_TYPES,
    routing=_license_routing,
)

# A dispatch's statuses are the courier API's event statuses (API.md), plus "created".
D_CREATED, ACCEPTED, PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY = (
    "created",
    "accepted",
    "picked_up",
    "in_transit",
    "out_for_delivery",
)
FAILED_ATTEMPT, D_DELIVERED, D_RETURNED = "failed_attempt", "delivered", "returned"
DISPATCH_FINAL: Final = frozenset({D_DELIVERED, D_RETURNED})
COURIER_STATUSES: Final = (
    ACCEPTED,
    PICKED_UP,
    IN_TRANSIT,
    OUT_FOR_DELIVERY,
    D_DELIVERED,
    FAILED_ATTEMPT,
    D_RETURNED,
)
_MOVING: Final = (D_CREATED, ACCEPTED, PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY, FAILED_ATTEMPT)

#: A partner may skip steps (a parcel scanned first when out for delivery), so from any
#: non-final status every courier status is allowed; the event is its own name. Final
#: statuses have no way out. Order is kept by the events' `occurred_at`
#: (`refuse_older`): a late `in_transit` is recorded, never applied.
DISPATCH_TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (state, status): status for state in _MOVING for status in COURIER_STATUSES
}

DISPATCH_EVENT_TYPES: Final[dict[str, str]] = {
    status: "dispatch.status_changed" for status in COURIER_STATUSES
}


def _dispatch_routing(dispatch: Dispatch) -> Mapping[str, str | None]:
    return {"payment_id": dispatch.payment_id, "department": dispatch.department}


DISPATCH_MACHINE: Final = Machine(
    name="dispatch",
    model=Dispatch,
    transitions=DISPATCH_TRANSITIONS,
    emits=DISPATCH_EVENT_TYPES,
    refuse_older=True,
    routing=_dispatch_routing,
)
