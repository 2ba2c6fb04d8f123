"""Demo data: a realistic catalogue, keys, and how to try it.

The demo's keys are minted on the first run and kept in a file beside the database
(`onetrip-demo-keys.json`, mode 600: they are credentials), so the next runs show the
same keys again instead of minting new ones. A key of the file that no longer works
(revoked, expired, deleted, or a file from another database) is minted again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onetrip.auth import KeyCache, create_key, principal_for_key
from onetrip.db import unit_of_work
from onetrip.errors import Unauthorized
from onetrip.migrate import upgrade_async
from onetrip.settings import get_settings

log = logging.getLogger(__name__)

KEYS_FILE = "onetrip-demo-keys.json"
#: the courier simulator's own key: kept in the file, not printed
SIMULATOR_KEY = "courier-simulator:SF"

DEPARTMENTS = [
    ("PSB", "市公安局"),
    ("AMR", "市场监督管理局"),
    ("NRB", "自然资源和规划局"),
    ("HCB", "住房和城乡建设局"),
    ("TRB", "交通运输局"),
]

# code, name, department, amount (fen), deliverable, auto_issue, fee_split, materials
MATTERS: list[tuple[str, str, str, int, bool, bool, list[tuple[str, int]] | None, list[str]]] = [
    (
        "passport",
        "普通护照签发",
        "PSB",
        12000,
        True,
        False,
        None,
        ["居民身份证原件", "近期免冠彩色照片一张", "户口簿（首次申请）"],
    ),
    (
        "residence-permit",
        "居住证签发",
        "PSB",
        2000,
        True,
        True,
        None,
        ["居民身份证", "居住登记证明", "近期免冠照片"],
    ),
    (
        "vehicle-registration",
        "机动车注册登记",
        "PSB",
        11000,
        True,
        False,
        None,
        ["机动车所有人身份证明", "购车发票", "机动车整车出厂合格证", "交通事故责任强制保险凭证"],
    ),
    (
        "business-licence-copy",
        "营业执照副本补领",
        "AMR",
        2000,
        True,
        True,
        None,
        ["法定代表人签署的申请书", "遗失声明"],
    ),
    (
        "real-estate-certificate",
        "不动产权证书（住宅）",
        "NRB",
        8000,
        True,
        False,
        None,
        ["不动产登记申请书", "身份证明", "不动产权属来源证明", "完税凭证"],
    ),
    (
        "real-estate-transfer",
        "存量房转移登记（一窗联办）",
        "NRB",
        50000,
        True,
        False,
        [("NRB", 6000), ("HCB", 4000)],
        ["买卖双方身份证明", "存量房买卖合同", "原不动产权证书", "完税凭证"],
    ),
    (
        "road-transport-permit",
        "道路运输经营许可证",
        "TRB",
        5000,
        True,
        False,
        None,
        ["申请表", "企业营业执照", "车辆技术等级评定证明", "驾驶员从业资格证"],
    ),
]


@dataclass(frozen=True)
class DemoKey:
    """One key the demo hands out: the name it is shown under, and what it may do."""

    name: str
    role: str
    label: str
    departments: tuple[str, ...] = ()
    partner: str | None = None


def demo_key_specs() -> list[DemoKey]:
    """Every key of the demo, in the order they are shown."""
    return [
        DemoKey("admin", "admin", "demo admin"),
        DemoKey("finance", "finance", "demo finance (all departments)"),
        DemoKey("courier:SF", "courier", "demo courier", partner="SF"),
        DemoKey(SIMULATOR_KEY, "courier", "courier simulator", partner="SF"),
        *(
            DemoKey(f"department:{code}", "department", f"demo {code}", departments=(code,))
            for code, _ in DEPARTMENTS
        ),
    ]


def keys_file_path() -> Path:
    """Where the demo keeps its keys: beside the SQLite file, else in the working folder."""
    settings = get_settings()
    if settings.is_sqlite:
        database = settings.database_url.split("://", 1)[1]
        if database.startswith("/"):
            database = database[1:]  # sqlite:///relative, sqlite:////absolute
        database = database.split("?", 1)[0]
        if database and database != ":memory:":
            return Path(database).parent / KEYS_FILE
    return Path(KEYS_FILE)


def read_keys_file(path: Path) -> dict[str, str]:
    """The keys kept in `path`, by name; none when it is missing or unreadable."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s): minting new demo keys", path, exc)
        return {}
    keys = kept.get("keys") if isinstance(kept, dict) else None
    if not isinstance(keys, dict):
        return {}
    return {name: key for name, key in keys.items() if isinstance(key, str)}


def write_keys_file(path: Path, keys: dict[str, str]) -> None:
    """Keep `keys` in `path`, readable by its owner only (mode 600 from its creation:
    written to a new file made with that mode, then renamed over the old one)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = json.dumps({"keys": keys}, ensure_ascii=False, indent=2) + "\n"
    with contextlib.suppress(FileNotFoundError):  # left by a run that died writing it
        os.unlink(temporary)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(body)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


async def _still_works(spec: DemoKey, key: str) -> bool:
    """True when `key` authenticates now, as what `spec` says (not revoked or expired)."""
    try:
        principal = await principal_for_key(key, cache=KeyCache())
    except Unauthorized:
        return False
    return (principal.role, principal.departments, principal.partner) == (
        spec.role,
        spec.departments,
        spec.partner,
    )


async def demo_keys(path: Path) -> tuple[dict[str, str], bool]:
    """The demo's keys by name: those kept in `path` that still work, and new ones for
    the rest (then `path` is written again). Returns the keys and whether any was new."""
    kept = read_keys_file(path)
    keys: dict[str, str] = {}
    missing: list[DemoKey] = []
    for spec in demo_key_specs():
        key = kept.get(spec.name)
        if key is not None and await _still_works(spec, key):
            keys[spec.name] = key
        else:
            missing.append(spec)
    if missing:
        async with unit_of_work() as session:
            for spec in missing:
                _, keys[spec.name] = await create_key(
                    session,
                    spec.role,
                    departments=list(spec.departments),
                    partner=spec.partner,
                    name=spec.label,
                )
        keys = {spec.name: keys[spec.name] for spec in demo_key_specs()}  # shown in order
        write_keys_file(path, keys)
    return keys, bool(missing)


async def seed_demo(echo: Callable[[str], Any] = print) -> dict[str, str]:
    """Create the demo catalogue and one key per audience, and print how to try it.
    Idempotent: the catalogue is made once, the keys kept in `keys_file_path()` and
    shown again on the next runs (see `demo_keys`)."""
    from delivery.models import CourierPartner
    from delivery.schemas import CourierPartnerIn, ServiceArea
    from delivery.service import create_partner
    from payments import catalogue
    from payments.models import Department, Matter
    from payments.schemas import DepartmentIn, FeeShare, MatterIn

    await upgrade_async()
    async with unit_of_work() as session:
        for code, name in DEPARTMENTS:
            if await session.get(Department, code) is None:
                await catalogue.create_department(session, DepartmentIn(code=code, name=name))
        for code, name, dept, amount, deliverable, auto_issue, split, materials in MATTERS:
            if await session.get(Matter, code) is None:
                await catalogue.define_matter(
                    session,
                    MatterIn(
                        code=code,
                        name=name,
                        department=dept,
                        amount=amount,
                        deliverable=deliverable,
                        auto_issue=auto_issue,
                        fee_split=[FeeShare(department=d, share_bps=b) for d, b in split]
                        if split
                        else None,
                        required_materials=materials,
                    ),
                )
        if await session.get(CourierPartner, "SF") is None:
            await create_partner(
                session,
                CourierPartnerIn(
                    code="SF",
                    name="顺丰速运（演示）",
                    service_areas=[ServiceArea(province="浙江省"), ServiceArea(province="上海市")],
                ),
            )
    keys, minted = await demo_keys(keys_file_path())
    from delivery.simulator import use_key

    # the simulated courier acts as SF through the courier API with a key of its own
    use_key(keys.pop(SIMULATOR_KEY))
    base = get_settings().public_url
    echo("")
    echo("OneTrip demo — seeded departments, matters and keys")
    echo(f"  API            {base}/api/v1   (OpenAPI: {base}/schema, {base}/schema/openapi.json)")
    echo(f"  Health         {base}/health/ready    Metrics: {base}/metrics")
    for name, key in keys.items():
        echo(f"  key {name:<16} {key}")
    path = keys_file_path().resolve()
    if minted:
        echo(f"  keys kept in   {path} (mode 600): shown again by the next `onetrip demo`")
    else:
        echo(f"  keys from      {path} (still valid; delete the file for new ones)")
    echo("")
    echo("Create a passport payment as the public security bureau, then open its payment_url:")
    echo(
        f"  curl -s -X POST {base}/api/v1/payments \\\n"
        f"    -H 'Authorization: Bearer {keys['department:PSB']}' \\\n"
        "    -H 'Idempotency-Key: demo-1' -H 'Content-Type: application/json' \\\n"
        '    -d \'{"matter_code": "passport", "reference": "CRJ-2026-000001", '
        '"applicant": {"name": "张伟", "phone": "13800138000"}, '
        '"return_url": "https://example.gov.cn/done", '
        '"delivery": {"method": "courier", "address": {"recipient": "张伟", '
        '"phone": "13800138000", "province": "浙江省", "city": "杭州市", '
        '"district": "西湖区", "line1": "文三路 100 号", "postal_code": "310012"}}}\''
    )
    echo(
        "The sandbox payment page accepts test card 4242 4242 4242 4242"
        " (4000 0000 0000 0002 declines)."
    )
    echo("")
    return keys
