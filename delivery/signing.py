"""Signed verification codes for licences, their keys, and the JWKS that checks them.

A code is a compact binary payload signed with Ed25519, in base64url without padding,
so that `verify_url(code)` fits a QR code printed 25 mm wide. Layout (version 1):

    0      version (1)
    1..3   kid: the first 3 bytes of SHA-256 of the raw public key (JWKS `kid` is
           their base64url, 4 characters)
    4..5   valid_from, 6..7 valid_until: big-endian days since 1999-12-31 (0: none)
    8..11  the first 4 bytes of SHA-256 of the licence's content (`content_hash`): the
           server checks that the code was signed for the licence it has on record
    then   department, licence number, the holder's first character: each one byte of
           length + UTF-8; then one byte: how many characters the mask hides (李*)
    last   64 bytes: the Ed25519 signature of everything before it

The private key is a PEM file (`ONETRIP_SIGNING_KEY`); without one it is generated
beside the SQLite file (mode 0600) on first use. Its bytes are never logged. The public
halves are `SigningKey` rows: after `rotate_signing_key` the new key signs and the old
ones stay in the JWKS, so codes already printed keep verifying.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import struct
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from delivery.models import License, SigningKey
from onetrip.clock import utcnow
from onetrip.db import insert_ignoring_conflicts
from onetrip.errors import NotFound
from onetrip.settings import Settings, get_settings

VERSION = 1
SIGNATURE_BYTES = 64
KID_BYTES = 3
HASH_BYTES = 4
_HEADER = struct.Struct(">B3sHH4s")
_DAY_ZERO = date(1999, 12, 31)
KEY_FILE_NAME = "signing-key.pem"
_BEIJING = ZoneInfo("Asia/Shanghai")  # the day a licence expires is a Chinese calendar day

log = logging.getLogger(__name__)


class InvalidCode(NotFound):
    """A forged, altered, truncated or unknown-key code: nothing genuine to show."""

    code = "verify_code_invalid"
    title = "This verification code is not genuine"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, extra={"genuine": False})


@dataclass(frozen=True)
class Claims:
    """What a genuine code says, readable without the database."""

    kid: str
    department: str
    license_no: str
    holder_name: str  # masked: 李*
    valid_from: date | None
    valid_until: date | None
    content_hash: str  # hex

    def as_dict(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "department": self.department,
            "license_no": self.license_no,
            "holder_name": self.holder_name,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "content_hash": self.content_hash,
        }


# ---------------------------------------------------------------------------- encoding


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(c not in _B64_ALPHABET for c in text) or len(text) % 4 == 1:
        raise InvalidCode()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCode() from exc


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def kid_for(public_key: Ed25519PublicKey) -> str:
    return _b64(hashlib.sha256(_raw_public(public_key)).digest()[:KID_BYTES])


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def mask_name(name: str) -> str:
    """李四 → 李*, 欧阳娜娜 → 欧***: the first character and one star per other one."""
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 0)


def content_hash(license: License) -> bytes:
    """A short hash of what the licence says, so a code belongs to one content."""
    canonical = json.dumps(
        {
            "department": license.department,
            "license_no": license.license_no,
            "matter_code": license.matter_code,
            "title": license.title,
            "holder_name": license.holder_name,
            "fields": dict(license.fields or {}),
            "valid_from": license.valid_from.isoformat() if license.valid_from else None,
            "valid_until": license.valid_until.isoformat() if license.valid_until else None,
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).digest()[:HASH_BYTES]


def _day(value: date | None) -> int:
    return 0 if value is None else (value - _DAY_ZERO).days


def _date(value: int) -> date | None:
    return None if value == 0 else _DAY_ZERO + timedelta(days=value)


def _text(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError("a verify code field is limited to 255 bytes")
    return bytes([len(raw)]) + raw


def encode_payload(license: License, kid: str) -> bytes:
    """The unsigned payload of a licence's code (see the module docstring)."""
    holder = license.holder_name.strip()
    return (
        _HEADER.pack(
            VERSION,
            _unb64(kid),
            _day(license.valid_from),
            _day(license.valid_until),
            content_hash(license),
        )
        + _text(license.department)
        + _text(license.license_no)
        + _text(holder[:1])
        + bytes([min(max(len(holder) - 1, 0), 255)])
    )


def _decode_payload(payload: bytes) -> Claims:
    try:
        version, kid, valid_from, valid_until, digest = _HEADER.unpack_from(payload)
        if version != VERSION:
            raise InvalidCode()
        offset = _HEADER.size
        texts = []
        for _ in range(3):
            length = payload[offset]
            texts.append(payload[offset + 1 : offset + 1 + length].decode())
            offset += 1 + length
        hidden = payload[offset]
        if offset + 1 != len(payload):
            raise InvalidCode()
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise InvalidCode() from exc
    department, license_no, first = texts
    return Claims(
        kid=_b64(kid),
        department=department,
        license_no=license_no,
        holder_name=first + "*" * hidden,
        valid_from=_date(valid_from),
        valid_until=_date(valid_until),
        content_hash=digest.hex(),
    )


def split_code(code: str) -> tuple[bytes, bytes, str]:
    """(payload, signature, kid) of a code, or InvalidCode when it cannot be one."""
    if len(code) > 400:
        raise InvalidCode()
    raw = _unb64(code)
    if len(raw) < _HEADER.size + 4 + SIGNATURE_BYTES:
        raise InvalidCode()
    payload, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
    return payload, signature, _b64(payload[1 : 1 + KID_BYTES])


def code_from(text: str) -> str:
    """The code in a verify URL (or the code itself)."""
    text = text.strip()
    if "/verify/" in text:
        text = text.rsplit("/verify/", 1)[1]
    return text.split("?", 1)[0].split("#", 1)[0].rstrip("/")


def verify(code: str, jwks: dict[str, Any] | dict[str, Ed25519PublicKey]) -> Claims:
    """Check a code's signature offline against a JWKS (or {kid: public key}).

    Raises InvalidCode for anything not genuine: bad encoding, truncation, a changed
    byte, or a key id the JWKS does not list.
    """
    payload, signature, kid = split_code(code_from(code))
    keys = public_keys_from_jwks(jwks) if "keys" in jwks else jwks
    public_key = keys.get(kid)
    if not isinstance(public_key, Ed25519PublicKey):
        raise InvalidCode()
    try:
        public_key.verify(signature, payload)
    except InvalidSignature as exc:
        raise InvalidCode() from exc
    return _decode_payload(payload)


# ---------------------------------------------------------------------------- JWKS


def jwk(kid: str, public_key_b64: str) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": public_key_b64,
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def public_keys_from_jwks(jwks: dict[str, Any]) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in jwks.get("keys", []):
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519" or "kid" not in entry:
            continue
        try:
            keys[entry["kid"]] = Ed25519PublicKey.from_public_bytes(_unb64(entry["x"]))
        except (InvalidCode, ValueError, KeyError):
            continue
    return keys


async def signing_keys(session: AsyncSession) -> list[SigningKey]:
    """Every public key that signs or signed codes, the current one registered first."""
    await current_key(session)
    rows = await session.scalars(select(SigningKey).order_by(SigningKey.created_at))
    return list(rows)


async def jwks_document(session: AsyncSession) -> dict[str, Any]:
    return {"keys": [jwk(k.kid, k.public_key) for k in await signing_keys(session)]}


# ---------------------------------------------------------------------------- keys


def key_path(settings: Settings | None = None) -> Path:
    """The private key file: ONETRIP_SIGNING_KEY, else `signing-key.pem` in the data
    folder: beside the SQLite file, or (another database) beside the print spool."""
    settings = settings or get_settings()
    if settings.signing_key_path:
        return Path(settings.signing_key_path)
    folder = Path(settings.spool_dir).resolve().parent
    url = settings.database_url
    if settings.is_sqlite and ":///" in url:
        database_file = url.split(":///", 1)[1].split("?", 1)[0]
        if database_file and database_file != ":memory:":
            folder = Path(database_file).resolve().parent
    return folder / KEY_FILE_NAME


_cache: dict[str, tuple[tuple[int, int, int], Ed25519PrivateKey]] = {}


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, key: Ed25519PrivateKey, *, replace: bool) -> None:
    """Write a key file with mode 0600, atomically: readers see all of it or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".signing-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(_pem(key))
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)  # fails when another process created it first
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def private_key(settings: Settings | None = None) -> Ed25519PrivateKey:
    """The key that signs now (re-read when the file changes, e.g. after a rotation)."""
    path = key_path(settings)
    try:
        stat = path.stat()
    except FileNotFoundError:
        # First start: make one (whoever links it first wins; the rest read that one).
        # A configured path that does not exist yet is made too, loudly: every key's
        # public half is registered in the database, so codes it signs verify even if
        # another process somewhere made a different one.
        try:
            _write_private(path, Ed25519PrivateKey.generate(), replace=False)
            configured = bool((settings or get_settings()).signing_key_path)
            log.log(
                logging.WARNING if configured else logging.INFO, "signing key generated in %s", path
            )
        except FileExistsError:
            pass
        stat = path.stat()
    marker = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(str(path))
    if cached and cached[0] == marker:
        return cached[1]
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"the signing key {path} is not an Ed25519 key")
    _cache[str(path)] = (marker, key)
    return key


async def _register(session: AsyncSession, key: Ed25519PrivateKey) -> str:
    kid = kid_for(key.public_key())
    if await session.get(SigningKey, kid) is None:
        await session.execute(
            insert_ignoring_conflicts(session, SigningKey.__table__, ["kid"]).values(
                kid=kid,
                algorithm="EdDSA",
                public_key=_b64(_raw_public(key.public_key())),
                created_at=utcnow(),
            )
        )
    return kid


async def current_key(session: AsyncSession) -> tuple[str, Ed25519PrivateKey]:
    """(kid, private key) that signs now; its public half is registered as a row."""
    key = private_key()
    return await _register(session, key), key


async def rotate_signing_key(session: AsyncSession) -> str:
    """A new key signs from now on; the old public keys stay listed (retired)."""
    old_kid, _ = await current_key(session)
    new = Ed25519PrivateKey.generate()
    _write_private(key_path(), new, replace=True)
    kid = await _register(session, new)
    await session.execute(
        update(SigningKey)
        .where(SigningKey.kid != kid, SigningKey.retired_at.is_(None))
        .values(retired_at=utcnow())
    )
    log.info("signing key rotated: %s signs now, %s retired", kid, old_kid)
    return kid


# ---------------------------------------------------------------------------- codes


def sign_with(license: License, kid: str, key: Ed25519PrivateKey) -> str:
    payload = encode_payload(license, kid)
    return _b64(payload + key.sign(payload))


async def sign_license(session: AsyncSession, license: License) -> str:
    """Sign a licence's verify code with the current key; sets `verify_code` and
    `signing_kid` on the licence and returns the code."""
    kid, key = await current_key(session)
    return sign_license_with(license, kid, key)


def sign_license_with(license: License, kid: str, key: Ed25519PrivateKey) -> str:
    """`sign_license` with a key the caller looked up (`current_key`), for a batch."""
    code = sign_with(license, kid, key)
    license.verify_code = code
    license.signing_kid = kid
    return code


def verify_url(code: str) -> str:
    """What the QR code holds: `{public url}/verify/{code}`."""
    return f"{get_settings().public_url}/verify/{code}"


# ---------------------------------------------------------------------------- /verify


@dataclass(frozen=True)
class Verification:
    """A genuine code, with what only the server knows (revoked, expired)."""

    claims: Claims
    license: License
    status: str  # valid | revoked | expired
    department_name: str


async def check_code(
    session: AsyncSession, code: str, *, today: date | None = None
) -> Verification:
    """Verify a code against the keys on record and the licence it names.

    InvalidCode (404) when the signature fails, the key is unknown, no licence has that
    number in that department, or the licence's content is not what was signed."""
    from payments.models import Department

    payload, signature, kid = split_code(code_from(code))
    row = await session.get(SigningKey, kid)
    if row is None:
        raise InvalidCode()
    public_key = Ed25519PublicKey.from_public_bytes(_unb64(row.public_key))
    try:
        public_key.verify(signature, payload)
    except InvalidSignature as exc:
        raise InvalidCode() from exc
    claims = _decode_payload(payload)
    license = await session.scalar(
        select(License).where(
            License.department == claims.department, License.license_no == claims.license_no
        )
    )
    if license is None or content_hash(license).hex() != claims.content_hash:
        raise InvalidCode()
    today = today or utcnow().astimezone(_BEIJING).date()
    if license.status == "revoked" or license.revoked_at is not None:
        status = "revoked"
    elif license.valid_until is not None and license.valid_until < today:
        status = "expired"
    else:
        status = "valid"
    department = await session.get(Department, license.department)
    return Verification(
        claims, license, status, department.name if department else license.department
    )
