"""Licences moved in batches (`licenses.move_licenses`, the print and dispatch paths'
Core way) write what `onetrip.states.apply` writes for each, on SQLite and PostgreSQL;
a batch of parcels is allocated as one-by-one allocation would allocate it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from delivery.events import license_event
from delivery.licenses import move_licenses
from delivery.states import LICENSE_MACHINE
from onetrip import states
from onetrip.db import get_database, unit_of_work
from onetrip.outbox import OutboxEvent
from tests.factories import ADDRESS
from tests.integration.test_delivery_dispatch import (
    add_partner,
    consume_printed,
    dispatches_of,
    license_row,
    printed_license,
)
from tests.integration.test_delivery_dispatch_batch import in_one_run

REASON = "no courier partner serves 浙江省 杭州市 西湖区"


async def written(license_id: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The licence's machine moves and outbox events (without ids and moments)."""
    moves = states.StateTransition.__table__.c
    events = OutboxEvent.__table__.c
    async with get_database().session() as session:
        transitions = (
            await session.execute(
                select(moves.machine, moves.event, moves.from_state, moves.to_state, moves.applied)
                .where(moves.subject_id == license_id)
                .order_by(moves.id)
            )
        ).all()
        outbox = (
            await session.execute(
                select(events.type, events.payment_id, events.department, events.data)
                .where(events.subject_id == license_id)
                .order_by(events.id)
            )
        ).all()
    return [tuple(t) for t in transitions], [tuple(e) for e in outbox]


async def test_a_batch_move_writes_what_apply_writes_for_each(db: Any) -> None:
    one_by_one, batched = await printed_license(), await printed_license()

    async def effect(row: Any, move: states.Transition[Any]) -> Any:
        return license_event(row, previous_status=move.previous, reason=REASON)

    async with unit_of_work() as session:
        await states.apply(session, LICENSE_MACHINE, one_by_one.id, "no_partner", effect)
    async with unit_of_work() as session:
        moved = await move_licenses(
            session,
            [batched.id],
            "no_partner",
            lambda row, previous: license_event(row, previous_status=previous, reason=REASON),
        )
    assert [row.id for row in moved.moved] == [batched.id] and moved.refused == []
    assert (await license_row(batched.id)).status == "needs_attention"

    expected_moves, expected_events = await written(one_by_one.id)
    moves, events = await written(batched.id)
    assert moves == expected_moves
    assert [e[0] for e in events] == [e[0] for e in expected_events]
    kind, payment_id, department, data = events[-1]
    assert kind == "license.needs_attention"
    assert (payment_id, department) == (batched.payment_id, "PSB")
    assert data == {
        **expected_events[-1][3],
        "license_id": batched.id,
        "license_no": batched.license_no,
        "payment_id": batched.payment_id,
    }


async def test_a_repeat_changes_nothing_and_a_move_the_table_lacks_is_refused(db: Any) -> None:
    license = await printed_license()
    async with unit_of_work() as session:
        await move_licenses(session, [license.id], "no_partner")
    before = await written(license.id)

    async with unit_of_work() as session:
        repeat = await move_licenses(session, [license.id], "no_partner")
        refused = await move_licenses(session, [license.id], "print")
    assert repeat.moved == [] and repeat.refused == []
    assert refused.moved == [] and [row.id for row in refused.refused] == [license.id]
    assert await written(license.id) == before
    assert (await license_row(license.id)).status == "needs_attention"


async def test_a_batch_is_allocated_as_one_by_one_allocation_would(db: Any) -> None:
    # the district partner is the most specific, with room for two parcels a day; the
    # province partner takes the rest
    await add_partner(
        "SF",
        [{"province": "浙江省", "city": "杭州市", "district": "西湖区"}],
        daily_capacity=2,
    )
    await add_partner("YT", [{"province": "浙江省"}], name="圆通速递")
    run = [await printed_license() for _ in range(5)]
    await in_one_run(run)

    await consume_printed(run[0].id)

    partners = [(await dispatches_of(license.id))[0].partner for license in run]
    assert partners == ["SF", "SF", "YT", "YT", "YT"]
    for license in run:
        assert (await license_row(license.id)).status == "dispatched"


# --- a print run's one PDF, joined without pypdf -----------------------------------------


def drawn_parts(count: int) -> list[tuple[bytes, int]]:
    from datetime import UTC, date, datetime

    from delivery import documents, rendering

    parts = []
    for n in range(count):
        data = documents.LicenseData(
            license_id=f"lic_{n:04d}",
            license_no=f"PSB-2026-{n:08d}",
            title="机动车驾驶证",
            department_name="杭州市公安局",
            holder_name=["张伟", "李娜", "王芳"][n % 3],
            fields=[("准驾车型", "C1")],
            valid_from=date(2026, 12, 1),
            valid_until=None,
            issued_at=datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
            verify_url=f"https://onetrip.example.gov.cn/verify/code{n}",
            matter_name="机动车驾驶证期满换证",
            delivery_method="courier",
            address=dict(ADDRESS),
        )
        parts += [(d.content, d.pages) for d in rendering.draw_documents(data)]
    return parts


def test_a_joined_run_reads_as_pypdfs_merge_does() -> None:
    import io

    import pytest
    from pypdf import PdfReader

    from delivery.printing import PrintRunBroken, join_pdfs, merge, merge_with_pypdf

    parts = drawn_parts(3)
    joined, pages = join_pdfs(parts)
    merged, merged_pages = merge_with_pypdf(parts)
    assert pages == merged_pages == 6
    assert merge(parts) == (joined, pages)  # the fast way is the one taken
    assert join_pdfs(parts) == (joined, pages)  # the same parts, the same bytes
    ours, theirs = PdfReader(io.BytesIO(joined), strict=True), PdfReader(io.BytesIO(merged))
    assert len(ours.pages) == 6
    texts = [page.extract_text() for page in ours.pages]
    assert texts == [page.extract_text() for page in theirs.pages]
    assert "张伟" in texts[0] and "PSB-2026-00000001" in texts[2]

    with pytest.raises(PrintRunBroken, match="6 pages, not 1"):
        join_pdfs([(joined, 1)])  # a part with another page count than recorded
    # a PDF of another shape (here: a comment after its end) is merged by pypdf
    other = joined + b"\n% appended by someone else\n"
    again, again_pages = merge([(other, 6), parts[0]])
    assert again_pages == 7 and len(PdfReader(io.BytesIO(again)).pages) == 7
    assert again != join_pdfs([(joined, 6), parts[0]])[0]
