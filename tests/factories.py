"""Realistic test data: departments, matters, applicants, and keys."""

from __future__ import annotations

from typing import Any

from onetrip.auth import create_key
from onetrip.db import unit_of_work

PASSPORT = {
    "code": "passport",
    "name": "普通护照签发",
    "department": "PSB",
    "amount": 12000,
    "deliverable": True,
    "auto_issue": False,
    "required_materials": ["居民身份证原件", "近期免冠彩色照片一张"],
}
TRANSFER = {
    "code": "real-estate-transfer",
    "name": "存量房转移登记（一窗联办）",
    "department": "NRB",
    "amount": 50001,
    "deliverable": True,
    "auto_issue": False,
    "fee_split": [
        {"department": "NRB", "share_bps": 6000},
        {"department": "HCB", "share_bps": 4000},
    ],
}

ADDRESS = {
    "recipient": "张伟",
    "phone": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "line1": "文三路 100 号 3 幢 201 室",
    "postal_code": "310012",
}


def payment_body(
    matter_code: str = "passport", reference: str = "CRJ-2026-000001", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "matter_code": matter_code,
        "reference": reference,
        "applicant": {"name": "张伟", "phone": "13800138000", "email": "zhang.wei@example.cn"},
        "return_url": "https://crj.example.gov.cn/done",
        "delivery": {"method": "courier", "address": ADDRESS},
    }
    body.update(extra)
    return body


async def make_key(
    role: str, departments: list[str] | None = None, partner: str | None = None
) -> str:
    async with unit_of_work() as session:
        _, plain = await create_key(session, role, departments=departments, partner=partner)
    return plain


def auth(key: str, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


async def seed_catalogue(client: Any, admin_key: str) -> None:
    """PSB, NRB and HCB, with the passport and the joint real-estate transfer."""
    for code, name in (
        ("PSB", "市公安局"),
        ("NRB", "自然资源和规划局"),
        ("HCB", "住房和城乡建设局"),
    ):
        response = await client.post(
            "/api/v1/admin/departments", json={"code": code, "name": name}, headers=auth(admin_key)
        )
        assert response.status_code == 201, response.text
    for matter in (PASSPORT, TRANSFER):
        response = await client.post("/api/v1/admin/matters", json=matter, headers=auth(admin_key))
        assert response.status_code == 201, response.text
