"""Standard Webhooks signing, checked with the `standardwebhooks` package from PyPI."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import msgspec
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from onetrip.webhooks import new_secret, sign, signed_headers
from onetrip.webhooks.signing import encode_body


def test_a_new_secret_is_whsec_and_standard_base64_of_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    for secret in (first, second):
        assert secret.startswith("whsec_")
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        assert 24 <= len(key) <= 32
    assert len(base64.b64decode(new_secret(24).removeprefix("whsec_"))) == 24
    with pytest.raises(ValueError):
        new_secret(8)


def test_a_signed_message_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    body = encode_body("evt_1", "dispatch.created", datetime.now(UTC), {"收件人": "李雷"})
    headers = signed_headers([secret], "evt_1", int(time.time()), body)

    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(secret).verify(body, headers)
    assert payload["id"] == "evt_1" and payload["data"] == {"收件人": "李雷"}


def test_while_rotating_a_receiver_holding_either_secret_verifies() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"id":"evt_2"}'
    headers = signed_headers([new, old], "evt_2", int(time.time()), body)

    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_the_signature_covers_the_id_the_timestamp_and_every_byte_of_the_body() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signed_headers([secret], "evt_3", now, b'{"amount":100}')
    for changed in (
        {"webhook-id": "evt_4"},
        {"webhook-timestamp": str(now - 1)},
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(b'{"amount":100}', {**headers, **changed})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"amount":101}', headers)


def test_sign_is_keyed_by_the_secrets_bytes_not_its_text() -> None:
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    assert sign([secret], "m", 1, b"{}") == Webhook(key).sign(
        "m", datetime.fromtimestamp(1, UTC), "{}"
    )
    with pytest.raises(ValueError):
        sign(["not-a-secret"], "m", 1, b"{}")
    with pytest.raises(ValueError):
        sign([], "m", 1, b"{}")


def test_the_body_is_id_type_created_at_and_data() -> None:
    class Dispatch(msgspec.Struct):
        dispatch_id: str
        tracking_number: str

    created = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    body = encode_body("evt_5", "dispatch.created", created, Dispatch("dsp_1", "SF123"))
    assert msgspec.json.decode(body) == {
        "id": "evt_5",
        "type": "dispatch.created",
        "created_at": "2026-12-01T08:30:00Z",
        "data": {"dispatch_id": "dsp_1", "tracking_number": "SF123"},
    }
