"""Demo data: a realistic catalogue, keys, and how to try it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onetrip.auth import create_key
from onetrip.db import unit_of_work
from onetrip.migrate import upgrade_async
from onetrip.settings import get_settings

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


async def seed_demo(echo: Callable[[str], Any] = print) -> dict[str, str]:
    """Create the demo catalogue and one key per audience (idempotent for the catalogue;
    new keys every time, since keys are shown only once)."""
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
        keys: dict[str, str] = {}
        _, keys["admin"] = await create_key(session, "admin", name="demo admin")
        _, keys["finance"] = await create_key(
            session, "finance", name="demo finance (all departments)"
        )
        _, keys["courier:SF"] = await create_key(
            session, "courier", partner="SF", name="demo courier"
        )
        for code, _ in DEPARTMENTS:
            _, keys[f"department:{code}"] = await create_key(
                session, "department", departments=[code], name=f"demo {code}"
            )
    base = get_settings().public_url
    echo("")
    echo("OneTrip demo — seeded departments, matters and keys")
    echo(f"  API            {base}/api/v1   (OpenAPI: {base}/schema, {base}/schema/openapi.json)")
    echo(f"  Health         {base}/health/ready    Metrics: {base}/metrics")
    for name, key in keys.items():
        echo(f"  key {name:<16} {key}")
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
