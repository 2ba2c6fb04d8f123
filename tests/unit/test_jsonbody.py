"""The JSON body rules (onetrip.jsonbody): nesting counted without recursion, keys
named twice found and named, in time linear in the body whatever it holds."""

from __future__ import annotations

import json
import time

import pytest

from onetrip.jsonbody import (
    MAX_JSON_DEPTH,
    DuplicateKey,
    JSONTooDeep,
    check_duplicate_keys,
    check_nesting,
    nesting_exceeds,
)


@pytest.mark.parametrize(
    ("body", "deeper"),
    [
        (b"[" * 32 + b"]" * 32, False),
        (b"[" * 33 + b"]" * 33, True),
        (b'{"a":' * 32 + b"1" + b"}" * 32, False),
        (b'{"a":' * 33 + b"1" + b"}" * 33, True),
        (b'["' + b"[" * 100 + b'"]', False),  # brackets inside a string
        (b'["\\"' + b"[" * 100 + b'"]', False),  # after an escaped quote, still inside
        (b'["\\\\"' + b", [" * 40 + b"]" * 40 + b"]", True),  # an escaped backslash ends it
        (b"[]" * 1000, False),  # many, side by side
        (b"]" * 3000 + b"[" * 40, True),  # closers first cannot hide what follows
        (b"[" * 40 + b'"', True),  # truncated
        (b"", False),
    ],
)
def test_nesting_is_counted_outside_strings(body, deeper):
    assert nesting_exceeds(body) is deeper


def test_too_deep_is_a_400_naming_the_limit():
    with pytest.raises(JSONTooDeep) as refused:
        check_nesting(b"[" * 2000)
    assert refused.value.status == 400 and refused.value.code == "json_too_deep"
    assert str(MAX_JSON_DEPTH) in refused.value.detail


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 40 + b'"' + b'\\"' * 100_000,  # one endless string of escaped quotes
        b"[" * 40 + b'"a' * 100_000,  # a hundred thousand strings
        b"[" * 40 + b"\\" * 200_000,
    ],
    ids=["escaped-quotes", "many-quotes", "backslashes"],
)
def test_the_scan_is_linear_on_hostile_input(body):
    started = time.perf_counter()
    nesting_exceeds(body)
    assert time.perf_counter() - started < 0.5


def dup(body: bytes) -> str:
    with pytest.raises(DuplicateKey) as refused:
        check_duplicate_keys(body, json.loads(body))
    assert refused.value.status == 400 and refused.value.code == "duplicate_key"
    [error] = refused.value.errors or []
    return error["field"]


def test_a_duplicate_key_is_named_with_its_path():
    assert dup(b'{"a": 1, "a": 2}') == "a"
    assert dup(b'{"a": {"b": 1, "c": 2, "b": 3}}') == "a.b"
    assert dup(b'{"a": [{"x": 1}, {"x": 1, "x": 2}]}') == "a[1].x"
    assert dup(b'[{"k": 1}, {"k": 2, "k": 3}]') == "[1].k"


def test_a_duplicate_key_is_found_however_it_is_written():
    assert dup(b'{"ab": 1, "\\u0061b": 2}') == "ab"
    assert dup(b'{"a" : 1, "a"\n:\t2}') == "a"
    assert dup(b'{\n  "a": 1,\n  "a": 2\n}') == "a"


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "b": {"a": 2}}',
        b'{"a": "\\": not a key", "b": "x\\" : y"}',
        b'{"a": " : ", "b": ["\\":", {"c": 1}]}',
        b'{"a": 1, "b": 2}   ',
        b'[1, "x", null, []]',
        b'"just a string: with a colon"',
        b"{}",
    ],
)
def test_bodies_without_duplicates_pass(body):
    check_duplicate_keys(body, json.loads(body))


def test_finding_the_duplicate_in_a_long_array_is_linear():
    # No clock here (speed belongs to benchmarks/): a search that went quadratic in the
    # array's length would take hours on 200,000 items and hit the test timeout.
    body = b"[" + b'{"a": 1}, ' * 200_000 + b'{"a": 1, "a": 2}]'
    assert dup(body) == "[200000].a"
