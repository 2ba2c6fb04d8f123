"""Shared helpers of the licence tests (no tests of its own): licences issued through
the API for sandbox-paid payments, and moves applied the way the later steps apply them.
"""

from __future__ import annotations

from typing import Any

from delivery.events import license_event
from delivery.states import LICENSE_MACHINE
from onetrip.db import unit_of_work
from onetrip.states import apply
from tests.factories import auth
from tests.integration.test_payments_support import idem, paid_payment

#: a deliverable PSB matter whose licence is issued as soon as it is paid
RESIDENCE_PERMIT = {
    "code": "residence-permit",
    "name": "居住证",
    "department": "PSB",
    "amount": 2000,
    "deliverable": True,
    "auto_issue": True,
}


def license_body(payment_id: str, license_no: str = "浙公驾 330106-2026-0001", **extra: Any):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {
        "payment_id": payment_id,
        "license_no": license_no,
        "title": "机动车驾驶证",
        "holder_name": "张伟",
        "fields": {"准驾车型": "C1", "住址": "浙江省杭州市西湖区文三路 100 号"},
        "valid_from": "2026-12-01",
        "valid_until": "2032-12-01",
    }
    body.update(extra)
    return body


async def issue(
    client: Any, key: str, payment_id: str, idempotency_key: str | None = None, **body: Any
) -> Any:
    return await client.post(
        "/api/v1/licenses",
        json=license_body(payment_id, **body),
        headers=auth(key, idempotency_key or idem("lic")),
    )


async def issued_license(client: Any, key: str, **payment: Any) -> dict[str, Any]:
    """A licence issued for a freshly paid payment of the key's department."""
    paid = await paid_payment(client, key, reference=idem("CRJ"), **payment)
    response = await issue(client, key, paid["id"], license_no=idem("浙公驾-2026"))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def move(license_id: str, *events: str, reason: str | None = None) -> None:
    """Apply machine events to a licence, as rendering, printing and dispatching do."""
    for event in events:
        async with unit_of_work() as session:

            async def effect(row: Any, transition: Any) -> Any:
                return license_event(
                    row,
                    previous_status=transition.previous,
                    **({"reason": reason} if reason else {}),
                )

            await apply(session, LICENSE_MACHINE, license_id, event, effect)
