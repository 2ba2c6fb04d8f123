"""Money: integer minor units plus an ISO 4217 currency, and the one place that splits it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

K = TypeVar("K")

BPS_WHOLE = 10_000
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def valid_currency(code: str) -> bool:
    return bool(_CURRENCY.match(code))


def split_by_bps(amount: int, shares: Sequence[tuple[K, int]]) -> list[tuple[K, int]]:
    """Split `amount` by basis-point shares so the parts always add up to `amount`.

    Largest remainder: each part gets the floor of its exact share, and the fen left
    over go one each to the parts with the largest remainders (ties: earlier share).
    Works for negative amounts too (a refund splits like its payment, mirrored).
    """
    if not shares:
        raise ValueError("no shares to split by")
    if sum(bps for _, bps in shares) != BPS_WHOLE:
        raise ValueError("shares must add up to 10000 basis points")
    if any(bps < 0 for _, bps in shares):
        raise ValueError("shares cannot be negative")
    sign = -1 if amount < 0 else 1
    magnitude = abs(amount)
    floors = []
    remainders = []
    for index, (_, bps) in enumerate(shares):
        whole, rest = divmod(magnitude * bps, BPS_WHOLE)
        floors.append(whole)
        remainders.append((-rest, index))
    left = magnitude - sum(floors)
    for _, index in sorted(remainders)[:left]:
        floors[index] += 1
    return [(key, sign * part) for (key, _), part in zip(shares, floors, strict=True)]
