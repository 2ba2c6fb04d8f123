"""JSON request bodies: their media type, size, nesting depth, keys named twice, and
strict decoding into the handler's input type with every invalid field named.

msgspec (and the stdlib's json) decode nested arrays and objects recursively, so a
body of two thousand `[` ends in a RecursionError, a 500. Nesting is therefore counted
before anything decodes the body, by a scan that skips strings and never recurses. A
JSON object that names a key twice decodes to its last value, so a body that a proxy,
a log or a department's own audit trail reads one way would be stored another way:
once decoded, its keys are counted against the keys written in the text.

On a payment's body both checks together cost about what msgspec's decoding of it
does (the stdlib's json with an `object_pairs_hook` would cost three times more); the
exact, slower paths run only for bodies that need them, in time linear in their size.

A body must be sent as JSON (`Content-Type: application/json` or `+json`): anything else
is a 415. It is then decoded into the handler's `data` type strictly: no text taken for
a number (`"quantity": "2"`), as Litestar's own conversion of handler arguments would.
msgspec stops at the first error, so a body that fails is checked again field by field
to name every invalid one in `errors[]`, in plain words (never a regular expression).
"""

from __future__ import annotations

import json
import re
import types
import typing
import weakref
from collections import deque
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException
from litestar.types import Empty

from onetrip.errors import BadRequest, OneTripError, UnsupportedMediaType
from onetrip.textrules import text_errors_in, url_problem

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


# --- strict decoding into the handler's input type ----------------------------------


class InvalidBody(BadRequest):
    """A body whose fields do not have the types and limits the endpoint takes."""

    code = "validation_failed"
    title = "The request is not valid"


#: `meta.extra` key of a plain-words message for a value that breaks a `pattern`, e.g.
#: `Meta(pattern=r"^[0-9]{6}$", extra={FORMAT_MESSAGE: "must be six digits"})`
FORMAT_MESSAGE = "format_message"

_JSON_TYPES = {
    "int": "a whole number",
    "float": "a number",
    "str": "text (a JSON string)",
    "bool": "true or false",
    "object": "a JSON object",
    "array": "a list (a JSON array)",
    "null": "null",
    "datetime": "an RFC 3339 timestamp",
}
_EXPECTED = re.compile(r"^Expected `([^`]+)`, got `([^`]+)`$")
_LENGTH = re.compile(r"^Expected `(str|array|object)` of length (>=|<=) (\d+)$")
_BOUND = re.compile(r"^Expected `(int|float)` (>=|<=|>|<) (-?[\d.e+]+)$")
_ENUM = re.compile(r"^Invalid enum value (.+)$")
_PATTERN = re.compile(r"^Expected `str` matching regex ")
UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.+)`$")
MISSING_FIELD = re.compile(r"^Object missing required field `(.+)`$")
_AT = re.compile(r"^(.*?) - at `([^`]*)`(?: in `([^`]*)`)?$", re.DOTALL)
_COMPARISONS = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}


def _kinds(names: str) -> str:
    return " or ".join(_JSON_TYPES.get(n.strip(), n.strip()) for n in names.split("|"))


def _metas(annotation: Any) -> list[msgspec.Meta]:
    """The msgspec.Meta constraints on `annotation` and on the members of its union."""
    found: list[msgspec.Meta] = []
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        found += [m for m in extras if isinstance(m, msgspec.Meta)]
        found += _metas(base)
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            found += _metas(member)
    return found


def _choices(annotation: Any) -> list[Any]:
    """The values a Literal in `annotation` allows (inside Annotated or a union)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return list(typing.get_args(annotation))
    if origin is not None:
        return [c for member in typing.get_args(annotation) for c in _choices(member)]
    return []


def plain_message(message: str, annotation: Any = None) -> str:
    """msgspec's (or Litestar's) validation message in plain words; `annotation` is the
    field's type, for the allowed values of a Literal and the plain message of a pattern
    (`FORMAT_MESSAGE`)."""
    if match := _EXPECTED.match(message):
        expected, got = match.groups()
        return f"must be {_kinds(expected)}, not {_kinds(got)}"
    if match := _LENGTH.match(message):
        kind, op, bound = match.groups()
        unit = {"str": "character", "array": "item", "object": "entry"}[kind]
        plural = "" if bound == "1" else ("ies" if unit == "entry" else "s")
        unit = unit[:-1] if plural == "ies" else unit
        if kind == "str" and op == ">=" and bound == "1":
            return "must not be empty"
        return f"must have {_COMPARISONS[op]} {bound} {unit}{plural}"
    if match := _BOUND.match(message):
        _, op, bound = match.groups()
        return f"must be {_COMPARISONS[op]} {bound}"
    if _ENUM.match(message):
        choices = _choices(annotation)
        if choices:
            return "must be one of: " + ", ".join(str(c) for c in choices)
        return "is not one of the allowed values"
    if _PATTERN.match(message):
        for meta in _metas(annotation):
            if meta.extra and FORMAT_MESSAGE in meta.extra:
                return str(meta.extra[FORMAT_MESSAGE])
        return "is not in the expected format"
    if "RFC3339" in message:
        return "must be an RFC 3339 timestamp with an offset, e.g. 2026-03-01T09:30:00+08:00"
    if UNKNOWN_FIELD.match(message):
        return "unknown field"
    if MISSING_FIELD.match(message):
        return "required"
    return message


def join_field(prefix: str, name: str) -> str:
    if not prefix or not name:
        return prefix or name
    return prefix + name if name.startswith("[") else f"{prefix}.{name}"


def _located(path: str, error: msgspec.ValidationError, annotation: Any) -> dict[str, str]:
    """One `{field, message}` for a ValidationError raised converting the value at
    `path`: msgspec names where inside it (`$.x`, `$[0]`, a key in `$.y`)."""
    text = str(error)
    message, where, inside = text, "", None
    if match := _AT.match(text):
        message, where, inside = match.groups()
    if inside is not None:  # a dict's key: `key` in `$.metadata`
        where = inside
    where = where.removeprefix("$").removeprefix(".")
    dict_value = where.endswith("[...]")  # a dict's value (msgspec does not say which)
    field = join_field(path, where)
    if match := (UNKNOWN_FIELD.match(message) or MISSING_FIELD.match(message)):
        field = join_field(field, match.group(1))
    words = plain_message(message, annotation if not where else None)
    if inside is not None:
        words = f"each key {words}"
    elif dict_value:
        words = f"each value {words}"
    return {"field": field or "body", "message": words}


def _struct_in(annotation: Any) -> type[msgspec.Struct] | None:
    """The Struct type `annotation` names (maybe inside Annotated, or `| None`)."""
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    if typing.get_origin(annotation) is not None:
        structs = [s for a in typing.get_args(annotation) if (s := _struct_in(a)) is not None]
        if len(structs) == 1:
            return structs[0]
    return None


def _field_errors(
    value: Any, annotation: Any, path: str, errors: list[dict[str, str]], *, free: bool, url: bool
) -> None:
    struct = _struct_in(annotation)
    if struct is not None and isinstance(value, dict):
        _struct_errors(value, struct, path, errors)
        return
    try:
        converted = msgspec.convert(value, annotation, strict=True)
    except msgspec.ValidationError as exc:
        errors.append(_located(path, exc, annotation))
        return
    except OneTripError as exc:  # a nested type's own check (its field names are its own)
        for item in exc.errors or [{"field": "", "message": exc.detail}]:
            errors.append(
                {"field": join_field(path, item["field"]) or "body", "message": item["message"]}
            )
        return
    if isinstance(converted, msgspec.Struct):
        return
    text_errors = text_errors_in(converted, path, free=free)
    errors.extend(text_errors)
    problem = url_problem(converted) if url and isinstance(converted, str) else None
    if problem and not text_errors:
        errors.append({"field": path, "message": problem})


def _struct_errors(
    value: dict[str, Any], struct: type[msgspec.Struct], path: str, errors: list[dict[str, str]]
) -> None:
    fields = msgspec.structs.fields(struct)
    if struct.__struct_config__.forbid_unknown_fields:
        known = {f.encode_name for f in fields}
        errors.extend(
            {"field": join_field(path, str(key)), "message": "unknown field"}
            for key in value
            if key not in known
        )
    free = getattr(struct, "__free_text__", ())
    urls = getattr(struct, "__url_fields__", ())
    for field in fields:
        child = join_field(path, field.encode_name)
        if field.encode_name not in value:
            if field.required:
                errors.append({"field": child, "message": "required"})
            continue
        _field_errors(
            value[field.encode_name],
            field.type,
            child,
            errors,
            free=field.name in free,
            url=field.name in urls,
        )


#: a decoded JSON value's type → its JSON name
_JSON_NAMES = {dict: "object", list: "array", str: "str", int: "int", float: "float", bool: "bool"}


def body_errors(value: Any, body_type: type[msgspec.Struct]) -> list[dict[str, str]]:
    """`[{field, message}]` for every field of `value` (a decoded body) that `body_type`
    refuses: missing, unknown, of the wrong type or outside its limits, or text the
    rules of onetrip.textrules refuse. Empty if the failure lies elsewhere."""
    if value is None:
        return [{"field": "body", "message": "a JSON request body is required"}]
    if not isinstance(value, dict):
        kind = _kinds(_JSON_NAMES.get(type(value), "null"))
        return [{"field": "body", "message": f"must be a JSON object, not {kind}"}]
    errors: list[dict[str, str]] = []
    _struct_errors(value, body_type, "", errors)
    return errors


def decode_strictly(value: Any, body_type: type[msgspec.Struct]) -> msgspec.Struct:
    """`value` (a decoded JSON body) as `body_type`, converted strictly (JSON's types as
    they are: no text for a number); InvalidBody (400) naming every invalid field."""
    try:
        return msgspec.convert(value, body_type, strict=True)
    except msgspec.ValidationError as exc:
        errors = body_errors(value, body_type) or [_located("", exc, body_type)]
    refused = any(e["message"].startswith("must not contain ") for e in errors)
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise InvalidBody(
        f"Validation failed: {first['field']}: {first['message']}{more}",
        code="invalid_characters" if refused else "validation_failed",
        errors=errors,
    )


def is_json_media_type(media_type: str) -> bool:
    media_type = media_type.strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


#: handler → the Struct its `data` is, or None (weak: apps built in tests come and go)
_BODY_TYPES: weakref.WeakKeyDictionary[Any, type[msgspec.Struct] | None] = (
    weakref.WeakKeyDictionary()
)


def _body_type(handler: Any) -> type[msgspec.Struct] | None:
    try:
        return _BODY_TYPES[handler]
    except KeyError:
        pass
    parameter = handler.parsed_fn_signature.parameters.get("data")
    annotation = getattr(parameter, "annotation", None)
    is_struct = isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)
    body_type = _BODY_TYPES[handler] = annotation if is_struct else None
    return body_type


class CheckedJSONRequest(Request[Any, Any, Any]):
    """A request whose body must be JSON, is checked for depth before it is decoded and
    for keys named twice after, and is decoded strictly into the handler's `data` type.
    Litestar reads a handler's `data` through `json()`: for a Struct it gets the Struct
    decoded here, which its own (lenient) conversion passes through unchanged."""

    async def json(self) -> Any:
        if self._json is not Empty:  # type: ignore[has-type]
            return self._json  # type: ignore[has-type]
        body = await self.body()
        media_type = self.content_type[0]
        if (body or media_type) and not is_json_media_type(media_type):
            raise UnsupportedMediaType(
                "send the request body as JSON, with Content-Type: application/json "
                f"(this request's is {media_type or 'missing'})"
            )
        check_nesting(body)
        value = await super().json()
        if body:
            try:
                check_duplicate_keys(body, value)
            except (ValueError, RecursionError) as exc:  # not JSON after all
                raise SerializationException(str(exc)) from exc
        body_type = _body_type(self.route_handler)
        if body_type is not None:
            value = decode_strictly(value, body_type)
            self._json = self._connection_state.json = value
        return value
