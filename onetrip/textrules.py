"""What text the service stores: no control or invisible characters, no blank names.

Names, codes and references are printed on receipts and licences, shown on pages and
sent to partners. A NUL cannot be stored by PostgreSQL (and is stored by SQLite), a
line break in a URL splits the header or attribute it is echoed into, a right-to-left
override (U+202E) or a zero-width space makes two different names look the same, and
a name of spaces (U+3000, the ideographic space, among them) is no name. Such text is
refused with a 400 naming every field, before anything is written.

Two kinds of field:
- single-line text (the default: names, codes, references, address lines, metadata
  keys): no Unicode control (Cc), format (Cf: bidi controls, zero-width characters,
  the byte order mark, soft hyphen…), surrogate, or line/paragraph separator
  characters; and not only whitespace. Other spaces (U+3000 between a family and a
  given name, as some write them) are fine inside a name, and so are private-use and
  unassigned code points: rare characters of real names live there (CJK Extension H
  is unassigned in Python 3.11's Unicode 14 tables).
- free text (`Struct` fields listed in its `__free_text__`: a refund's reason, metadata
  values): tab, line feed and carriage return are allowed, and so are the joiners that
  emoji and some scripts need; other control characters and the bidi embedding,
  override and isolate controls are not.

Text that is only whitespace is refused in both (an empty value stays allowed where the
type allows it, as metadata values do).

Input types call `check_text(self)` from `__post_init__`, so a value decoded from a
request, built by the CLI or the demo, is checked alike.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec

from onetrip.errors import BadRequest

_LINE_BREAKS_AND_TAB = frozenset("\t\n\r")
#: bidi embedding, override and isolate controls: they reorder what is displayed
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class InvalidText(BadRequest):
    """Text a field may not hold; `errors` names each field and why."""

    code = "invalid_characters"
    title = "The request contains text that cannot be accepted"


def _describe(char: str) -> str:
    if char == "\x00":
        return "must not contain a NUL character (U+0000)"
    category = unicodedata.category(char)
    kind = "control" if category == "Cc" else "invisible or formatting"
    return f"must not contain {kind} characters (U+{ord(char):04X})"


def single_line_problem(text: str) -> str | None:
    """Why `text` may not be a name, code or other single-line value (None: it may)."""
    if not text.isprintable():  # C-speed: the usual name has nothing to look at
        for char in text:
            if unicodedata.category(char) in _REFUSED_CATEGORIES:
                return _describe(char)
    if text and not text.strip():
        return "must not be blank"
    return None


def free_text_problem(text: str) -> str | None:
    """Why `text` may not be free text (a reason, a metadata value); None: it may."""
    if not text.isprintable():
        for char in text:
            if char in _LINE_BREAKS_AND_TAB:
                continue
            if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS:
                return _describe(char)
    if text and not text.strip():
        return "must not be blank"
    return None


def url_problem(url: str) -> str | None:
    """Why `url` may not be an absolute http(s) URL echoed into a page (None: it may)."""
    if problem := single_line_problem(url):
        return problem
    if " " in url or not url.isprintable():  # other spaces are not printable
        return "must not contain spaces or unprintable characters (percent-encode them)"
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced [ in the host
        return "must be an absolute http or https URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http or https URL"
    return None


def _fields(value: Any, path: str, free: bool) -> Iterator[tuple[str, str, bool]]:
    """Every string inside `value` with its path (`applicant.name`, `fee_split[0].x`)
    and whether it is free text. Input types nest a few levels: recursion is fine."""
    if isinstance(value, str):
        yield path, value, free
    elif isinstance(value, msgspec.Struct):
        free_fields = getattr(value, "__free_text__", ())
        for name in value.__struct_fields__:
            child = f"{path}.{name}" if path else name
            yield from _fields(getattr(value, name), child, name in free_fields)
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield child, key, False  # a key is a name, even in free text
            yield from _fields(item, child, free)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _fields(item, f"{path}[{index}]", free)


def text_errors(value: msgspec.Struct) -> list[dict[str, str]]:
    """`[{field, message}]` for every string in `value` that the rules refuse."""
    return text_errors_in(value, "", free=False)


def text_errors_in(value: Any, path: str, *, free: bool) -> list[dict[str, str]]:
    """`[{field, message}]` for every string in `value` (a Struct, or a decoded field:
    text, a list, a dict) that the rules refuse; `path` names `value`, `free` says it
    is free text."""
    errors: list[dict[str, str]] = []
    for field, text, is_free in _fields(value, path, free):
        problem = free_text_problem(text) if is_free else single_line_problem(text)
        if problem:
            errors.append({"field": field, "message": problem})
    return errors


def _may_break_rules(value: msgspec.Struct) -> bool:
    """False when no string in `value` can break a rule, decided in C for the usual
    input (walking every field in Python cost several times the body's decoding).

    msgspec's compact JSON escapes what is below U+0020 (and `"` and `\\`), and writes
    every other character as it is, with nothing between tokens. Without a backslash,
    text that is printable (str.isprintable: no Cc, Cf, Cs, Zl, Zp, nor spaces other
    than U+0020) holds nothing either rule refuses, and a blank string would start
    with a space: a quote that a space follows."""
    encoded = msgspec.json.encode(value)
    return b"\\" in encoded or b'" ' in encoded or not encoded.decode().isprintable()


def check_text(value: msgspec.Struct, *, urls: tuple[str, ...] = ()) -> None:
    """Refuse `value` (InvalidText, 400) if any string in it breaks the rules; `urls`
    (and the Struct's `__url_fields__`) name fields that must also be absolute http(s)
    URLs.

    The code is `invalid_characters` when a character is refused, `validation_failed`
    when the only problems are blank names or URLs that are not http(s)."""
    errors = text_errors(value) if _may_break_rules(value) else []
    named = {error["field"] for error in errors}
    for field in (*urls, *getattr(value, "__url_fields__", ())):
        url = getattr(value, field)
        if field not in named and isinstance(url, str) and (problem := url_problem(url)):
            errors.append({"field": field, "message": problem})
    if not errors:
        return
    refused_characters = any(e["message"].startswith("must not contain ") for e in errors)
    first = errors[0]
    raise InvalidText(
        f"{first['field']}: {first['message']}",
        code="invalid_characters" if refused_characters else "validation_failed",
        errors=errors,
    )
