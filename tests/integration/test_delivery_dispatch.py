"""Dispatching printed licences, on SQLite and PostgreSQL: exactly one dispatch per
licence print (a duplicate event, two workers racing), pickup, no partner → needs
attention, redispatch, and the `dispatch.created` webhook to a partner that fails twice
(verified by the `standardwebhooks` package).

Printed licences are built here by inserting rows and applying the licence machine's
moves, as the licence, rendering and printing helpers' code would.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select, update

from delivery import dispatching, jobs
from delivery.events import license_event
from delivery.models import CourierPartner, Dispatch, License
from delivery.schemas import CourierPartnerIn, ServiceArea
from delivery.service import create_partner
from delivery.states import LICENSE_MACHINE
from onetrip import states
from onetrip.clock import utcnow
from onetrip.db import get_database, unit_of_work
from onetrip.ids import new_id, new_token
from onetrip.outbox import OutboxEvent, as_message
from onetrip.webhooks import WebhookDelivery, attempt_delivery, get_delivery
from payments.models import Department, Payment
from tests import webhook_receiver
from tests.factories import ADDRESS
from tests.webhook_receiver import Answer, Receiver

receiver = webhook_receiver.receiver  # the fixture


# --- building printed licences (shared by the courier tests) ---------------------------


async def add_partner(
    code: str = "SF",
    areas: list[dict[str, str]] | None = None,
    *,
    name: str = "顺丰速运",
    webhook_url: str | None = None,
    daily_capacity: int | None = None,
    cutoff_time: str | None = None,
    timezone: str | None = None,
) -> CourierPartner:
    async with unit_of_work() as session:
        return await create_partner(
            session,
            CourierPartnerIn(
                code=code,
                name=name,
                service_areas=[ServiceArea(**a) for a in (areas or [{"province": "浙江省"}])],
                webhook_url=webhook_url,
                daily_capacity=daily_capacity,
                cutoff_time=cutoff_time,
                timezone=timezone,
            ),
        )


async def _move(session: Any, license: License, event: str) -> None:
    async def effect(row: License, t: states.Transition[License]) -> Any:
        return license_event(row, previous_status=t.previous)

    await states.apply(session, LICENSE_MACHINE, license, event, effect)


async def printed_license(
    *,
    address: dict[str, Any] | None = None,
    method: str = "courier",
    holder: str = "张伟",
    title: str = "机动车驾驶证",
) -> License:
    """A succeeded payment of 市公安局 and its licence, issued, rendered and printed."""
    now = utcnow()
    address = dict(ADDRESS if address is None else address)
    async with unit_of_work() as session:
        if await session.get(Department, "PSB") is None:
            session.add(Department(code="PSB", name="市公安局", created_at=now))
            await session.flush()
        payment = Payment(
            id=new_id("pay"),
            token=new_token(),
            department="PSB",
            matter_code="driving-licence",
            matter_name=title,
            reference=f"JSZ-{new_token(4)}",
            quantity=1,
            unit_amount=1000,
            amount=1000,
            currency="CNY",
            fee_split=[{"department": "PSB", "share_bps": 10000}],
            status="succeeded",
            amount_received=1000,
            applicant={"name": holder, "phone": "13800138000"},
            delivery={"method": method, "address": address if method == "courier" else None},
            return_url="https://jgj.example.gov.cn/done",
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(hours=1),
            succeeded_at=now,
        )
        session.add(payment)
        await session.flush()  # no ORM relationship orders the inserts
        license = License(
            id=new_id("lic"),
            department="PSB",
            payment_id=payment.id,
            matter_code="driving-licence",
            license_no=f"330106{new_token(6)}",
            title=title,
            holder_name=holder,
            fields={"准驾车型": "C1"},
            status="issued",
            delivery_method=method,
            address=address if method == "courier" else None,
            created_at=now,
            updated_at=now,
        )
        session.add(license)
        await session.flush()
        await _move(session, license, "render")
        await _move(session, license, "print")
    return license


async def printed_event(license_id: str) -> dict[str, Any]:
    """The `license.printed` outbox event of a licence, as the relay would send it."""
    async with get_database().session() as session:
        row = (
            await session.execute(
                select(OutboxEvent).where(
                    OutboxEvent.type == "license.printed", OutboxEvent.subject_id == license_id
                )
            )
        ).scalar_one()
        return as_message(row)


async def consume_printed(license_id: str) -> None:
    """Run the `license.printed` consumer on the licence's event (what a worker does)."""
    message = await printed_event(license_id)
    await jobs.dispatch_printed_license.fn.__wrapped__(message["id"], message)


async def dispatches_of(license_id: str) -> list[Dispatch]:
    async with get_database().session() as session:
        stmt = select(Dispatch).where(Dispatch.license_id == license_id).order_by(Dispatch.id)
        return list((await session.execute(stmt)).scalars())


async def license_row(license_id: str) -> License:
    async with get_database().session() as session:
        row = await session.get(License, license_id)
        assert row is not None
        return row


async def events_of(type_: str, subject_id: str) -> list[OutboxEvent]:
    async with get_database().session() as session:
        stmt = select(OutboxEvent).where(
            OutboxEvent.type == type_, OutboxEvent.subject_id == subject_id
        )
        return list((await session.execute(stmt)).scalars())


# --- tests -----------------------------------------------------------------------------


async def test_a_printed_licence_gets_one_dispatch_with_a_valid_tracking_number(db: Any) -> None:
    await add_partner("SF")
    license = await printed_license()
    await consume_printed(license.id)

    [dispatch] = await dispatches_of(license.id)
    assert dispatch.partner == "SF" and dispatch.status == "created"
    assert dispatching.valid_tracking_number(dispatch.tracking_number)
    assert dispatch.address["district"] == "西湖区"
    assert (await license_row(license.id)).status == "dispatched"
    [created] = await events_of("dispatch.created", dispatch.id)
    assert created.data["tracking_number"] == dispatch.tracking_number
    assert created.data["license_id"] == license.id and created.payment_id == license.payment_id
    [moved] = await events_of("license.dispatched", license.id)
    assert moved.data["dispatch_id"] == dispatch.id and moved.data["partner"] == "SF"


async def test_the_same_printed_event_twice_makes_one_dispatch(db: Any) -> None:
    await add_partner("SF")
    license = await printed_license()
    await consume_printed(license.id)
    await consume_printed(license.id)  # the relay crashed after publishing: sent again
    assert len(await dispatches_of(license.id)) == 1
    assert len(await events_of("license.dispatched", license.id)) == 1


async def test_two_workers_racing_on_one_event_make_one_dispatch(db: Any) -> None:
    await add_partner("SF")
    license = await printed_license()
    message = await printed_event(license.id)
    await asyncio.gather(
        *(jobs.dispatch_printed_license.fn.__wrapped__(message["id"], message) for _ in range(2))
    )
    # and a different copy of the event (a resend with another id) finds it dispatched
    await jobs.dispatch_printed_license.fn.__wrapped__("evt_other_copy", message)
    assert len(await dispatches_of(license.id)) == 1


async def test_a_pickup_licence_is_ready_for_pickup_without_a_dispatch(db: Any) -> None:
    await add_partner("SF")
    license = await printed_license(method="pickup")
    await consume_printed(license.id)
    assert (await license_row(license.id)).status == "pickup_ready"
    assert await dispatches_of(license.id) == []


async def test_no_partner_serving_the_address_needs_attention_with_the_reason(db: Any) -> None:
    await add_partner("SF", [{"province": "上海市"}])
    license = await printed_license()
    await consume_printed(license.id)
    assert (await license_row(license.id)).status == "needs_attention"
    [event] = await events_of("license.needs_attention", license.id)
    assert "浙江省 杭州市 西湖区" in event.data["reason"]
    assert await dispatches_of(license.id) == []


async def test_a_needs_attention_licence_is_redispatched_once_a_partner_serves_it(
    db: Any,
) -> None:
    license = await printed_license()
    await consume_printed(license.id)
    assert (await license_row(license.id)).status == "needs_attention"

    await add_partner("EMS", [{"province": "浙江省", "city": "杭州市"}], name="中国邮政EMS")
    corrected = {**ADDRESS, "line1": "文二路 200 号", "recipient": "李娜"}
    async with unit_of_work() as session:
        row = await session.get(License, license.id)
        dispatch = await dispatching.redispatch(session, row, corrected)
    assert dispatch is not None and dispatch.partner == "EMS"
    assert dispatch.address["recipient"] == "李娜"
    row = await license_row(license.id)
    assert row.status == "dispatched" and row.address["line1"] == "文二路 200 号"


async def test_redispatch_names_each_missing_address_field_and_changes_nothing(
    db: Any,
) -> None:
    from onetrip.errors import ValidationFailed

    await add_partner("SF", [{"province": "上海市"}])
    license = await printed_license()
    await consume_printed(license.id)
    async with unit_of_work() as session:
        row = await session.get(License, license.id)
        with pytest.raises(ValidationFailed) as raised:
            await dispatching.redispatch(session, row, {"recipient": "李娜", "city": "杭州市"})
    fields = {e["field"] for e in raised.value.errors or []}
    assert fields == {"address.phone", "address.province", "address.district", "address.line1"}
    assert (await license_row(license.id)).status == "needs_attention"


async def test_redispatch_of_a_dispatched_licence_is_a_conflict(db: Any) -> None:
    from onetrip.errors import InvalidTransition

    await add_partner("SF")
    license = await printed_license()
    await consume_printed(license.id)
    async with unit_of_work() as session:
        row = await session.get(License, license.id)
        with pytest.raises(InvalidTransition):
            await dispatching.redispatch(session, row, None)
    assert len(await dispatches_of(license.id)) == 1


async def test_a_legacy_url_safe_secret_is_converted_to_the_same_key_in_whsec_form(
    db: Any,
) -> None:
    import base64

    from delivery.service import partner_secret
    from onetrip.webhooks.signing import secret_key

    await add_partner("SF")
    raw = bytes(range(250, 256)) + b"\xfb\xff" * 13  # bytes whose base64 has - and _
    legacy = "whsec_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert "-" in legacy or "_" in legacy
    async with unit_of_work() as session:
        await session.execute(
            update(CourierPartner).where(CourierPartner.code == "SF").values(webhook_secret=legacy)
        )
    async with unit_of_work() as session:  # what sending to the partner does first
        partner = await session.get(CourierPartner, "SF")
        assert partner is not None
        converted = await partner_secret(session, partner)
    assert converted != legacy and secret_key(converted) == raw
    async with get_database().session() as session:
        partner = await session.get(CourierPartner, "SF")
        assert partner is not None and partner.webhook_secret == converted  # saved
    async with unit_of_work() as session:
        partner = await session.get(CourierPartner, "SF")
        assert partner is not None
        assert await partner_secret(session, partner) == converted  # kept as it is now


async def test_the_partner_gets_dispatch_created_signed_after_two_failed_pushes(
    db: Any, receiver: Receiver
) -> None:
    partner = await add_partner("SF", webhook_url=receiver.url("/sf/onetrip"))
    receiver.secrets = [partner.webhook_secret]
    receiver.script = [Answer(status=503), Answer(status=500)]
    license = await printed_license()
    await consume_printed(license.id)
    [dispatch] = await dispatches_of(license.id)

    async with get_database().session() as session:
        delivery_id = (
            await session.execute(
                select(WebhookDelivery.id).where(WebhookDelivery.target == "courier:SF")
            )
        ).scalar_one()
    for _ in range(3):
        async with unit_of_work() as session:  # the retry's time has come
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(next_attempt_at=utcnow())
            )
        await attempt_delivery(delivery_id)

    assert [r.verified_by for r in receiver.received] == [{partner.webhook_secret}] * 3
    bodies = [json.loads(r.body) for r in receiver.received]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1  # one event
    assert bodies[0]["type"] == "dispatch.created"
    assert bodies[0]["data"]["tracking_number"] == dispatch.tracking_number
    assert bodies[0]["data"]["address"]["recipient"] == "张伟"
    async with get_database().session() as session:
        view = await get_delivery(session, delivery_id)
    assert view is not None and view.status == "delivered"
    assert [a.response_status for a in view.attempt_log] == [503, 500, 200]


async def test_a_rolled_back_dispatch_leaves_no_webhook_and_no_dispatch(
    db: Any, receiver: Receiver
) -> None:
    await add_partner("SF", webhook_url=receiver.url())
    license = await printed_license()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with unit_of_work() as session:
            await dispatching.dispatch_printed_license(session, license.id)
            raise Boom
    async with get_database().session() as session:
        count = (await session.execute(select(func.count()).select_from(WebhookDelivery))).scalar()
    assert count == 0 and await dispatches_of(license.id) == []
    assert msgspec.to_builtins((await license_row(license.id)).status) == "printed"


@pytest.mark.with_worker
async def test_the_worker_dispatches_a_printed_licence_and_pushes_it_to_the_partner(
    app_client: Any, receiver: Receiver
) -> None:
    """Through the embedded relay and Dramatiq worker: outbox → consumer → webhook."""
    partner = await add_partner("SF", webhook_url=receiver.url("/sf/onetrip"))
    receiver.secrets = [partner.webhook_secret]
    license = await printed_license()  # its license.printed waits in the outbox
    for _ in range(100):
        if receiver.received:
            break
        await asyncio.sleep(0.1)
    [dispatch] = await dispatches_of(license.id)
    assert (await license_row(license.id)).status == "dispatched"
    [push] = receiver.received
    assert push.verified_by == {partner.webhook_secret}
    body = json.loads(push.body)
    assert body["type"] == "dispatch.created"
    assert body["data"]["dispatch_id"] == dispatch.id


async def test_migrating_converts_a_legacy_partner_secret_to_the_same_key(
    tmp_path: Any, env: Any
) -> None:
    """A partner registered at 0007 with a URL-safe secret keeps its key through 0008."""
    import base64

    from sqlalchemy import text

    from onetrip.db import Database
    from onetrip.migrate import upgrade_async
    from onetrip.settings import async_database_url
    from onetrip.webhooks.signing import secret_key

    url = async_database_url(f"sqlite:///{tmp_path / 'old.db'}")
    await upgrade_async(url, "0007")
    key = bytes(range(230, 256)) + b"\xfe\xff" * 3
    legacy = "whsec_" + base64.urlsafe_b64encode(key).decode().rstrip("=")
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO courier_partners (code, name, service_areas, webhook_url,"
                " webhook_secret, created_at) VALUES ('SF', '顺丰速运', '[]', NULL, :s,"
                " '2026-11-01 08:00:00')"
            ),
            {"s": legacy},
        )
    await upgrade_async(url)
    async with database.engine.connect() as connection:
        secret = (
            await connection.execute(text("SELECT webhook_secret FROM courier_partners"))
        ).scalar_one()
    await database.dispose()
    assert secret != legacy and secret_key(secret) == key
