"""The courier API over HTTP, on SQLite and PostgreSQL: own dispatches only, every rule
of tracking events (API.md), the label and the manifest PDFs (read back by text, the
barcode decoded from the rasterised page)."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from delivery.models import DispatchEvent
from onetrip.db import get_database
from onetrip.outbox import OutboxEvent
from tests.factories import auth, make_key
from tests.integration.test_delivery_dispatch import (
    add_partner,
    consume_printed,
    dispatches_of,
    license_row,
    printed_license,
)

OPENAPI_CONFORMANCE = True  # every answer as the served OpenAPI document says

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def dispatched(partner: str = "SF", **license: Any) -> tuple[str, str]:
    """A licence dispatched to `partner`: (licence id, dispatch id)."""
    row = await printed_license(**license)
    await consume_printed(row.id)
    [dispatch] = await dispatches_of(row.id)
    assert dispatch.partner == partner
    return row.id, dispatch.id


@pytest.fixture
async def courier(app_client: Any) -> dict[str, str]:
    await add_partner("SF", [{"province": "浙江省"}])
    await add_partner("EMS", [{"province": "上海市"}], name="中国邮政EMS")
    return auth(await make_key("courier", partner="SF"))


async def post_event(client: Any, headers: dict[str, str], dispatch_id: str, **body: Any) -> Any:
    return await client.post(
        f"/courier/v1/dispatches/{dispatch_id}/events", json=body, headers=headers
    )


async def test_a_partner_sees_its_own_dispatch_and_not_anothers(
    app_client: Any, courier: dict[str, str]
) -> None:
    license_id, dispatch_id = await dispatched()
    _, other_id = await dispatched("EMS", address={**_shanghai()})
    got = await app_client.get(f"/courier/v1/dispatches/{dispatch_id}", headers=courier)
    assert got.status_code == 200, got.text
    body = got.json()
    assert {"id", "license_id", "payment_id", "partner", "tracking_number", "status"} <= set(body)
    assert body["license_id"] == license_id and body["partner"] == "SF"
    assert body["status"] == "created" and body["events"] == []
    assert body["address"]["recipient"] == "张伟"

    for path in ("", "/label.pdf"):
        hidden = await app_client.get(f"/courier/v1/dispatches/{other_id}{path}", headers=courier)
        assert hidden.status_code == 404, hidden.text
        assert hidden.json()["code"] == "dispatch_not_found"
    event = await post_event(
        app_client, courier, other_id, event_id="e1", status="accepted", occurred_at=at(1)
    )
    assert event.status_code == 404
    listed = (await app_client.get("/courier/v1/dispatches", headers=courier)).json()
    assert [d["id"] for d in listed["data"]] == [dispatch_id]


def _shanghai() -> dict[str, str]:
    return {
        "recipient": "王芳",
        "phone": "13900139000",
        "province": "上海市",
        "city": "上海市",
        "district": "浦东新区",
        "line1": "世纪大道 100 号",
        "postal_code": "200120",
    }


async def test_listing_filters_by_status_and_pages_by_cursor(
    app_client: Any, courier: dict[str, str]
) -> None:
    ids = [(await dispatched())[1] for _ in range(3)]
    await post_event(
        app_client, courier, ids[0], event_id="a", status="accepted", occurred_at=at(1)
    )
    page1 = (await app_client.get("/courier/v1/dispatches?limit=2", headers=courier)).json()
    assert [d["id"] for d in page1["data"]] == [ids[2], ids[1]] and page1["next_cursor"]
    page2 = await app_client.get(
        f"/courier/v1/dispatches?limit=2&cursor={page1['next_cursor']}", headers=courier
    )
    assert [d["id"] for d in page2.json()["data"]] == [ids[0]]
    assert page2.json()["next_cursor"] is None
    accepted = await app_client.get("/courier/v1/dispatches?status=accepted", headers=courier)
    assert [d["id"] for d in accepted.json()["data"]] == [ids[0]]
    bad = await app_client.get("/courier/v1/dispatches?status=lost", headers=courier)
    assert bad.status_code == 422


async def test_events_move_the_dispatch_and_delivery_needs_the_recipient(
    app_client: Any, courier: dict[str, str]
) -> None:
    license_id, dispatch_id = await dispatched()
    for minute, status in enumerate(("accepted", "picked_up", "in_transit", "out_for_delivery"), 1):
        answer = await post_event(
            app_client,
            courier,
            dispatch_id,
            event_id=f"e{minute}",
            status=status,
            occurred_at=at(minute),
            location="杭州转运中心",
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == status  # applied before the response
    no_proof = await post_event(
        app_client, courier, dispatch_id, event_id="e5", status="delivered", occurred_at=at(5)
    )
    assert no_proof.status_code == 422
    assert no_proof.json()["errors"][0]["field"] == "recipient_name"
    delivered = await post_event(
        app_client,
        courier,
        dispatch_id,
        event_id="e5",
        status="delivered",
        occurred_at=at(5),
        recipient_name="张伟",
    )
    assert delivered.status_code == 200, delivered.text
    body = delivered.json()
    assert body["status"] == "delivered" and body["recipient_name"] == "张伟"
    assert [e["status"] for e in body["events"]][-1] == "delivered"
    assert (await license_row(license_id)).status == "delivered"
    async with get_database().session() as session:
        types = list(
            (
                await session.execute(
                    select(OutboxEvent.type).where(OutboxEvent.subject_id == license_id)
                )
            ).scalars()
        )
    assert "license.delivered" in types


async def test_a_repeated_event_id_is_a_200_that_changes_nothing(
    app_client: Any, courier: dict[str, str]
) -> None:
    _, dispatch_id = await dispatched()
    first = await post_event(
        app_client, courier, dispatch_id, event_id="dup", status="accepted", occurred_at=at(1)
    )
    again = await post_event(
        app_client, courier, dispatch_id, event_id="dup", status="picked_up", occurred_at=at(2)
    )
    assert first.status_code == again.status_code == 200
    assert again.json()["status"] == "accepted"
    assert len(again.json()["events"]) == 1


async def test_a_late_event_is_kept_but_never_moves_the_dispatch_back(
    app_client: Any, courier: dict[str, str]
) -> None:
    _, dispatch_id = await dispatched()
    await post_event(
        app_client,
        courier,
        dispatch_id,
        event_id="d",
        status="delivered",
        occurred_at=at(30),
        recipient_name="张伟",
    )
    late = await post_event(
        app_client, courier, dispatch_id, event_id="t", status="in_transit", occurred_at=at(10)
    )
    assert late.status_code == 200, late.text
    body = late.json()
    assert body["status"] == "delivered"
    kept = {e["event_id"]: e for e in body["events"]}
    assert kept["t"]["applied"] is False and kept["d"]["applied"] is True
    # a newer event from a final state is a conflict, and is not recorded
    newer = await post_event(
        app_client, courier, dispatch_id, event_id="n", status="in_transit", occurred_at=at(40)
    )
    assert newer.status_code == 409, newer.text
    async with get_database().session() as session:
        ids = list(
            (
                await session.execute(
                    select(DispatchEvent.event_id).where(DispatchEvent.dispatch_id == dispatch_id)
                )
            ).scalars()
        )
    assert sorted(ids) == ["d", "t"]


async def test_the_third_failed_attempt_returns_the_dispatch_and_the_licence(
    app_client: Any, courier: dict[str, str]
) -> None:
    license_id, dispatch_id = await dispatched()
    for n in range(1, 4):
        answer = await post_event(
            app_client,
            courier,
            dispatch_id,
            event_id=f"f{n}",
            status="failed_attempt",
            occurred_at=at(n * 60),
            note="电话无人接听",
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["failed_attempts"] == n
        assert body["status"] == ("returned" if n == 3 else "failed_attempt")
    assert (await license_row(license_id)).status == "returned"


async def test_a_returned_event_returns_the_licence(
    app_client: Any, courier: dict[str, str]
) -> None:
    license_id, dispatch_id = await dispatched()
    answer = await post_event(
        app_client, courier, dispatch_id, event_id="r", status="returned", occurred_at=at(5)
    )
    assert answer.status_code == 200 and answer.json()["status"] == "returned"
    assert (await license_row(license_id)).status == "returned"


async def test_bad_events_are_4xx_problems_that_change_nothing(
    app_client: Any, courier: dict[str, str]
) -> None:
    _, dispatch_id = await dispatched()
    for body in (
        {"event_id": "x", "status": "lost_in_space", "occurred_at": at(1)},
        {"event_id": "x", "status": "accepted", "occurred_at": "2026-12-01T10:00:00"},
        {"event_id": "x", "status": "accepted"},
        {"event_id": "", "status": "accepted", "occurred_at": at(1)},
    ):
        answer = await post_event(app_client, courier, dispatch_id, **body)
        assert answer.status_code in (400, 422), answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    unknown = await post_event(
        app_client, courier, dispatch_id, event_id="x", status="lost_in_space", occurred_at=at(1)
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "status"
    missing = await post_event(
        app_client, courier, "dsp_nope", event_id="x", status="accepted", occurred_at=at(1)
    )
    assert missing.status_code == 404
    view = await app_client.get(f"/courier/v1/dispatches/{dispatch_id}", headers=courier)
    assert view.json()["status"] == "created" and view.json()["events"] == []


async def test_only_courier_keys_use_the_courier_api(app_client: Any, courier: Any) -> None:
    _, dispatch_id = await dispatched()
    department = auth(await make_key("department", departments=["PSB"]))
    assert (await app_client.get("/courier/v1/dispatches", headers=department)).status_code == 403
    got = await app_client.get(f"/courier/v1/dispatches/{dispatch_id}", headers=department)
    assert got.status_code == 403
    assert (await app_client.get("/courier/v1/dispatches")).status_code == 401


# --- the label and the manifest -------------------------------------------------------


def _text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _barcodes(pdf: bytes, tmp_path: Path) -> list[str]:
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) not installed")
    path = tmp_path / "label.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "200", "-png", "-singlefile", str(path), str(tmp_path / "label")],
        check=True,
    )
    image = Image.open(tmp_path / "label.png")
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format.name == "Code128"]


async def test_the_label_carries_the_tracking_number_as_code_128_and_the_recipient(
    app_client: Any, courier: dict[str, str], tmp_path: Path
) -> None:
    _, dispatch_id = await dispatched()
    view = (await app_client.get(f"/courier/v1/dispatches/{dispatch_id}", headers=courier)).json()
    answer = await app_client.get(
        f"/courier/v1/dispatches/{dispatch_id}/label.pdf", headers=courier
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    pdf = answer.content
    text = _text(pdf)
    for expected in (
        view["tracking_number"],
        "张伟",
        "138****8000",
        "西湖区",
        "市公安局",
        "顺丰速运",
    ):
        assert expected in text, expected
    assert _barcodes(pdf, tmp_path) == [view["tracking_number"]]
    from pypdf import PdfReader

    [page] = PdfReader(io.BytesIO(pdf)).pages
    width_mm, height_mm = (float(v) / 72 * 25.4 for v in page.mediabox[2:])
    assert (round(width_mm), round(height_mm)) == (100, 150)


async def test_the_manifest_lists_the_days_hand_over_with_a_count_and_signatures(
    app_client: Any, courier: dict[str, str]
) -> None:
    ids = [(await dispatched())[1] for _ in range(3)]
    views = [
        (await app_client.get(f"/courier/v1/dispatches/{d}", headers=courier)).json() for d in ids
    ]
    day = views[0]["handover_date"]
    answer = await app_client.get(f"/courier/v1/manifests/{day}.pdf", headers=courier)
    assert answer.status_code == 200, answer.text
    text = _text(answer.content)
    for view in views:
        assert view["tracking_number"] in text
    assert "共 3 件" in text and "签字" in text and "第 1 页 / 共 1 页" in text
    empty = await app_client.get("/courier/v1/manifests/2026-01-01.pdf", headers=courier)
    assert empty.status_code == 200 and "共 0 件" in _text(empty.content)
    bad = await app_client.get("/courier/v1/manifests/yesterday.pdf", headers=courier)
    assert bad.status_code == 422


def test_a_long_manifest_runs_over_pages_numbered_and_headed() -> None:
    from datetime import date

    from delivery.labels import ManifestLine, manifest_pdf

    lines = [ManifestLine(f"OT{n:012d}", "张伟", "杭州市", "西湖区", "市公安局") for n in range(80)]
    pdf = manifest_pdf("SF", "顺丰速运", date(2026, 12, 1), lines, T0)
    from pypdf import PdfReader

    pages = [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert f"第 {number} 页 / 共 {len(pages)} 页" in page
        assert "运单号" in page and "顺丰速运" in page  # headings and header on every page
    text = "\n".join(pages)
    assert "共 80 件" in text and all(line.tracking_number in text for line in lines)


async def test_a_returned_licence_is_redispatched_by_its_department_to_a_new_address(
    app_client: Any, courier: dict[str, str]
) -> None:
    license_id, first_id = await dispatched()
    await post_event(
        app_client, courier, first_id, event_id="r", status="returned", occurred_at=at(5)
    )
    psb = await make_key("department", departments=["PSB"])
    incomplete = await app_client.post(
        f"/api/v1/licenses/{license_id}/redispatch",
        json={"address": {"recipient": "李娜", "province": "浙江省"}},
        headers=auth(psb, "redispatch-1"),
    )
    assert incomplete.status_code == 422, incomplete.text
    fields = {e["field"] for e in incomplete.json()["errors"]}
    assert {"address.phone", "address.city", "address.district", "address.line1"} <= fields
    corrected = {
        "recipient": "李娜",
        "phone": "13700137000",
        "province": "浙江省",
        "city": "杭州市",
        "district": "拱墅区",
        "line1": "湖墅南路 88 号",
    }
    again = await app_client.post(
        f"/api/v1/licenses/{license_id}/redispatch",
        json={"address": corrected},
        headers=auth(psb, "redispatch-2"),
    )
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "dispatched"
    listed = (await app_client.get("/courier/v1/dispatches", headers=courier)).json()["data"]
    second = next(d for d in listed if d["id"] != first_id)
    assert second["license_id"] == license_id and second["status"] == "created"
    assert second["address"]["district"] == "拱墅区"
    assert second["tracking_number"] != listed[-1]["tracking_number"]
