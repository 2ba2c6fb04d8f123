"""What counts as "the same request" for an Idempotency-Key (onetrip.idempotency)."""

from __future__ import annotations

import json

from onetrip.idempotency import fingerprint

BODY = {"matter_code": "passport", "reference": "CRJ-2026-000001", "applicant": {"name": "张伟"}}


def test_same_json_spelled_differently_has_the_same_fingerprint():
    compact = json.dumps(BODY, ensure_ascii=False, separators=(",", ":")).encode()
    escaped = json.dumps(dict(reversed(list(BODY.items()))), ensure_ascii=True, indent=2).encode()
    assert fingerprint("POST", "/api/v1/payments", compact) == fingerprint(
        "POST", "/api/v1/payments", escaped
    )


def test_a_different_value_changes_the_fingerprint():
    other = {**BODY, "reference": "CRJ-2026-000002"}
    assert fingerprint("POST", "/api/v1/payments", json.dumps(BODY).encode()) != fingerprint(
        "POST", "/api/v1/payments", json.dumps(other).encode()
    )


def test_the_same_body_on_another_path_is_another_request():
    body = b'{"amount": 100, "reason": "\xe9\x80\x80\xe8\xb4\xb9"}'
    assert fingerprint("POST", "/api/v1/payments/pay_a/refunds", body) != fingerprint(
        "POST", "/api/v1/payments/pay_b/refunds", body
    )


def test_an_integer_and_a_float_are_different_amounts():
    assert fingerprint("POST", "/r", b'{"amount": 100}') != fingerprint(
        "POST", "/r", b'{"amount": 100.0}'
    )


def test_a_body_that_is_not_json_is_fingerprinted_as_it_is():
    assert fingerprint("POST", "/r", b"not json") == fingerprint("POST", "/r", b"not json")
    assert fingerprint("POST", "/r", b"not json") != fingerprint("POST", "/r", b"not  json")
    assert fingerprint("POST", "/r", b"") == fingerprint("POST", "/r", b"")
