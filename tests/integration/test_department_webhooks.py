"""Department webhook endpoints: registration, signed deliveries with per-payment
sequence numbers, retries and the delivery log, rotation, the address check; against a
real receiver verifying with the `standardwebhooks` package, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from notifications.endpoints import service
from onetrip.settings import reset_settings
from tests import webhook_receiver
from tests.factories import auth
from tests.integration.test_department_webhooks_support import (
    ENDPOINTS,
    body_of,
    consume,
    consume_all,
    deliveries_of,
    payment_events,
    reference,
    register,
    rotated_ago,
    send_pending,
    time_passes,
    watch,
)
from tests.integration.test_payments_support import assert_problem, idem, paid_payment
from tests.webhook_receiver import Answer, Receiver

pytest_plugins = ["tests.integration.test_payments_support"]
OPENAPI_CONFORMANCE = True

receiver = webhook_receiver.receiver  # the fixture


async def test_an_endpoint_shows_its_secret_once_and_only_to_its_department(
    app_client: Any, keys: dict[str, str]
) -> None:
    created = await register(
        app_client,
        keys["psb"],
        "https://psb.example.gov.cn/hooks",
        ["refund.succeeded", "payment.succeeded", "payment.succeeded"],
    )
    assert created["secret"].startswith("whsec_") and created["department"] == "PSB"
    assert created["events"] == ["payment.succeeded", "refund.succeeded"]  # sorted, once
    assert created["enabled"] is True and created["failing_since"] is None

    listed = await app_client.get(ENDPOINTS, headers=auth(keys["psb"]))
    assert [e["id"] for e in listed.json()["data"]] == [created["id"]]
    one = await app_client.get(f"{ENDPOINTS}/{created['id']}", headers=auth(keys["psb"]))
    assert one.status_code == 200 and "secret" not in one.json()
    assert "secret" not in listed.json()["data"][0]

    # another department: its own (empty) list, and 404 for PSB's endpoint
    other = await app_client.get(ENDPOINTS, headers=auth(keys["nrb"]))
    assert other.json() == {"data": [], "next_cursor": None}
    for method, path, body in (
        ("GET", f"{ENDPOINTS}/{created['id']}", None),
        ("PATCH", f"{ENDPOINTS}/{created['id']}", {"enabled": False}),
        ("POST", f"{ENDPOINTS}/{created['id']}/rotate-secret", None),
        ("GET", f"{ENDPOINTS}/{created['id']}/deliveries", None),
    ):
        response = await app_client.request(method, path, json=body, headers=auth(keys["nrb"]))
        assert_problem(response, 404, "webhook_endpoint_not_found")
    assert (await app_client.get(f"{ENDPOINTS}/{created['id']}", headers=auth(keys["psb"]))).json()[
        "enabled"
    ] is True


async def test_an_unknown_event_type_is_refused_naming_it(
    app_client: Any, keys: dict[str, str]
) -> None:
    response = await app_client.post(
        ENDPOINTS,
        json={"url": "https://psb.example.gov.cn/hooks", "events": ["payment.succeeded", "pay.ok"]},
        headers=auth(keys["psb"]),
    )
    body = assert_problem(response, 422, "unknown_event_type", field="events[1]")
    assert "pay.ok" in body["detail"]
    empty = await app_client.post(
        ENDPOINTS, json={"url": "https://psb.example.gov.cn/hooks", "events": []},
        headers=auth(keys["psb"]),
    )  # fmt: skip
    assert_problem(empty, 422, "validation_failed", field="events")
    assert (await app_client.get(ENDPOINTS, headers=auth(keys["psb"]))).json()["data"] == []


INSIDE_OR_NOT_HTTPS = (
    "http://psb.example.gov.cn/hooks",  # not https
    "https://127.0.0.1/hooks",
    "https://10.1.2.3/hooks",
    "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hooks",
    "https://localhost/hooks",
    "not a url",
)


async def test_an_address_inside_the_network_is_refused_at_registration(
    app_client: Any, keys: dict[str, str], env: pytest.MonkeyPatch
) -> None:
    env.setenv("ONETRIP_WEBHOOK_ALLOW_PRIVATE", "false")
    reset_settings()
    created = await register(app_client, keys["psb"], "https://93.184.215.14/hooks")
    for url in INSIDE_OR_NOT_HTTPS:
        response = await app_client.post(
            ENDPOINTS, json={"url": url, "events": ["payment.succeeded"]}, headers=auth(keys["psb"])
        )
        assert_problem(response, 422, "invalid_webhook_url", field="url")
        patched = await app_client.patch(
            f"{ENDPOINTS}/{created['id']}", json={"url": url}, headers=auth(keys["psb"])
        )
        assert_problem(patched, 422, "invalid_webhook_url", field="url")
    listed = (await app_client.get(ENDPOINTS, headers=auth(keys["psb"]))).json()["data"]
    assert [(e["id"], e["url"]) for e in listed] == [(created["id"], "https://93.184.215.14/hooks")]


async def test_an_address_allowed_once_is_checked_again_when_sending(
    app_client: Any, keys: dict[str, str], env: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    endpoint = await register(app_client, keys["psb"], receiver.url())  # allowed in tests
    receiver.secrets = [endpoint["secret"]]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())
    await consume_all(payment["id"])
    env.setenv("ONETRIP_WEBHOOK_ALLOW_PRIVATE", "false")
    reset_settings()

    [attempt] = await send_pending(endpoint["id"])
    assert attempt.outcome == "failed" and attempt.error.startswith("refused")
    assert receiver.received == []
    [delivery] = (
        await app_client.get(f"{ENDPOINTS}/{endpoint['id']}/deliveries", headers=auth(keys["psb"]))
    ).json()["data"]
    assert delivery["status"] == "failed" and "must use https" in delivery["last_error"]


async def test_each_event_reaches_the_endpoints_that_want_it_signed_and_numbered(
    app_client: Any, keys: dict[str, str], receiver: Receiver
) -> None:
    wants_payments = await register(app_client, keys["psb"], receiver.url("/a"))
    wants_all = await register(
        app_client, keys["psb"], receiver.url("/b"), list(service.EVENT_TYPES)
    )
    off = await register(app_client, keys["psb"], receiver.url("/off"))
    await app_client.patch(
        f"{ENDPOINTS}/{off['id']}", json={"enabled": False}, headers=auth(keys["psb"])
    )
    other_department = await register(app_client, keys["nrb"], receiver.url("/nrb"))
    receiver.secrets = [wants_payments["secret"], wants_all["secret"]]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())
    refund = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 2000, "reason": "多收退还"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert refund.status_code == 201, refund.text

    events = await payment_events(payment["id"])
    for event in events:
        await consume(event)
        await consume(event)  # a second copy of each event changes nothing
    assert await deliveries_of(off["id"]) == []
    assert await deliveries_of(other_department["id"]) == []
    assert [d.event_type for d in await deliveries_of(wants_payments["id"])] == [
        "payment.succeeded"
    ]
    wanted = [e for e in events if e[1]["type"] in service.EVENT_TYPES]
    assert [d.event_type for d in await deliveries_of(wants_all["id"])] == [
        e[1]["type"] for e in wanted
    ]  # payment.succeeded, refund.succeeded: created/started/refund.created are not sent

    await send_pending(wants_payments["id"])
    await send_pending(wants_all["id"])
    assert len(receiver.received) == 1 + len(wanted)
    assert all(len(r.verified_by) == 1 for r in receiver.received)  # each with its own secret
    [to_a] = [r for r in receiver.received if r.verified_by == {wants_payments["secret"]}]
    body = body_of(to_a)
    assert to_a.headers["webhook-id"] == body["id"] == wanted[0][0]
    assert body["data"]["payment_id"] == payment["id"] and body["data"]["status"] == "succeeded"
    assert body["data"]["amount"] == payment["amount"] and body["data"]["department"] == "PSB"
    # The sequence is the event's place in the payment's timeline (all its events).
    ids = [e[0] for e in events]
    for received in receiver.received:
        data = body_of(received)
        assert data["data"]["sequence"] == ids.index(data["id"]) + 1

    # The delivery log, newest first, a page at a time.
    log = f"{ENDPOINTS}/{wants_all['id']}/deliveries"
    first = (await app_client.get(log, params={"limit": 1}, headers=auth(keys["psb"]))).json()
    rest = await app_client.get(
        log, params={"limit": 1, "cursor": first["next_cursor"]}, headers=auth(keys["psb"])
    )
    assert [d["event_type"] for d in first["data"] + rest.json()["data"]] == [
        e[1]["type"] for e in reversed(wanted)
    ]
    assert rest.json()["next_cursor"] is None
    assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in rest.json()["data"])
    bad = await app_client.get(log, params={"cursor": ids[0]}, headers=auth(keys["psb"]))
    assert_problem(bad, 400, "invalid_cursor")


async def test_a_failing_endpoint_is_retried_and_every_attempt_is_logged(
    app_client: Any, keys: dict[str, str], receiver: Receiver
) -> None:
    endpoint = await register(app_client, keys["psb"], receiver.url())
    receiver.secrets = [endpoint["secret"]]
    receiver.script = [Answer(503, "系统维护中".encode()), Answer(500, b"oops"), Answer(200)]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())
    await consume_all(payment["id"])
    [delivery] = await deliveries_of(endpoint["id"])
    path = f"{ENDPOINTS}/{endpoint['id']}"

    [first] = await send_pending(endpoint["id"])
    assert first.outcome == "retry" and first.retry_at is not None
    failing = (await app_client.get(path, headers=auth(keys["psb"]))).json()
    assert failing["failing_since"] is not None and failing["last_error"] == "HTTP 503"
    assert await send_pending(endpoint["id"]) == [None]  # not due yet
    for _ in range(2):
        await time_passes(delivery.id)
        await send_pending(endpoint["id"])

    listed = (await app_client.get(f"{path}/deliveries", headers=auth(keys["psb"]))).json()
    assert [(d["id"], d["status"], d["attempts"]) for d in listed["data"]] == [
        (delivery.id, "delivered", 3)
    ]
    one = await app_client.get(f"{path}/deliveries/{delivery.id}", headers=auth(keys["psb"]))
    log = one.json()["attempt_log"]
    assert [(a["number"], a["response_status"], a["outcome"]) for a in log] == [
        (1, 503, "retry"),
        (2, 500, "retry"),
        (3, 200, "delivered"),
    ]
    assert log[0]["response_excerpt"] == "系统维护中" and all(a["duration_ms"] >= 0 for a in log)
    assert len({r.body for r in receiver.received}) == 1  # the same bytes every time
    assert all(r.verified_by == {endpoint["secret"]} for r in receiver.received)
    healthy = (await app_client.get(path, headers=auth(keys["psb"]))).json()
    assert healthy["failing_since"] is None and healthy["last_error"] is None
    only_failed = await app_client.get(
        f"{path}/deliveries", params={"status": "failed"}, headers=auth(keys["psb"])
    )
    assert only_failed.json()["data"] == []


async def test_after_a_rotation_both_secrets_verify_for_24_hours_then_only_the_new(
    app_client: Any, keys: dict[str, str], receiver: Receiver
) -> None:
    endpoint = await register(
        app_client, keys["psb"], receiver.url(), ["payment.succeeded", "refund.succeeded"]
    )
    old = endpoint["secret"]
    receiver.secrets = [old]
    receiver.script = [Answer(503)]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())
    await consume_all(payment["id"])
    await send_pending(endpoint["id"])  # fails: stays pending, signed with the old one

    rotated = await app_client.post(
        f"{ENDPOINTS}/{endpoint['id']}/rotate-secret", headers=auth(keys["psb"])
    )
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["secret"]
    assert new != old and rotated.json()["previous_secret_until"] is not None
    receiver.secrets = [old, new]
    [pending] = await deliveries_of(endpoint["id"])
    await time_passes(pending.id)
    await send_pending(endpoint["id"])
    assert receiver.received[-1].verified_by == {old, new}  # the pending one: both

    refund = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 1000, "reason": "多收退还"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert refund.status_code == 201, refund.text
    await watch()  # within the 24 hours: nothing is dropped
    await consume_all(payment["id"], {"refund.succeeded"})
    await send_pending(endpoint["id"])
    assert receiver.received[-1].verified_by == {old, new}  # a new one: both, too

    await rotated_ago(endpoint["id"], timedelta(hours=24, seconds=1))
    await watch()
    shown = await app_client.get(f"{ENDPOINTS}/{endpoint['id']}", headers=auth(keys["psb"]))
    assert shown.json()["previous_secret_until"] is None
    second = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 1000, "reason": "再次退还"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert second.status_code == 201, second.text
    await consume_all(payment["id"], {"refund.succeeded"})
    await send_pending(endpoint["id"])
    last = receiver.received[-1]
    assert last.verified_by == {new} and len(last.headers["webhook-signature"].split()) == 1
    assert len(receiver.received) == 4


async def test_a_late_delivery_carries_a_lower_sequence_so_the_receiver_can_drop_it(
    app_client: Any, keys: dict[str, str], receiver: Receiver
) -> None:
    endpoint = await register(
        app_client, keys["psb"], receiver.url(), ["payment.succeeded", "refund.succeeded"]
    )
    receiver.secrets = [endpoint["secret"]]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())
    refund = await app_client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": payment["amount"], "reason": "全额退款"},
        headers=auth(keys["psb"], idem("rf")),
    )
    assert refund.status_code == 201, refund.text
    events = {e[1]["type"]: e for e in await payment_events(payment["id"])}
    # The refund's event reaches the consumer first (a retry, a slow queue): it is sent first.
    await consume(events["refund.succeeded"])
    await send_pending(endpoint["id"])
    await consume(events["payment.succeeded"])
    await send_pending(endpoint["id"])

    arrived = [body_of(r) for r in receiver.received]
    assert [a["type"] for a in arrived] == ["refund.succeeded", "payment.succeeded"]
    assert arrived[1]["data"]["sequence"] < arrived[0]["data"]["sequence"]
    # a receiver applying the highest sequence seen keeps the refunded state
    latest = max(arrived, key=lambda a: a["data"]["sequence"])
    assert latest["data"]["refund_status"] == "full"


async def test_a_delivery_is_retried_by_hand_only_once_it_has_ended(
    app_client: Any, keys: dict[str, str], receiver: Receiver
) -> None:
    endpoint = await register(app_client, keys["psb"], receiver.url())
    receiver.secrets = [endpoint["secret"]]
    receiver.script = [Answer(400, b"unknown payment"), Answer(503)]
    payment = await paid_payment(app_client, keys["psb"], reference=reference())
    await consume_all(payment["id"])
    [delivery] = await deliveries_of(endpoint["id"])
    retry = f"{ENDPOINTS}/{endpoint['id']}/deliveries/{delivery.id}/retry"

    [failed] = await send_pending(endpoint["id"])
    assert failed.outcome == "failed"
    again = await app_client.post(retry, headers=auth(keys["psb"]))
    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending" and again.json()["attempts"] == 1
    assert_problem(await app_client.post(retry, headers=auth(keys["psb"])), 409, "delivery_pending")

    [retried] = await send_pending(endpoint["id"])
    assert retried.number == 2 and retried.outcome == "retry"  # 503: the schedule goes on
    await time_passes(delivery.id)
    await send_pending(endpoint["id"])
    done = await app_client.get(
        f"{ENDPOINTS}/{endpoint['id']}/deliveries/{delivery.id}", headers=auth(keys["psb"])
    )
    assert done.json()["status"] == "delivered"
    assert [a["outcome"] for a in done.json()["attempt_log"]] == ["failed", "retry", "delivered"]
    assert_problem(
        await app_client.post(retry, headers=auth(keys["psb"])), 409, "delivery_delivered"
    )

    # another endpoint of the same department does not reach this delivery
    other = await register(app_client, keys["psb"], receiver.url("/other"))
    wrong = f"{ENDPOINTS}/{other['id']}/deliveries/{delivery.id}"
    assert_problem(await app_client.get(wrong, headers=auth(keys["psb"])), 404)
    assert_problem(await app_client.post(f"{wrong}/retry", headers=auth(keys["psb"])), 404)
