"""Prefixed, time-ordered opaque ids (`pay_…`, `txn_…`).

The first 10 characters encode milliseconds since the epoch, so ids sort by creation
time; that is what cursor pagination relies on. The remaining 16 are random.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_encode(millis, 10)}{_encode(secrets.randbits(80), 16)}"


def new_token(nbytes: int = 24) -> str:
    """An unguessable URL-safe token for applicant links."""
    return secrets.token_urlsafe(nbytes)
