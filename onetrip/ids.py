"""Prefixed, time-ordered opaque ids (`pay_…`, `txn_…`).

The first 10 characters encode milliseconds since the epoch, so ids sort by creation
time; that is what cursor pagination and the order of a payment's timeline rely on.
The remaining 16 are random, except that ids made by one process within the same
millisecond count up from the previous one, so they stay in order there too.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = (0, 0)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _next() -> tuple[int, int]:
    global _last
    millis = time.time_ns() // 1_000_000
    with _lock:
        last_millis, last_random = _last
        if millis <= last_millis:
            millis, random = last_millis, last_random + 1 + secrets.randbits(16)
            if random >= 1 << _RANDOM_BITS:  # astronomically rare: borrow the next ms
                millis, random = millis + 1, secrets.randbits(_RANDOM_BITS - 1)
        else:
            random = secrets.randbits(_RANDOM_BITS - 1)  # room to count up
        _last = (millis, random)
    return millis, random


#: how many characters follow the prefix and its `_`
ID_LENGTH = 26
#: what `new_id` makes (a prefix of 2–12 letters, `_`, ID_LENGTH Crockford base32 characters)
ID_PATTERN = re.compile(rf"[a-z]{{2,12}}_[{re.escape(_ALPHABET)}]{{{ID_LENGTH}}}")


def is_id(value: str, prefix: str | None = None) -> bool:
    """True if `value` is an id as `new_id` makes them (of kind `prefix`, when given)."""
    if ID_PATTERN.fullmatch(value) is None:
        return False
    return prefix is None or value.startswith(f"{prefix}_")


def new_id(prefix: str) -> str:
    millis, random = _next()
    return f"{prefix}_{_encode(millis, 10)}{_encode(random, 16)}"


def new_token(nbytes: int = 24) -> str:
    """An unguessable URL-safe token for applicant links."""
    return secrets.token_urlsafe(nbytes)
