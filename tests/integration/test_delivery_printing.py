"""Print runs on the spool folder printer: the cut-off, the order, the recorded hashes,
the spooled file, a failing printer that recovers, and two schedulers racing (both
dialects; the race on PostgreSQL, where gatherers really run at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pypdf import PdfReader

from delivery import printing
from delivery.models import PrintRun
from onetrip.db import get_database
from onetrip.settings import get_settings, reset_settings
from tests.integration.test_delivery_print_support import (
    SHANGCHENG,
    XIHU,
    YINZHOU,
    a_payment,
    all_items,
    items_of,
    page_markers,
    print_moves,
    printed_events,
    rendered_license,
    runs,
    sha256,
    status_of,
)


async def test_a_tick_prints_each_stations_rendered_licences_as_one_run_in_dispatch_order(
    app_client,
):
    keys = await a_payment(app_client)
    pay = keys["psb_payment"]
    # made in this order; dispatch order is by address (names compared by code point:
    # 宁 < 杭, 上 < 西): 宁波市 鄞州区, 杭州市 上城区, 杭州市 西湖区 twice (by id); the PSB
    # window's station is a run of its own
    ningbo = await rendered_license(pay, address=YINZHOU)
    xihu_1 = await rendered_license(pay, address=XIHU, license_pages=2)
    shangcheng = await rendered_license(pay, address=SHANGCHENG)
    xihu_2 = await rendered_license(pay, address=XIHU)
    window = await rendered_license(pay, station="PSB-window", address=None)
    waiting = await rendered_license(pay, status="issued")  # not rendered yet: not printed

    tick = await printing.print_due_licences()

    assert len(tick.gathered) == 2 and tick.sent == tick.gathered and tick.failed == []
    by_station = {run.station: run for run in await runs()}
    assert by_station.keys() == {"default", "PSB-window"}
    run = by_station["default"]
    items = await items_of(run.id)
    order = [ningbo, shangcheng, xihu_1, xihu_2]  # xihu_1's id is older than xihu_2's
    assert [item.license_id for item in items] == [lic.id for lic in order]
    assert [item.position for item in items] == [1, 2, 3, 4]
    assert all(item.print_no == 1 for item in items)

    # the one PDF: each licence followed by its cover sheet, in that order
    expected = []
    for lic in order:
        pages = 2 if lic is xihu_1 else 1
        expected += [f"LICENCE {lic.license_no} p{n}" for n in range(1, pages + 1)]
        expected.append(f"COVER {lic.license_no}")
    assert page_markers(run.document) == expected
    assert run.pages == len(expected) == 9 and run.license_count == 4
    assert run.sha256 == sha256(run.document)
    # every document's hash and pages as recorded
    async with get_database().session() as session:
        from sqlalchemy import select

        from delivery.models import LicenseDocument

        docs = {
            (d.license_id, d.kind): d
            for d in (await session.execute(select(LicenseDocument))).scalars()
        }
    for item in items:
        assert item.sha256 == sha256(docs[(item.license_id, "license")].content)
        assert item.cover_sha256 == sha256(docs[(item.license_id, "cover")].content)
        assert (item.pages, item.cover_pages) == (2 if item.license_id == xihu_1.id else 1, 1)

    # spooled: the same bytes, whole, in the station's folder; job id = file name
    spooled = get_settings().spool_dir / "default" / run.printer_job_id
    assert spooled.read_bytes() == run.document
    assert run.status == "sent" and run.printer_state == "spooled" and run.attempts == 1
    assert run.printer == f"spool:{(get_settings().spool_dir / 'default').resolve()}"
    assert [p.name for p in spooled.parent.iterdir()] == [spooled.name]  # no temporary left
    assert page_markers(by_station["PSB-window"].document) == [
        f"LICENCE {window.license_no} p1",
        f"COVER {window.license_no}",
    ]

    for lic in (*order, window):
        assert await status_of(lic.id) == "printed"
        assert await print_moves(lic.id) == [("print", "rendered", "printed")]
        assert await printed_events(lic.id) == 1
    assert await status_of(waiting.id) == "issued"


async def test_a_second_tick_prints_nothing_twice_and_takes_licences_rendered_since(app_client):
    keys = await a_payment(app_client)
    first = await rendered_license(keys["psb_payment"])
    await printing.print_due_licences()

    again = await printing.print_due_licences()
    assert again.gathered == [] and again.sent == []
    assert len(await runs()) == 1 and await printed_events() == 1

    later = await rendered_license(keys["psb_payment"], address=YINZHOU)
    third = await printing.print_due_licences()
    assert len(third.gathered) == 1
    assert [i.license_id for i in await items_of(third.gathered[0])] == [later.id]
    assert {i.license_id for i in await all_items()} == {first.id, later.id}
    assert await printed_events() == 2


async def test_a_big_cut_off_is_split_into_runs_of_the_maximum_size(app_client):
    keys = await a_payment(app_client)
    licences = [await rendered_license(keys["psb_payment"]) for _ in range(5)]
    tick = await printing.print_due_licences(max_run_licenses=2)
    assert [r.license_count for r in await runs()] == [2, 2, 1]
    assert len(tick.sent) == 3
    assert sorted(i.license_id for i in await all_items()) == sorted(lic.id for lic in licences)


async def test_licences_without_their_documents_do_not_hold_up_the_others(app_client):
    keys = await a_payment(app_client)
    broken = [await rendered_license(keys["psb_payment"], documents=False) for _ in range(3)]
    good = await rendered_license(keys["psb_payment"])
    await printing.print_due_licences(max_run_licenses=2)
    assert [i.license_id for i in await all_items()] == [good.id]
    assert await status_of(good.id) == "printed"
    assert {await status_of(lic.id) for lic in broken} == {"rendered"}


async def test_a_printer_that_fails_keeps_the_run_and_the_next_tick_sends_it(
    app_client, env, tmp_path: Path
):
    keys = await a_payment(app_client)
    lic = await rendered_license(keys["psb_payment"])
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be")
    env.setenv("ONETRIP_PRINTERS", f"default=spool:{blocker / 'default'}")
    reset_settings()

    failed = await printing.print_due_licences()
    assert failed.sent == [] and failed.failed == failed.gathered and len(failed.gathered) == 1
    [run] = await runs()
    assert run.status == "failed" and run.attempts == 1
    assert "cannot write" in (run.error or "") and run.printer_job_id is None
    assert await status_of(lic.id) == "rendered" and await printed_events() == 0

    # still failing: tried again, counted, nothing new gathered
    await printing.print_due_licences()
    [run] = await runs()
    assert run.attempts == 2 and run.status == "failed"

    fixed = tmp_path / "spool-fixed"
    env.setenv("ONETRIP_PRINTERS", f"default=spool:{fixed}")
    reset_settings()
    recovered = await printing.print_due_licences()
    assert recovered.gathered == [] and recovered.sent == [run.id]
    [run] = await runs()
    assert run.status == "sent" and run.attempts == 3 and run.error is None
    assert run.printer == f"spool:{fixed.resolve()}"
    assert (fixed / run.printer_job_id).read_bytes() == run.document
    assert await status_of(lic.id) == "printed" and await printed_events() == 1
    assert [i.license_id for i in await all_items()] == [lic.id]


async def test_a_station_without_a_printer_of_its_own_prints_on_the_default(
    app_client, env, tmp_path: Path
):
    keys = await a_payment(app_client)
    await rendered_license(keys["psb_payment"], station="NRB-window")
    hall, psb = tmp_path / "hall", tmp_path / "psb"
    env.setenv("ONETRIP_PRINTERS", f"default=spool:{hall},PSB=spool:{psb}")
    reset_settings()
    await printing.print_due_licences()
    [run] = await runs()
    assert run.station == "NRB-window" and (tmp_path / "hall" / run.printer_job_id).exists()
    assert not (tmp_path / "psb").exists()


async def test_a_run_whose_sender_died_is_sent_again_once_its_lease_is_old(app_client):
    keys = await a_payment(app_client)
    lic = await rendered_license(keys["psb_payment"])
    run_id = await printing.gather_run("default")
    assert run_id is not None
    # a sender took it and died before the printer answered
    from sqlalchemy import update

    from onetrip.clock import utcnow
    from onetrip.db import unit_of_work

    async with unit_of_work() as session:
        await session.execute(
            update(PrintRun)
            .where(PrintRun.id == run_id)
            .values(status="sending", send_started_at=utcnow(), attempts=1)
        )
    assert (await printing.print_due_licences()).sent == []  # its lease still holds
    async with unit_of_work() as session:
        await session.execute(
            update(PrintRun)
            .where(PrintRun.id == run_id)
            .values(send_started_at=utcnow() - printing.SEND_LEASE * 2)
        )
    assert (await printing.print_due_licences()).sent == [run_id]
    assert await status_of(lic.id) == "printed"


# --- two schedulers at once (PostgreSQL: the gatherers really overlap there) -------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite serialises them
async def test_racing_schedulers_put_each_licence_in_exactly_one_run_and_print_it_once(
    app_client,
):
    keys = await a_payment(app_client)
    licences = [
        await rendered_license(
            keys["psb_payment"], address=(XIHU, SHANGCHENG, YINZHOU)[n % 3], station=f"S{n % 2}"
        )
        for n in range(60)
    ]

    # six schedulers' ticks at once, small runs so they interleave
    ticks = await asyncio.gather(
        *(printing.print_due_licences(max_run_licenses=4) for _ in range(6))
    )

    items = await all_items()
    assert sorted(i.license_id for i in items) == sorted(lic.id for lic in licences)
    assert len({i.license_id for i in items}) == 60  # in exactly one run each
    all_runs = await runs()
    assert sum(r.license_count for r in all_runs) == 60
    for run in all_runs:
        assert run.license_count == len(await items_of(run.id)) > 0
        assert run.status == "sent" and run.attempts == 1  # sent once, by one scheduler
    sent = [run_id for tick in ticks for run_id in tick.sent]
    assert sorted(sent) == sorted(r.id for r in all_runs)  # each by exactly one
    assert await printed_events() == 60
    spooled = [p for s in ("S0", "S1") for p in (get_settings().spool_dir / s).iterdir()]
    assert len(spooled) == len(all_runs)
    pages = sum(len(PdfReader(p).pages) for p in spooled)
    assert pages == 120  # each licence and its cover sheet, once


def spooled_pdfs() -> list[Path]:
    return list(Path(get_settings().spool_dir).rglob("*.pdf"))


async def test_a_run_whose_document_changed_after_gathering_is_failed_not_sent(app_client):
    from sqlalchemy import update

    from delivery.models import LicenseDocument
    from onetrip.db import unit_of_work

    keys = await a_payment(app_client)
    lic = await rendered_license(keys["psb_payment"])
    run_id = await printing.gather_run("default")
    assert run_id is not None
    async with unit_of_work() as session:  # the recorded hash no longer matches
        await session.execute(
            update(LicenseDocument)
            .where(LicenseDocument.license_id == lic.id, LicenseDocument.kind == "cover")
            .values(content=b"%PDF-1.4 not what was recorded")
        )

    assert await printing.send_run(run_id) is None
    [run] = await runs()
    assert run.status == "failed" and run.attempts == 1
    assert (run.error or "").startswith("not sent:")
    assert not spooled_pdfs()  # nothing reached the printer
    assert await status_of(lic.id) == "rendered" and await printed_events() == 0
