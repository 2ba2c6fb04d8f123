"""The real pipeline up to the printer: a licence issued through the API and rendered by
the renderer's consumer is printed in the next run, its own pages then its cover sheet
(both dialects)."""

from __future__ import annotations

import io

from pypdf import PdfReader
from sqlalchemy import select

from delivery import printing
from onetrip.db import get_database
from onetrip.outbox import OutboxEvent
from tests.integration.test_delivery_licenses_support import issued_license
from tests.integration.test_delivery_print_support import runs, status_of
from tests.integration.test_delivery_render import consume, issued_event

pytest_plugins = ["tests.integration.test_payments_support"]


async def test_an_issued_and_rendered_licence_is_printed_with_its_cover_sheet(app_client, keys):
    license = await issued_license(app_client, keys["psb"])
    await consume(await issued_event(license["id"]))
    assert await status_of(license["id"]) == "rendered"

    tick = await printing.print_due_licences()

    [run] = await runs()
    assert tick.sent == [run.id] and run.license_count == 1
    pages = [page.extract_text() for page in PdfReader(io.BytesIO(run.document)).pages]
    assert len(pages) == run.pages == 2
    licence_page, cover_page = pages
    assert license["license_no"] in licence_page and "张伟" in licence_page
    assert "文三路 100 号" in cover_page  # the address block of the cover sheet
    assert await status_of(license["id"]) == "printed"
    async with get_database().session() as session:
        event = await session.scalar(
            select(OutboxEvent).where(
                OutboxEvent.type == "license.printed", OutboxEvent.subject_id == license["id"]
            )
        )
    assert event is not None
    assert event.data["status"] == "printed" and event.data["previous_status"] == "rendered"
    assert event.payment_id == license["payment_id"] and event.department == "PSB"
