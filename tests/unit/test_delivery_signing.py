"""Verification codes without a database: signing, offline verification, what is refused,
the key file, and the few lines a third party uses (the README's)."""

from __future__ import annotations

import base64
import os
import re
import stat
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from delivery import signing
from delivery.models import License
from onetrip.settings import reset_settings

#: The lines the README shows a third party, read from the README itself, so what is
#: printed there is what is tested.
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**Verifying a licence without us.**") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's verification snippet is gone"
    return match.group(1)


def licence(**changes: object) -> License:
    values: dict[str, object] = {
        "id": "lic_01JTEST",
        "department": "PSB",
        "license_no": "浙公驾 330106-2026-0001",
        "matter_code": "passport",
        "title": "机动车驾驶证",
        "holder_name": "张伟",
        "fields": {"准驾车型": "C1", "住址": "浙江省杭州市西湖区文三路 100 号"},
        "valid_from": date(2026, 12, 1),
        "valid_until": date(2032, 12, 1),
    }
    values.update(changes)
    return License(**values)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def jwks_of(*keys: Ed25519PrivateKey) -> dict[str, object]:
    return {
        "keys": [
            signing.jwk(
                signing.kid_for(k.public_key()),
                signing._b64(signing._raw_public(k.public_key())),
            )
            for k in keys
        ]
    }


def code_for(license: License, key: Ed25519PrivateKey) -> str:
    return signing.sign_with(license, signing.kid_for(key.public_key()), key)


def test_a_signed_code_verifies_offline_and_says_what_the_licence_says(key):
    code = code_for(licence(), key)
    claims = signing.verify(code, jwks_of(key))
    assert claims.department == "PSB"
    assert claims.license_no == "浙公驾 330106-2026-0001"
    assert claims.holder_name == "张*"  # masked: the code is printed for anyone to read
    assert (claims.valid_from, claims.valid_until) == (date(2026, 12, 1), date(2032, 12, 1))
    assert claims.kid == signing.kid_for(key.public_key())
    assert claims.content_hash == signing.content_hash(licence()).hex()
    # the verify URL form is accepted too
    assert signing.verify(f"https://onetrip.gov.cn/verify/{code}", jwks_of(key)) == claims


def test_names_are_masked_after_their_first_character():
    assert signing.mask_name("李四") == "李*"
    assert signing.mask_name("欧阳娜娜") == "欧***"
    assert signing.mask_name("王") == "王"


def test_the_verify_url_fits_a_small_qr_code(key, env):
    from onetrip.pdf import qr_matrix

    env.setenv("ONETRIP_PUBLIC_URL", "https://onetrip.gov.cn")
    reset_settings()
    url = signing.verify_url(code_for(licence(license_no="330106-2026-0001"), key))
    # Ed25519's 64 signature bytes are 86 of the characters; the rest is ~20 bytes of
    # claims. Measured: 166 characters, a version 9 QR code (53 modules) at level M, so
    # a module is 0.47 mm when the symbol prints 25 mm wide.
    assert len(url) <= 170, (len(url), url)
    assert url.startswith("https://onetrip.gov.cn/verify/")
    modules = len(qr_matrix(url))
    assert modules <= 53, modules
    assert 25 / modules >= 0.45


def test_a_changed_byte_anywhere_is_refused(key):
    code = code_for(licence(), key)
    raw = bytearray(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
    jwks = jwks_of(key)
    for index in range(4, len(raw)):  # after the kid: every payload and signature byte
        altered = bytearray(raw)
        altered[index] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()
        with pytest.raises(signing.InvalidCode):
            signing.verify(forged, jwks)


def test_truncated_and_garbage_codes_are_refused(key):
    code = code_for(licence(), key)
    jwks = jwks_of(key)
    for bad in (code[:-1], code[:-4], code[:40], "", "!!!!", code + "A", code + "AA", "%E6%B5%99"):
        with pytest.raises(signing.InvalidCode):
            signing.verify(bad, jwks)


def test_a_code_signed_by_a_key_the_jwks_does_not_list_is_refused(key):
    stranger = Ed25519PrivateKey.generate()
    with pytest.raises(signing.InvalidCode):
        signing.verify(code_for(licence(), stranger), jwks_of(key))


def test_a_forger_who_reuses_our_kid_with_their_own_key_is_refused(key):
    forger = Ed25519PrivateKey.generate()
    code = signing.sign_with(licence(holder_name="王五"), signing.kid_for(key.public_key()), forger)
    with pytest.raises(signing.InvalidCode):
        signing.verify(code, jwks_of(key))


def test_codes_of_an_old_key_verify_while_its_key_is_listed(key):
    newer = Ed25519PrivateKey.generate()
    old_code = code_for(licence(), key)
    new_code = code_for(licence(license_no="浙公驾 330106-2026-0002"), newer)
    both = jwks_of(newer, key)
    assert signing.verify(old_code, both).license_no == "浙公驾 330106-2026-0001"
    assert signing.verify(new_code, both).license_no == "浙公驾 330106-2026-0002"


def test_the_content_hash_changes_with_what_the_licence_says():
    base = signing.content_hash(licence())
    assert signing.content_hash(licence()) == base
    assert signing.content_hash(licence(holder_name="张伟伟")) != base
    assert signing.content_hash(licence(fields={"准驾车型": "A1"})) != base


def test_the_readme_lines_verify_a_code_and_refuse_a_forgery(key):
    from cryptography.exceptions import InvalidSignature

    namespace: dict[str, object] = {}
    exec(readme_snippet(), namespace)
    verify_licence = namespace["verify_licence"]
    url = "https://onetrip.gov.cn/verify/" + code_for(licence(), key)
    claims = verify_licence(url, jwks_of(key))  # type: ignore[operator]
    assert claims == {
        "department": "PSB",
        "license_no": "浙公驾 330106-2026-0001",
        "holder": "张*",
        "valid_from": date(2026, 12, 1),
        "valid_until": date(2032, 12, 1),
    }
    forged = "https://onetrip.gov.cn/verify/" + code_for(licence(), Ed25519PrivateKey.generate())
    with pytest.raises((InvalidSignature, StopIteration)):
        verify_licence(forged, jwks_of(key))  # type: ignore[operator]
    other = code_for(licence(holder_name="王五"), key)
    tampered = other[:20] + ("A" if other[20] != "A" else "B") + other[21:]
    with pytest.raises((InvalidSignature, StopIteration, ValueError)):
        verify_licence(tampered, jwks_of(key))  # type: ignore[operator]


def test_without_a_configured_key_one_is_generated_beside_sqlite_with_mode_0600(
    env, tmp_path: Path, caplog
):
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/data/onetrip.db")
    reset_settings()
    caplog.set_level("DEBUG")
    first = signing.private_key()
    path = tmp_path / "data" / "signing-key.pem"
    assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
    # the same key afterwards (and in every process reading the same file)
    signing._cache.clear()
    again = signing.private_key()
    assert signing.kid_for(again.public_key()) == signing.kid_for(first.public_key())
    assert "PRIVATE KEY" not in caplog.text and path.read_text() not in caplog.text


def test_a_configured_key_file_is_used_and_a_missing_one_is_made_there(
    env, tmp_path: Path, key, caplog
):
    path = tmp_path / "key.pem"
    path.write_bytes(signing._pem(key))
    os.chmod(path, 0o600)
    env.setenv("ONETRIP_SIGNING_KEY", str(path))
    reset_settings()
    assert signing.kid_for(signing.private_key().public_key()) == signing.kid_for(key.public_key())
    # A path configured before any key exists (a new deployment's shared volume): the
    # key is made there, mode 0600, said loudly (the path, never the key).
    missing = tmp_path / "secrets" / "missing.pem"
    env.setenv("ONETRIP_SIGNING_KEY", str(missing))
    reset_settings()
    with caplog.at_level("WARNING", logger="delivery.signing"):
        made = signing.private_key()
    assert stat.S_IMODE(missing.stat().st_mode) == 0o600
    assert signing.kid_for(made.public_key()) != signing.kid_for(key.public_key())
    assert str(missing) in caplog.text and "PRIVATE" not in caplog.text
    assert signing.kid_for(signing.private_key().public_key()) == signing.kid_for(made.public_key())
