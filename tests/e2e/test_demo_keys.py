"""`onetrip demo` keeps its keys in a file beside the database (mode 600) and shows the
same keys again on the next runs; a key that stopped working is minted again."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import httpx

from tests.e2e.test_cli import query
from tests.e2e.test_processes_support import (
    Process,
    clean_env,
    free_port,
    run_onetrip,
    wait_ready,
)

KEY_LINE = re.compile(r"^  key (\S+)\s+(otk_\S+)$", re.MULTILINE)


def demo(folder: Path, **env: str) -> dict[str, str]:
    done = run_onetrip("demo", "--no-serve", env=clean_env(**env), cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(KEY_LINE.findall(done.stdout))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_run_keeps_the_keys_in_a_file_only_its_owner_can_read(tmp_path: Path) -> None:
    keys = demo(tmp_path)
    assert {"admin", "finance", "courier:SF", "department:PSB"} <= keys.keys()
    kept = tmp_path / "onetrip-demo-keys.json"
    assert kept.exists() and mode(kept) == 0o600
    stored = json.loads(kept.read_text(encoding="utf-8"))["keys"]
    assert {name: stored[name] for name in keys} == keys


def test_the_next_runs_show_the_same_keys_and_mint_none(tmp_path: Path) -> None:
    first = demo(tmp_path)
    database = tmp_path / "onetrip.db"
    minted = query(database, "SELECT count(*) FROM api_keys")
    assert demo(tmp_path) == first
    assert demo(tmp_path) == first
    assert query(database, "SELECT count(*) FROM api_keys") == minted


def test_the_file_lives_beside_the_database_it_belongs_to(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    keys = demo(tmp_path, DATABASE_URL=f"sqlite:///{data / 'demo.db'}")
    kept = data / "onetrip-demo-keys.json"
    assert mode(kept) == 0o600
    assert json.loads(kept.read_text(encoding="utf-8"))["keys"]["admin"] == keys["admin"]
    assert not (tmp_path / "onetrip-demo-keys.json").exists()


def test_a_revoked_key_is_minted_again_and_the_others_are_kept(tmp_path: Path) -> None:
    first = demo(tmp_path)
    psb_id = first["department:PSB"].split("_")[1]
    env = clean_env()
    revoked = run_onetrip("keys", "revoke", psb_id, env=env, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr

    second = demo(tmp_path)
    assert second["department:PSB"] != first["department:PSB"]
    assert {n: k for n, k in second.items() if n != "department:PSB"} == {
        n: k for n, k in first.items() if n != "department:PSB"
    }
    kept = tmp_path / "onetrip-demo-keys.json"
    assert mode(kept) == 0o600
    assert (
        json.loads(kept.read_text(encoding="utf-8"))["keys"]["department:PSB"]
        == (second["department:PSB"])
    )
    assert demo(tmp_path) == second


def test_keys_of_another_database_or_a_broken_file_are_replaced(tmp_path: Path) -> None:
    kept = tmp_path / "onetrip-demo-keys.json"
    kept.write_text("{not json", encoding="utf-8")
    kept.chmod(0o644)
    keys = demo(tmp_path)
    assert keys and mode(kept) == 0o600
    (tmp_path / "onetrip.db").unlink()  # a new database: the kept keys are unknown to it
    for side in ("onetrip.db-wal", "onetrip.db-shm"):
        (tmp_path / side).unlink(missing_ok=True)
    fresh = demo(tmp_path)
    assert set(fresh.values()).isdisjoint(keys.values())


def test_the_kept_keys_work_against_the_served_demo(tmp_path: Path) -> None:
    demo(tmp_path)  # the first run, as a user would have done earlier
    port = free_port()
    served = Process("demo", ["demo", "--port", str(port)], clean_env(), tmp_path, tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{port}", [served], timeout=45)
        keys = dict(KEY_LINE.findall(served.output()))
        psb = keys["department:PSB"]
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/payments", headers={"Authorization": f"Bearer {psb}"}
        )
        assert response.status_code == 200, response.text
    finally:
        served.stop()
