"""Print runs on a real CUPS queue (cups-pdf, `ONETRIP_TEST_CUPS_URL`; `.ci/run` sets it
up): the job CUPS reports, and the PDF cups-pdf wrote, read back page by page.

cups-pdf writes a job of an unknown user (our IPP requests name the user "onetrip")
into its anonymous folder, `/var/spool/cups-pdf/ANONYMOUS` on Debian, and a local
user's into `~/PDF`; the file name ends in `job_<id>.pdf`.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from delivery import printing
from delivery.printers.cups import IppPrinter
from onetrip.settings import reset_settings
from tests.integration.test_delivery_print_support import (
    SHANGCHENG,
    XIHU,
    YINZHOU,
    a_payment,
    page_markers,
    printed_events,
    rendered_license,
    runs,
    status_of,
)

# CUPS is the same whichever database records the run: SQLite only
pytestmark = [
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    pytest.mark.timeout(300),  # Ghostscript in cups-pdf is slow on a busy machine
]


def _output_folders() -> list[Path]:
    configured = os.environ.get("ONETRIP_TEST_CUPS_PDF_DIR")
    if configured:
        return [Path(configured)]
    spool = Path("/var/spool/cups-pdf")
    return [Path.home() / "PDF", *(sorted(spool.iterdir()) if spool.is_dir() else [])]


async def printed_file(job_id: str, within: float = 90) -> Path:
    """The PDF cups-pdf wrote for the job, once it is complete."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for folder in _output_folders():
            for path in folder.glob(f"*job_{job_id}.pdf"):
                try:
                    PdfReader(path)  # whole: readable to its end
                except Exception:
                    continue
                return path
        await asyncio.sleep(0.25)
    raise AssertionError(f"cups-pdf wrote no file for job {job_id} in {_output_folders()}")


async def completed(printer: IppPrinter, job_id: str, within: float = 90) -> str:
    deadline = time.monotonic() + within
    state = ""
    while time.monotonic() < deadline:
        state = (await printer.status(job_id)).state
        if state in {"completed", "aborted", "canceled", "stopped"}:
            return state
        await asyncio.sleep(0.25)
    return state


async def test_a_run_sent_to_cups_is_printed_page_for_page(app_client, env, cups_url):
    keys = await a_payment(app_client)
    licences = [
        await rendered_license(keys["psb_payment"], address=address, license_pages=pages)
        for address, pages in ((XIHU, 1), (YINZHOU, 2), (SHANGCHENG, 1))
    ]
    env.setenv("ONETRIP_PRINTERS", f"default={cups_url}")
    reset_settings()

    tick = await printing.print_due_licences()

    assert len(tick.sent) == 1
    [run] = await runs()
    assert run.status == "sent" and run.printer == cups_url and run.attempts == 1
    assert run.printer_job_id and run.printer_job_id.isdigit()
    assert run.printer_state in {"pending", "processing", "completed"}
    printer = IppPrinter(cups_url)
    assert await completed(printer, run.printer_job_id) == "completed"
    await printing.print_due_licences()  # the next tick asks CUPS how the job went
    [run] = await runs()
    assert run.printer_state == "completed"

    path = await printed_file(run.printer_job_id)
    try:
        printed = path.read_bytes()
        assert len(PdfReader(path).pages) == run.pages == 7
        # the printer's PDF (re-made by Ghostscript) says what the run says, in order
        assert page_markers(printed) == page_markers(run.document)
        assert page_markers(printed)[:2] == [
            f"LICENCE {licences[1].license_no} p1",  # 宁波市 before 杭州市
            f"LICENCE {licences[1].license_no} p2",
        ]
    finally:
        path.unlink(missing_ok=True)
    for lic in licences:
        assert await status_of(lic.id) == "printed"
    assert await printed_events() == 3


async def test_a_cups_queue_that_fails_keeps_the_run_until_a_working_one_takes_it(
    app_client, env, cups_url
):
    keys = await a_payment(app_client)
    lic = await rendered_license(keys["psb_payment"])
    missing_queue = cups_url.rsplit("/", 1)[0] + "/NO-SUCH-QUEUE"
    env.setenv("ONETRIP_PRINTERS", f"default={missing_queue}")
    reset_settings()
    await printing.print_due_licences()
    [run] = await runs()
    assert run.status == "failed" and run.attempts == 1
    assert "0x0406" in (run.error or "")  # IPP client-error-not-found
    assert await status_of(lic.id) == "rendered"

    env.setenv("ONETRIP_PRINTERS", "default=ipp://127.0.0.1:9/printers/PDF")  # nothing there
    reset_settings()
    await printing.print_due_licences()
    [run] = await runs()
    assert run.status == "failed" and run.attempts == 2 and "127.0.0.1:9" in (run.error or "")

    env.setenv("ONETRIP_PRINTERS", f"default={cups_url}")
    reset_settings()
    assert (await printing.print_due_licences()).sent == [run.id]
    [run] = await runs()
    assert run.status == "sent" and run.attempts == 3 and run.error is None
    path = await printed_file(run.printer_job_id or "")
    try:
        assert page_markers(path.read_bytes()) == [
            f"LICENCE {lic.license_no} p1",
            f"COVER {lic.license_no}",
        ]
    finally:
        path.unlink(missing_ok=True)
    assert await status_of(lic.id) == "printed" and await printed_events() == 1
