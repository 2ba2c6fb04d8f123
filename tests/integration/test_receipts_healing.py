"""Receipts heal: one drawn with the non-embedded fallback font is drawn again once an
embedded font is in use, and refunds (paid, or undone) re-issue it under its number.

On SQLite and PostgreSQL. The fonts installed on the machine are the edge of the world
here: "no font installed" is the Debian font lists emptied, and "the font arrived and
the service restarted" is the lists put back and the process's choice forgotten.
"""

from __future__ import annotations

import io
from typing import Any

import dramatiq
import pytest
from litestar.testing import AsyncTestClient
from pypdf import PdfReader
from sqlalchemy import update

from onetrip import pdf
from onetrip.db import get_database, unit_of_work
from onetrip.outbox import relay_batch
from onetrip.pdf import fonts
from payments.models import Receipt
from tests.factories import auth, make_key, seed_catalogue
from tests.integration.test_consumers import run_worker
from tests.integration.test_payments_refunds import refund
from tests.integration.test_payments_support import create_payment, paid_payment, pay_with_sandbox
from tests.unit.test_receipt import embedded_font_files, require_embedded_cjk_font

pytest_plugins = ["tests.integration.test_payments_support"]


def no_cjk_font_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "DEBIAN_CJK_FONTS", ())
    monkeypatch.setattr(fonts, "DEBIAN_FALLBACK_FONTS", ())
    pdf.reset_cjk_font()
    assert not pdf.cjk_font_in_use().embedded


def font_arrived_and_service_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    pdf.reset_cjk_font()
    require_embedded_cjk_font()


async def kept(payment_id: str) -> Receipt:
    async with get_database().session() as session:
        receipt = await session.get(Receipt, payment_id)
        assert receipt is not None
        return receipt


def text_of(document: bytes) -> str:
    reader = PdfReader(io.BytesIO(document))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


async def get_receipt(client: Any, key: str, payment_id: str) -> bytes:
    response = await client.get(f"/api/v1/payments/{payment_id}/receipt.pdf", headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/pdf")
    return response.content


# --- the font --------------------------------------------------------------------------


async def test_a_receipt_drawn_without_an_embedded_font_is_redrawn_once_one_is_in_use(
    app_client, keys
):
    patch = pytest.MonkeyPatch()
    no_cjk_font_installed(patch)
    payment = await paid_payment(app_client, keys["psb"])
    blank = await get_receipt(app_client, keys["psb"], payment["id"])
    assert b"/STSong-Light" in blank and not embedded_font_files(blank)
    first = await kept(payment["id"])
    assert (first.version, first.font, first.font_embedded) == (1, "STSong-Light", False)
    # Asked again with still no font: the same receipt, not a new version each time.
    assert await get_receipt(app_client, keys["psb"], payment["id"]) == blank

    font_arrived_and_service_restarted(patch)
    healed = await get_receipt(app_client, keys["psb"], payment["id"])
    assert b"/STSong-Light" not in healed and embedded_font_files(healed)
    assert payment["id"] in text_of(healed)  # the same receipt number
    assert "第 2 版" in text_of(healed)
    second = await kept(payment["id"])
    assert second.version == 2 and second.content == healed
    assert second.font == pdf.cjk_font_in_use().label and second.font_embedded is True
    # Healed once: asked again, the kept one.
    assert await get_receipt(app_client, keys["psb"], payment["id"]) == healed
    assert (await kept(payment["id"])).version == 2


async def test_a_receipt_kept_before_fonts_were_recorded_heals_from_its_content(app_client, keys):
    patch = pytest.MonkeyPatch()
    no_cjk_font_installed(patch)
    payment = await paid_payment(app_client, keys["psb"])
    await get_receipt(app_client, keys["psb"], payment["id"])
    async with unit_of_work() as session:  # as migration 0007 leaves an older receipt
        await session.execute(
            update(Receipt)
            .where(Receipt.payment_id == payment["id"])
            .values(font=None, font_embedded=None, refund_ids=None)
        )

    font_arrived_and_service_restarted(patch)
    healed = await get_receipt(app_client, keys["psb"], payment["id"])
    assert embedded_font_files(healed) and b"/STSong-Light" not in healed
    assert (await kept(payment["id"])).version == 2


async def test_a_receipt_drawn_with_an_embedded_font_is_not_redrawn(app_client, keys):
    require_embedded_cjk_font()
    payment = await paid_payment(app_client, keys["psb"])
    first = await get_receipt(app_client, keys["psb"], payment["id"])
    pdf.reset_cjk_font()  # a restart, same font
    assert await get_receipt(app_client, keys["psb"], payment["id"]) == first
    assert (await kept(payment["id"])).version == 1


# --- refunds, on request --------------------------------------------------------------


async def test_a_receipt_asked_for_after_a_refund_shows_it_though_no_job_ran(app_client, keys):
    payment = await paid_payment(app_client, keys["psb"])
    before = await get_receipt(app_client, keys["psb"], payment["id"])
    assert "已退款" not in text_of(before)
    assert (await refund(app_client, keys["psb"], payment["id"], 5000)).status_code == 201

    after = text_of(await get_receipt(app_client, keys["psb"], payment["id"]))
    assert "退款 ¥50.00" in after and "合计 ¥50.00（部分退款）" in after
    assert "¥70.00" in after  # net paid
    assert payment["id"] in after and "第 2 版" in after
    assert (await kept(payment["id"])).version == 2


async def test_no_receipt_before_the_payment_succeeded(app_client, keys):
    payment = await create_payment(app_client, keys["psb"])
    response = await app_client.get(
        f"/api/v1/payments/{payment['id']}/receipt.pdf", headers=auth(keys["psb"])
    )
    assert response.status_code == 409
    assert response.json()["code"] == "payment_not_succeeded"


# --- refunds, by the consumer of refund events ------------------------------------------


@pytest.fixture
async def client(db, env):  # type: ignore[no-untyped-def]
    """The app without its embedded worker: the test runs the relay and worker itself."""
    from onetrip.app import create_app
    from onetrip.settings import get_settings

    async with AsyncTestClient(app=create_app(get_settings(), embedded_worker=False)) as client:
        yield client


async def run_jobs() -> None:
    while await relay_batch():
        pass
    await run_worker(dramatiq.get_broker(), ("payments",))


async def test_refunds_paid_and_undone_re_issue_the_kept_receipt_under_its_number(client):
    from payments.refunds import settle_refund

    admin = await make_key("admin")
    await seed_catalogue(client, admin)
    psb = await make_key("department", ["PSB"])
    payment = await create_payment(client, psb)
    await pay_with_sandbox(client, payment)
    await run_jobs()
    assert (await kept(payment["id"])).version == 1

    first = await refund(client, psb, payment["id"], 5000)
    assert first.status_code == 201 and first.json()["status"] == "succeeded", first.text
    await run_jobs()
    partial = await kept(payment["id"])
    assert partial.version == 2 and partial.refund_ids == [first.json()["id"]]
    text = text_of(partial.content)
    assert "退款 ¥50.00" in text and "已部分退款" in text and payment["id"] in text

    second = await refund(client, psb, payment["id"], 7000, "不予受理，全额退费")
    assert second.status_code == 201, second.text
    await run_jobs()
    full = await kept(payment["id"])
    assert full.version == 3
    assert full.refund_ids == [first.json()["id"], second.json()["id"]]
    text = text_of(full.content)
    assert "已全额退款" in text and "合计 ¥120.00（全额退款）" in text

    # The bank returns the second refund: the refund machine's undo re-issues it again.
    async with unit_of_work() as session:
        await settle_refund(session, second.json()["id"], "failed", failure_reason="退回")
    await run_jobs()
    undone = await kept(payment["id"])
    assert undone.version == 4 and undone.refund_ids == [first.json()["id"]]
    text = text_of(undone.content)
    assert "合计 ¥50.00（部分退款）" in text and "退款 ¥70.00" not in text

    # The API serves the kept re-issue as it is: nothing stale to heal.
    assert await get_receipt(client, psb, payment["id"]) == undone.content
    assert (await kept(payment["id"])).version == 4
