"""`onetrip verify` checks a code with a JWKS file and no database; `onetrip keys
rotate-signing` makes a new key sign while the old one stays listed."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from delivery import signing
from delivery.models import License
from onetrip.cli import main
from onetrip.settings import reset_settings

ONETRIP = [sys.executable, "-m", "onetrip.cli"]


def licence() -> License:
    return License(
        id="lic_01JCLI",
        department="PSB",
        license_no="浙公驾 330106-2026-0042",
        matter_code="passport",
        title="机动车驾驶证",
        holder_name="欧阳娜娜",
        fields={"准驾车型": "C1"},
        valid_from=date(2026, 12, 1),
        valid_until=date(2032, 12, 1),
    )


def write_jwks(path: Path, *keys: Ed25519PrivateKey) -> Path:
    document = {
        "keys": [
            signing.jwk(
                signing.kid_for(k.public_key()), signing._b64(signing._raw_public(k.public_key()))
            )
            for k in keys
        ]
    }
    path.write_text(json.dumps(document))
    return path


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # a database that does not exist and could not be reached: verify must not need one
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing",
        "ONETRIP_SIGNING_KEY": str(tmp_path / "no-key-here.pem"),
    }
    return subprocess.run(
        [*ONETRIP, *args], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path
    )


def test_verify_prints_the_claims_of_a_genuine_code_without_a_database(tmp_path):
    key = Ed25519PrivateKey.generate()
    code = signing.sign_with(licence(), signing.kid_for(key.public_key()), key)
    jwks = write_jwks(tmp_path / "jwks.json", Ed25519PrivateKey.generate(), key)
    done = run(tmp_path, "verify", f"https://onetrip.gov.cn/verify/{code}", "--keys", str(jwks))
    assert done.returncode == 0, done.stderr
    assert "genuine" in done.stdout
    assert "license_no: 浙公驾 330106-2026-0042" in done.stdout
    assert "holder_name: 欧***" in done.stdout
    assert "valid_until: 2032-12-01" in done.stdout
    assert "department: PSB" in done.stdout


def test_verify_exits_non_zero_for_a_forged_or_truncated_code(tmp_path):
    key = Ed25519PrivateKey.generate()
    jwks = write_jwks(tmp_path / "jwks.json", key)
    forger = Ed25519PrivateKey.generate()
    forged = signing.sign_with(licence(), signing.kid_for(key.public_key()), forger)
    genuine = signing.sign_with(licence(), signing.kid_for(key.public_key()), key)
    for bad in (forged, genuine[:-3], "garbage"):
        done = run(tmp_path, "verify", bad, "--keys", str(jwks))
        assert done.returncode == 1, (bad, done.stdout, done.stderr)
        assert "NOT GENUINE" in done.stderr and "license_no" not in done.stdout
    unreadable = run(tmp_path, "verify", genuine, "--keys", str(tmp_path / "missing.json"))
    assert unreadable.returncode != 0 and "cannot read the keys" in unreadable.stderr


def test_rotate_signing_makes_a_new_key_sign_and_keeps_the_old_one_listed(
    sqlite_url, env, tmp_path
):
    env.setenv("DATABASE_URL", sqlite_url)
    key_file = tmp_path / "keys" / "signing.pem"
    key_file.parent.mkdir()
    first = Ed25519PrivateKey.generate()
    key_file.write_bytes(signing._pem(first))
    env.setenv("ONETRIP_SIGNING_KEY", str(key_file))
    reset_settings()
    runner = CliRunner()
    result = runner.invoke(main, ["keys", "rotate-signing"])
    assert result.exit_code == 0, result.output
    signing._cache.clear()
    new_kid = signing.kid_for(signing.private_key().public_key())
    assert new_kid != signing.kid_for(first.public_key())
    assert new_kid in result.output and "PRIVATE" not in result.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    path = sqlite_url.split(":///", 1)[1]
    with sqlite3.connect(path) as connection:
        rows = dict(connection.execute("SELECT kid, retired_at IS NOT NULL FROM signing_keys"))
    assert rows == {signing.kid_for(first.public_key()): 1, new_kid: 0}
