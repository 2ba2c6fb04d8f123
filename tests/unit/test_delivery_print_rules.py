"""Print-run rules without a database: the printers setting, the dispatch order, merging
documents, and the spool folder's whole-or-nothing files."""

from __future__ import annotations

import pytest

from delivery.models import License
from delivery.printers import parse_printers, printer_for
from delivery.printers.cups import IppPrinter
from delivery.printers.spool import SpoolPrinter
from delivery.printing import PrintRunBroken, dispatch_order, merge
from onetrip.settings import reset_settings
from tests.integration.test_delivery_print_support import draw_pdf, page_markers


def test_the_printers_setting_maps_stations_to_spool_folders_and_ipp_queues():
    assert parse_printers(None) == {}
    assert parse_printers(" default=spool: , PSB=ipp://127.0.0.1:631/printers/PDF,") == {
        "default": "spool:",
        "PSB": "ipp://127.0.0.1:631/printers/PDF",
    }
    for bad in ("PSB", "=spool:", "PSB=", "PSB=lpr://printer"):
        with pytest.raises(ValueError, match="ONETRIP_PRINTERS"):
            parse_printers(bad)


def test_a_station_prints_on_its_own_printer_else_the_default_else_the_spool(env, tmp_path):
    env.setenv("ONETRIP_PRINTERS", "PSB=ipp://127.0.0.1:631/printers/PDF")
    reset_settings()
    psb = printer_for("PSB")
    assert isinstance(psb, IppPrinter) and psb.uri == "ipp://127.0.0.1:631/printers/PDF"
    other = printer_for("NRB-window")  # no default entry: the station's spool folder
    assert isinstance(other, SpoolPrinter)
    assert other.folder == (tmp_path / "spool" / "NRB-window").resolve()

    env.setenv("ONETRIP_PRINTERS", f"default=spool:{tmp_path / 'hall'},PSB=spool:")
    reset_settings()
    assert printer_for("NRB-window").uri == f"spool:{(tmp_path / 'hall').resolve()}"
    assert printer_for("PSB").uri == f"spool:{(tmp_path / 'spool' / 'PSB').resolve()}"


def _licence(license_id: str, address: dict[str, str] | None) -> License:
    return License(id=license_id, address=address)


def test_dispatch_order_groups_one_areas_parcels_then_orders_by_licence_id():
    area = {"province": "浙江省", "city": "杭州市", "district": "西湖区"}
    licences = [
        _licence("lic_5", {**area, "line1": "文三路 100 号"}),
        _licence("lic_1", {**area, "district": "上城区", "line1": "解放路 18 号"}),
        _licence("lic_4", {**area, "line1": "文三路 100 号"}),
        _licence("lic_2", {**area, "city": "宁波市", "district": "鄞州区", "line1": "天童南路"}),
        _licence("lic_3", None),  # pickup: no address
        _licence("lic_6", {**area, "province": "江苏省", "city": "南京市", "line1": "中山路"}),
    ]
    ordered = [lic.id for lic in sorted(licences, key=dispatch_order)]
    assert ordered == ["lic_3", "lic_6", "lic_2", "lic_1", "lic_4", "lic_5"]


def test_merging_keeps_every_page_in_order_and_refuses_a_wrong_page_count():
    merged, pages = merge([(draw_pdf("A1", "A2"), 2), (draw_pdf("B1"), 1)])
    assert pages == 3 and page_markers(merged) == ["A1", "A2", "B1"]
    with pytest.raises(PrintRunBroken, match="pages"):
        merge([(draw_pdf("A1", "A2"), 1)])


async def test_the_spool_folder_gets_the_whole_file_under_the_runs_name(tmp_path):
    printer = SpoolPrinter(tmp_path / "default")
    document = draw_pdf("LICENCE 1")
    answer = await printer.send(document, title="prn_1-default")
    assert answer.job_id == "prn_1-default.pdf" and answer.state == "spooled"
    assert (tmp_path / "default" / "prn_1-default.pdf").read_bytes() == document
    assert [p.name for p in (tmp_path / "default").iterdir()] == ["prn_1-default.pdf"]
    # sent again (a retry): the same file, nothing added
    await printer.send(document, title="prn_1-default")
    assert [p.name for p in (tmp_path / "default").iterdir()] == ["prn_1-default.pdf"]
    assert (await printer.status(answer.job_id)).state == "spooled"
    # an odd title cannot leave the folder
    escaped = await printer.send(document, title="../../etc/passwd")
    assert (tmp_path / "default" / escaped.job_id).exists() and "/" not in escaped.job_id
