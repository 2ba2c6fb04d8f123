"""Rendering issued licences: the consumer of `license.issued` stores the licence and its
cover sheet once, moves the licence to `rendered`, and the QR code printed on the PDF
scans back to the verify URL at print size (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import event, select

from delivery import jobs, rendering
from delivery.models import License, LicenseDocument
from onetrip.db import get_database, unit_of_work
from onetrip.errors import NotFound
from onetrip.outbox import OutboxEvent, as_message
from onetrip.settings import get_settings
from tests.integration.test_delivery_licenses_support import issued_license
from tests.integration.test_payments_support import count_rows

pytest_plugins = ["tests.integration.test_payments_support"]

MM = 72 / 25.4  # points per millimetre


async def issued_event(license_id: str) -> dict[str, Any]:
    async with get_database().session() as session:
        row = await session.scalar(
            select(OutboxEvent).where(
                OutboxEvent.type == "license.issued", OutboxEvent.subject_id == license_id
            )
        )
        assert row is not None
        return as_message(row)


async def consume(message: dict[str, Any], event_id: str | None = None) -> None:
    await jobs.render_license.fn.__wrapped__(event_id or message["id"], message)  # type: ignore[attr-defined]


async def documents_of(license_id: str) -> list[LicenseDocument]:
    async with get_database().session() as session:
        rows = await session.scalars(
            select(LicenseDocument)
            .where(LicenseDocument.license_id == license_id)
            .order_by(LicenseDocument.kind, LicenseDocument.version)
        )
        return list(rows)


async def status_of(license_id: str) -> str:
    async with get_database().session() as session:
        license = await session.get(License, license_id)
        assert license is not None
        return license.status


async def test_an_issued_licence_is_rendered_once_with_its_cover_sheet(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    message = await issued_event(license["id"])
    await consume(message)
    assert await status_of(license["id"]) == "rendered"
    docs = await documents_of(license["id"])
    assert [(d.kind, d.version, d.pages) for d in docs] == [("cover", 1, 1), ("license", 1, 1)]
    for doc in docs:
        assert doc.content.startswith(b"%PDF-") and len(doc.sha256) == 64
        assert doc.font and "not embedded" not in doc.font
    assert await count_rows("outbox_events", "type = 'license.rendered'") == 1

    # the same event again, and another copy of it: nothing more is stored or moved
    await consume(message)
    await consume(message, event_id=message["id"] + "-copy")
    assert len(await documents_of(license["id"])) == 2
    assert await count_rows("outbox_events", "type = 'license.rendered'") == 1

    async with get_database().session() as session:
        pdf = await rendering.current_document(session, license["id"])
        cover = await rendering.current_document(session, license["id"], "cover")
    assert pdf == next(d.content for d in docs if d.kind == "license")
    assert cover == next(d.content for d in docs if d.kind == "cover")


async def test_two_workers_rendering_the_same_licence_at_once_store_one_set(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    message = await issued_event(license["id"])
    results = await asyncio.gather(
        consume(message), consume(message, event_id=message["id"] + "-b"), return_exceptions=True
    )
    # at most one loses the race on the row lock and is retried by Dramatiq; nothing twice
    assert sum(1 for r in results if r is None) >= 1, results
    assert await status_of(license["id"]) == "rendered"
    assert [(d.kind, d.version) for d in await documents_of(license["id"])] == [
        ("cover", 1),
        ("license", 1),
    ]
    assert await count_rows("outbox_events", "type = 'license.rendered'") == 1


async def test_drawing_again_gives_the_same_bytes_and_stores_no_new_version(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    first = await rendering.draw_license(license["id"])
    second = await rendering.draw_license(license["id"])
    assert first is not None and second is not None
    assert [d.sha256 for d in first.documents] == [d.sha256 for d in second.documents]
    async with unit_of_work() as session:
        assert await rendering.keep_documents(session, first)
    async with unit_of_work() as session:
        for drawn in second.documents:  # a late copy: the same bytes are the same version
            assert await rendering.store_document(session, license["id"], drawn) == 1
        assert await rendering.document_versions(session, license["id"]) == 2
    assert await rendering.draw_license(license["id"]) is None  # rendered: nothing to draw


async def test_a_licence_not_rendered_yet_has_no_current_document(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    async with get_database().session() as session:
        with pytest.raises(NotFound):
            await rendering.current_document(session, license["id"])
        with pytest.raises(NotFound):
            await rendering.current_document(session, license["id"], "receipt")


def rasterise(pdf: bytes, tmp_path: Path, dpi: int = 300) -> Image.Image:
    source = tmp_path / "licence.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [shutil.which("pdftoppm") or "pdftoppm", "-r", str(dpi), "-png", "-singlefile",
         str(source), str(tmp_path / "page")],
        check=True,
    )  # fmt: skip
    return Image.open(tmp_path / "page.png")


async def test_the_qr_code_scans_from_the_pdf_at_print_size(app_client, keys, tmp_path):
    license = await issued_license(app_client, keys["psb"])
    await consume(await issued_event(license["id"]))
    async with get_database().session() as session:
        pdf = await rendering.current_document(session, license["id"])
    page = rasterise(pdf, tmp_path)  # what a 300 dpi printer puts on paper
    (found,) = zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)
    assert found.text == license["verify_url"]
    # the URL scanned is the licence's signed code, and the server says it is genuine
    async with get_database().session() as session:
        row = await session.get(License, license["id"])
        assert row is not None and row.verify_code
    assert found.text == f"{get_settings().public_url}/verify/{row.verify_code}"
    path = found.text.split("://", 1)[1].split("/", 1)[1]
    checked = await app_client.get(f"/{path}", headers={"Accept": "application/json"})
    assert checked.status_code == 200 and checked.json()["genuine"] is True, checked.text
    # printed 25 mm wide (the symbol, without its quiet zone), ±0.5 mm
    corners = found.position
    width_px = abs(corners.top_right.x - corners.top_left.x)
    width_mm = width_px / 300 * 25.4
    assert 24.5 <= width_mm <= 25.5, width_mm
    # and still at a coarser 150 dpi (a cheap scanner, a phone at arm's length)
    (tmp_path / "coarse").mkdir()
    coarse = rasterise(pdf, tmp_path / "coarse", dpi=150)
    assert [r.text for r in zxingcpp.read_barcodes(coarse)] == [license["verify_url"]]


async def test_the_pdfs_say_who_holds_the_licence_and_where_it_goes(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    await consume(await issued_event(license["id"]))
    async with get_database().session() as session:
        pdf = await rendering.current_document(session, license["id"])
        cover = await rendering.current_document(session, license["id"], "cover")
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    for expected in ("张伟", license["license_no"], "机动车驾驶证", "市公安局", "准驾车型", "C1"):
        assert expected in text, (expected, text)
    assert "2026年12月01日 至 2032年12月01日" in text

    # the cover sheet: the address inside the DIN 5008 / DL window (20 mm from the left,
    # 45 mm from the top, 85 x 45 mm)
    reader = PdfReader(io.BytesIO(cover))
    height = float(reader.pages[0].mediabox.height)
    placed: list[tuple[str, float, float]] = []

    def visit(text: str, cm: Any, tm: Any, font: Any, size: Any) -> None:
        if text.strip():
            placed.append((text.strip(), tm[4], height - tm[5]))

    reader.pages[0].extract_text(visitor_text=visit)
    window = [
        (t, x / MM, y / MM) for t, x, y in placed if 20 <= x / MM <= 105 and 45 <= y / MM <= 90
    ]
    in_window = "".join(t for t, _, _ in window)
    for expected in (
        "张伟",
        "13800138000",
        "浙江省杭州市西湖区",
        "文三路 100 号 3 幢 201 室",
        "310012",
    ):
        assert expected in in_window, (expected, window)


@pytest.mark.with_worker  # the relay and the rendering consumer must run
async def test_the_worker_renders_an_issued_licence(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    deadline = asyncio.get_running_loop().time() + 20
    while await count_rows("outbox_events", "type = 'license.rendered'") == 0:
        assert asyncio.get_running_loop().time() < deadline, "not rendered in 20 s"
        await asyncio.sleep(0.1)
    assert await status_of(license["id"]) != "issued"
    assert [(d.kind, d.version) for d in await documents_of(license["id"])] == [
        ("cover", 1),
        ("license", 1),
    ]


async def test_a_licence_issued_without_a_code_is_signed_when_rendered(app_client, keys, tmp_path):
    license = await issued_license(app_client, keys["psb"])
    async with unit_of_work() as session:
        row = await session.get(License, license["id"])
        assert row is not None
        row.verify_code, row.signing_kid = None, None
    await consume(await issued_event(license["id"]))
    async with get_database().session() as session:
        row = await session.get(License, license["id"])
        assert row is not None and row.status == "rendered"
        assert row.verify_code and row.signing_kid
        pdf = await rendering.current_document(session, license["id"])
    # the QR code drawn before the signing holds the code the licence got
    (found,) = zxingcpp.read_barcodes(rasterise(pdf, tmp_path))
    assert found.text.endswith(f"/verify/{row.verify_code}")


async def test_a_batch_of_issued_licences_is_rendered_together_as_one_by_one(app_client, keys):
    """The relay hands the renderer a pass's `license.issued` events together: the batch
    is kept in a few statements (rendering.keep_many_documents), with the same rows as
    rendering each alone, and a licence no longer issued is left as it is."""
    licenses = [await issued_license(app_client, keys["psb"]) for _ in range(4)]
    messages = [await issued_event(license["id"]) for license in licenses]
    alone = licenses[0]
    await consume(messages[0])  # rendered on its own first: the batch finds it done
    before = await documents_of(alone["id"])

    batch = [*messages, dict(messages[1], id=messages[1]["id"] + "-copy")]
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement.split("(")[0].strip())

    engine = get_database().engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        await jobs.render_license.fn.__wrapped__(events=batch)  # type: ignore[attr-defined]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # set-based: the three licences' documents in one statement, their moves in one
    assert statements.count("INSERT INTO license_documents") == 1, statements
    assert sum(s.startswith("UPDATE licenses") for s in statements) == 1, statements

    for license in licenses:
        assert await status_of(license["id"]) == "rendered"
        docs = await documents_of(license["id"])
        assert [(d.kind, d.version, d.pages) for d in docs] == [("cover", 1, 1), ("license", 1, 1)]
        assert all(d.content.startswith(b"%PDF-") for d in docs)
    assert [d.sha256 for d in await documents_of(alone["id"])] == [d.sha256 for d in before]
    assert await count_rows("outbox_events", "type = 'license.rendered'") == 4
    assert await count_rows("state_transitions", "to_state = 'rendered'") == 4
    # each licence's documents are its own drawing: its number is in its licence PDF
    for license in licenses:
        [pdf] = [d for d in await documents_of(license["id"]) if d.kind == "license"]
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
        assert license["license_no"] in text
