"""Limits on JSON request bodies: size, nesting depth, and keys named twice.

msgspec (and the stdlib's json) decode nested arrays and objects recursively, so a
body of two thousand `[` ends in a RecursionError, a 500. Nesting is therefore counted
before anything decodes the body, by a scan that skips strings and never recurses. A
JSON object that names a key twice decodes to its last value, so a body that a proxy,
a log or a department's own audit trail reads one way would be stored another way:
once decoded, its keys are counted against the keys written in the text.

On a payment's body both checks together cost about what msgspec's decoding of it
does (the stdlib's json with an `object_pairs_hook` would cost three times more); the
exact, slower paths run only for bodies that need them, in time linear in their size.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from onetrip.errors import BadRequest

#: bytes an API request body may have. The largest payment the schemas allow, every
#: field at its maximum in Chinese and ASCII-escaped (as Python's json.dumps writes it),
#: is ~80 KB; 128 KiB leaves room for that and refuses anything far larger.
API_BODY_LIMIT = 128 * 1024
#: Stripe's events carry whole objects (a charge with its refunds): ~100 KB and more
WEBHOOK_BODY_LIMIT = 1024 * 1024
#: arrays and objects inside one another; our deepest schema nests four levels
MAX_JSON_DEPTH = 32

# A string (to its closing quote, or to the end of a truncated body), or one bracket.
# Possessive quantifiers: each byte is looked at once, whatever the input.
_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.DOTALL)
_JSON_WHITESPACE = b" \t\r\n"
# Every string, marked when a colon follows it: that string is an object's key.
_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.)*+"\s*+(:?)', re.DOTALL)
_OPENERS = frozenset(b"[{")


class JSONTooDeep(BadRequest):
    code = "json_too_deep"
    title = "The request body nests too deeply"


class DuplicateKey(BadRequest):
    code = "duplicate_key"
    title = "The request body names a key twice"


def nesting_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if arrays and objects in `body` nest deeper than `limit` (strings skipped).

    Works on any bytes (valid JSON or not) in time linear in their length."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # fewer openers than the limit cannot nest deeper than it
    depth = 0
    for token in _TOKENS.finditer(body):
        first = body[token.start()]
        if first in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif first != 0x22 and depth:  # a closing bracket (strings start with `"`)
            depth -= 1
    return False


def check_nesting(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse (400 `json_too_deep`) a body nested deeper than `limit`."""
    if nesting_exceeds(body, limit):
        raise JSONTooDeep(f"arrays and objects in the request body nest deeper than {limit} levels")


def _keys_in_object(obj: dict[str, Any]) -> int:
    count = len(obj)
    for item in obj.values():
        kind = type(item)
        if kind is dict:
            count += _keys_in_object(item)
        elif kind is list:
            count += _keys_in_array(item)
    return count


def _keys_in_array(array: list[Any]) -> int:
    count = 0
    for item in array:
        kind = type(item)
        if kind is dict:
            count += _keys_in_object(item)
        elif kind is list:
            count += _keys_in_array(item)
    return count


def _decoded_keys(value: Any) -> int:
    """Keys in every object of a decoded body (recursion bounded by `check_nesting`)."""
    kind = type(value)
    if kind is dict:
        return _keys_in_object(value)
    return _keys_in_array(value) if kind is list else 0


def check_duplicate_keys(body: bytes, value: Any) -> None:
    """Refuse (400 `duplicate_key`, the key's path in `errors`) a body whose objects
    name a key twice. `value` is `body` as it decoded (so `body` is valid JSON)."""
    decoded = _decoded_keys(value)
    # Every key ends with a quote, maybe whitespace, and a colon: counted in C once the
    # whitespace is gone. When there are no more of those than keys decoded, no key was
    # dropped (text holding `\":` only sends the check the exact way).
    if body.translate(None, _JSON_WHITESPACE).count(b'":') == decoded:
        return
    if sum(1 for colon in _STRINGS.findall(body) if colon) == decoded:
        return
    path = _first_duplicate(body)
    if path is not None:  # (None: the decoders disagree on a key; not ours to refuse)
        raise DuplicateKey(
            f"the request body names {path} twice",
            errors=[{"field": path, "message": "appears twice in one object"}],
        )


class _Pairs(dict[str, Any]):
    """A decoded object that remembers the first key it was given twice."""

    duplicate: str | None = None


def _pairs(pairs: list[tuple[str, Any]]) -> _Pairs:
    obj = _Pairs()
    for key, item in pairs:
        if key in obj and obj.duplicate is None:
            obj.duplicate = key
        obj[key] = item
    return obj


def _first_duplicate(body: bytes) -> str | None:
    """The path (`applicant.name`, `fee_split[0].department`) of a key named twice,
    outermost first; None if there is none.

    Only for a body whose counts say it holds one: the stdlib decoder is slower than
    msgspec but tells each object's keys as written. Nesting is bounded by
    `check_nesting`."""
    pending: deque[tuple[str, Any]] = deque([("", json.loads(body, object_pairs_hook=_pairs))])
    while pending:
        prefix, item = pending.popleft()
        if isinstance(item, _Pairs):
            if item.duplicate is not None:
                return f"{prefix}.{item.duplicate}" if prefix else item.duplicate
            pending.extend((f"{prefix}.{k}" if prefix else k, v) for k, v in item.items())
        elif isinstance(item, list):
            pending.extend((f"{prefix}[{i}]", v) for i, v in enumerate(item))
    return None


class CheckedJSONRequest(Request[Any, Any, Any]):
    """A request whose JSON body is checked for depth before it is decoded, and for
    keys named twice after. Litestar decodes a handler's `data` through `json()`."""

    async def json(self) -> Any:
        body = await self.body()
        check_nesting(body)
        value = await super().json()
        if body:
            try:
                check_duplicate_keys(body, value)
            except (ValueError, RecursionError) as exc:  # not JSON after all
                raise SerializationException(str(exc)) from exc
        return value
