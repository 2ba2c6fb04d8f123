"""Standard Webhooks signing (https://www.standardwebhooks.com): secrets, signatures, the
headers and the body every attempt of one delivery sends unchanged."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from secrets import token_bytes
from typing import Any

import msgspec

SECRET_PREFIX = "whsec_"


def new_secret(nbytes: int = 32) -> str:
    """A new signing secret, `whsec_<base64 of nbytes random bytes>` (24–64 bytes)."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a webhook secret has 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for (the bytes its base64 encodes)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        raise ValueError("a webhook secret is whsec_ followed by standard base64") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>` for each
    secret, space-separated, so a receiver holding any one of them verifies (rotation)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    signatures = []
    for secret in secrets:
        digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
        signatures.append("v1," + base64.b64encode(digest).decode("ascii"))
    return " ".join(signatures)


def signed_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt (plus the content type)."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
    }


class WebhookMessage(msgspec.Struct):
    """The body of every outgoing webhook."""

    id: str
    type: str
    created_at: datetime
    data: Any


def encode_body(event_id: str, event_type: str, created_at: datetime, data: Any) -> bytes:
    """Serialise the body once; it is stored so that every retry sends these bytes."""
    return msgspec.json.encode(
        WebhookMessage(id=event_id, type=event_type, created_at=created_at, data=data)
    )
