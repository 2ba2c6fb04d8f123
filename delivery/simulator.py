"""The simulated courier of `onetrip demo` (ONETRIP_COURIER_SIMULATOR=true).

It acts as the demo partner exactly as a real one would: over HTTP, through the courier
API at `settings.public_url`, with its own courier key. Each parcel moves one step
(accepted → picked_up → in_transit → out_for_delivery → delivered) once
`ONETRIP_COURIER_SIMULATOR_STEP` seconds (15 by default: about a minute and a quarter
door to door) have passed since its last event. Event ids are derived from the parcel
and the step, so two ticks racing (two relays) report the same event twice, which the
API answers with "no change".

The key comes from ONETRIP_COURIER_SIMULATOR_KEY, or from `use_key` (what `onetrip demo`
calls in-process after creating it).
"""

from __future__ import annotations

import itertools
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx

from onetrip.clock import utcnow
from onetrip.jobs import actor
from onetrip.scheduler import periodic
from onetrip.settings import get_settings

log = logging.getLogger(__name__)

#: the path of a parcel, and the next status from each
JOURNEY = ("created", "accepted", "picked_up", "in_transit", "out_for_delivery", "delivered")
NEXT = dict(itertools.pairwise(JOURNEY))
LOCATIONS = {
    "accepted": "OneTrip 集散中心",
    "picked_up": "OneTrip 集散中心",
    "in_transit": "杭州转运中心",
    "out_for_delivery": "派送网点",
    "delivered": "收件地址",
}

_key: str | None = None


def use_key(key: str | None) -> None:
    """Have the simulator use this courier key (else ONETRIP_COURIER_SIMULATOR_KEY)."""
    global _key
    _key = key


def current_key() -> str | None:
    return _key or get_settings().courier_simulator_key


def _last_moment(dispatch: dict[str, Any]) -> datetime:
    moments = [datetime.fromisoformat(e["occurred_at"]) for e in dispatch.get("events", [])]
    return max([datetime.fromisoformat(dispatch["created_at"]), *moments])


async def step_all(client: httpx.AsyncClient, *, step: float, now: datetime | None = None) -> int:
    """Move every due parcel of the key's partner one step; returns how many moved.

    `client` has the base URL and the courier key (see `simulate_courier`)."""
    now = now or utcnow()
    moved = 0
    for status in JOURNEY[:-1]:
        cursor = None
        while True:
            params: dict[str, Any] = {"status": status, "limit": 200}
            if cursor:
                params["cursor"] = cursor
            listed = await client.get("/courier/v1/dispatches", params=params)
            listed.raise_for_status()
            page = listed.json()
            for dispatch in page["data"]:
                if now - _last_moment(dispatch) < timedelta(seconds=step):
                    continue
                if await _advance(client, dispatch, now):
                    moved += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
    return moved


async def _advance(client: httpx.AsyncClient, dispatch: dict[str, Any], now: datetime) -> bool:
    status = NEXT[dispatch["status"]]
    body: dict[str, Any] = {
        "event_id": f"sim-{dispatch['id']}-{status}",
        "status": status,
        "occurred_at": now.isoformat(),
        "location": LOCATIONS[status],
    }
    if status == "delivered":
        body["recipient_name"] = dispatch["address"].get("recipient") or "本人"
        body["note"] = "本人签收（模拟）"
    answer = await client.post(f"/courier/v1/dispatches/{dispatch['id']}/events", json=body)
    if answer.status_code != 200:
        log.warning("simulated courier: %s %s → %s", dispatch["id"], status, answer.text[:200])
        return False
    return True


@periodic(1.0)
@actor("delivery", max_retries=0)  # the next tick is the retry
async def simulate_courier() -> None:
    """One tick of the simulated courier (nothing unless ONETRIP_COURIER_SIMULATOR)."""
    settings = get_settings()
    key = current_key()
    if not settings.courier_simulator:
        return
    if not key:
        log.warning("courier simulator on, but no key: set ONETRIP_COURIER_SIMULATOR_KEY")
        return
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=settings.public_url, headers=headers, timeout=10
    ) as client:
        try:
            await step_all(client, step=settings.courier_simulator_step)
        except httpx.HTTPError as error:  # the server not up yet, or restarting
            log.info("simulated courier: %s", error)
