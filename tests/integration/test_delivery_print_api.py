"""The print-run API: admin sees every run whole; a department key the runs holding its
licences, with only its items and its pages; anyone else a 401, 403 or 404 (both
dialects)."""

from __future__ import annotations

import io

from pypdf import PdfReader

from delivery import printing
from tests.factories import auth, make_key
from tests.integration.test_delivery_print_support import (
    XIHU,
    YINZHOU,
    a_payment,
    page_markers,
    rendered_license,
    sha256,
)

# every response must be what the served OpenAPI document says
OPENAPI_CONFORMANCE = True

RUN_FIELDS = {
    "id",
    "station",
    "status",
    "printer",
    "sha256",
    "pages",
    "license_count",
    "printer_job_id",
    "printer_state",
    "error",
    "attempts",
    "created_at",
    "sent_at",
}
ITEM_FIELDS = {
    "license_id",
    "license_no",
    "department",
    "print_no",
    "position",
    "sha256",
    "pages",
    "cover_sha256",
    "cover_pages",
}


async def _two_runs(client):
    """A shared station's run with PSB and NRB licences, then the PSB window's own."""
    keys = await a_payment(client)
    psb_1 = await rendered_license(keys["psb_payment"], address=XIHU)
    nrb = await rendered_license(keys["nrb_payment"], department="NRB", address=YINZHOU)
    psb_2 = await rendered_license(keys["psb_payment"], address=YINZHOU)
    first = await printing.print_due_licences()
    await rendered_license(keys["psb_payment"], station="PSB-window")
    second = await printing.print_due_licences()
    return keys, first.sent[0], second.sent[0], {"psb_1": psb_1, "nrb": nrb, "psb_2": psb_2}


async def test_admin_sees_every_run_whole_newest_first_a_page_at_a_time(app_client):
    keys, shared, window, lic = await _two_runs(app_client)
    admin = auth(keys["admin"])

    page = (await app_client.get("/api/v1/print-runs?limit=1", headers=admin)).json()
    assert [r["id"] for r in page["data"]] == [window] and page["next_cursor"] == window
    rest = await app_client.get(f"/api/v1/print-runs?limit=1&cursor={window}", headers=admin)
    assert [r["id"] for r in rest.json()["data"]] == [shared]
    assert rest.json()["next_cursor"] is None
    assert page["data"][0].keys() == RUN_FIELDS  # no items in the list

    response = await app_client.get(f"/api/v1/print-runs/{shared}", headers=admin)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run.keys() == RUN_FIELDS | {"items"}
    assert run["status"] == "sent" and run["station"] == "default" and run["license_count"] == 3
    assert run["printer"].startswith("spool:") and run["printer_state"] == "spooled"
    assert run["pages"] == 6 and run["attempts"] == 1 and run["error"] is None
    # dispatch order: 宁波市 (NRB's, then PSB's second, by id) before 杭州市
    assert [i["license_id"] for i in run["items"]] == [
        lic["nrb"].id,
        lic["psb_2"].id,
        lic["psb_1"].id,
    ]
    assert all(i.keys() == ITEM_FIELDS for i in run["items"])
    assert [i["department"] for i in run["items"]] == ["NRB", "PSB", "PSB"]
    assert run["items"][0]["license_no"] == lic["nrb"].license_no

    pdf = await app_client.get(f"/api/v1/print-runs/{shared}/document.pdf", headers=admin)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert sha256(pdf.content) == run["sha256"]
    assert len(PdfReader(io.BytesIO(pdf.content)).pages) == 6

    filtered = await app_client.get("/api/v1/print-runs?status=failed", headers=admin)
    assert filtered.json() == {"data": [], "next_cursor": None}
    by_station = await app_client.get("/api/v1/print-runs?station=PSB-window", headers=admin)
    assert [r["id"] for r in by_station.json()["data"]] == [window]


async def test_a_department_sees_only_its_own_licences_in_a_shared_run(app_client):
    keys, shared, window, lic = await _two_runs(app_client)
    psb, nrb = auth(keys["psb"]), auth(keys["nrb"])

    listed = (await app_client.get("/api/v1/print-runs", headers=psb)).json()
    assert [r["id"] for r in listed["data"]] == [window, shared]
    listed = (await app_client.get("/api/v1/print-runs", headers=nrb)).json()
    assert [r["id"] for r in listed["data"]] == [shared]

    run = (await app_client.get(f"/api/v1/print-runs/{shared}", headers=psb)).json()
    assert [i["license_id"] for i in run["items"]] == [lic["psb_2"].id, lic["psb_1"].id]
    pdf = await app_client.get(f"/api/v1/print-runs/{shared}/document.pdf", headers=psb)
    assert pdf.status_code == 200
    assert page_markers(pdf.content) == [
        f"LICENCE {lic['psb_2'].license_no} p1",
        f"COVER {lic['psb_2'].license_no}",
        f"LICENCE {lic['psb_1'].license_no} p1",
        f"COVER {lic['psb_1'].license_no}",
    ]
    nrb_pdf = await app_client.get(f"/api/v1/print-runs/{shared}/document.pdf", headers=nrb)
    assert page_markers(nrb_pdf.content) == [
        f"LICENCE {lic['nrb'].license_no} p1",
        f"COVER {lic['nrb'].license_no}",
    ]

    # the PSB window's run holds no NRB licence: as if it did not exist
    for path in (f"/api/v1/print-runs/{window}", f"/api/v1/print-runs/{window}/document.pdf"):
        response = await app_client.get(path, headers=nrb)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "print_run_not_found"


async def test_keys_without_licences_in_a_run_or_of_the_wrong_role_are_refused(app_client):
    keys, shared, _window, _lic = await _two_runs(app_client)
    hcb = auth(await make_key("department", ["HCB"]))
    assert (await app_client.get("/api/v1/print-runs", headers=hcb)).json()["data"] == []
    assert (await app_client.get(f"/api/v1/print-runs/{shared}", headers=hcb)).status_code == 404

    for role, partner in (("finance", None), ("courier", "sf-express")):
        key = auth(await make_key(role, partner=partner))
        for path in ("/api/v1/print-runs", f"/api/v1/print-runs/{shared}"):
            response = await app_client.get(path, headers=key)
            assert response.status_code == 403, (role, path, response.text)
            assert response.json()["code"] == "wrong_role"
    response = await app_client.get(f"/api/v1/print-runs/{shared}/document.pdf")
    assert response.status_code == 401
    unknown = await app_client.get("/api/v1/print-runs/prn_nope", headers=auth(keys["admin"]))
    assert unknown.status_code == 404 and unknown.json()["code"] == "print_run_not_found"
    bad = await app_client.get("/api/v1/print-runs?status=lost", headers=auth(keys["admin"]))
    assert bad.status_code == 400, bad.text
    cursor = await app_client.get("/api/v1/print-runs?cursor=lic_x", headers=auth(keys["admin"]))
    assert cursor.status_code == 400 and cursor.json()["code"] == "invalid_cursor"
    too_many = await app_client.get("/api/v1/print-runs?limit=201", headers=auth(keys["admin"]))
    assert too_many.status_code in (400, 422) and too_many.json()["code"] == "invalid_limit"


async def test_a_run_gathered_but_not_yet_built_has_no_document_yet(app_client):
    keys = await a_payment(app_client)
    await rendered_license(keys["psb_payment"])
    run_id = await printing.gather_run("default")
    response = await app_client.get(
        f"/api/v1/print-runs/{run_id}/document.pdf", headers=auth(keys["admin"])
    )
    assert response.status_code == 409 and response.json()["code"] == "print_run_not_ready"
    run = (await app_client.get(f"/api/v1/print-runs/{run_id}", headers=auth(keys["psb"]))).json()
    assert run["status"] == "pending" and run["sha256"] is None and run["pages"] == 2
