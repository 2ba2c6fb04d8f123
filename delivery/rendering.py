"""Rendering an issued licence: its PDF and cover sheet kept as `LicenseDocument` rows,
then the licence moves `render` (→ rendered, event `license.rendered`).

The consumer of `license.issued` (delivery/jobs.py) draws in `prepare=` — outside any
transaction, changing nothing — and `keep_documents` stores what was drawn and applies
the move in the unit of work that also marks the event consumed. Drawing again for the
same licence gives the same bytes, so a re-run (two workers, a retry after a crash)
stores nothing new: a document is a new version only when its content changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from delivery import documents, signing
from delivery.events import license_event
from delivery.licenses import move_licenses
from delivery.models import License, LicenseDocument
from delivery.states import ISSUED, LICENSE_MACHINE
from onetrip.clock import utcnow
from onetrip.consumers import reading
from onetrip.db import insert_ignoring_conflicts
from onetrip.errors import NotFound
from onetrip.pdf import cjk_font_in_use
from onetrip.states import Transition, apply
from payments.models import Department, Matter

KINDS = ("license", "cover")

_PAGE = re.compile(rb"/Type /Page\b(?!s)")


def page_count(pdf: bytes) -> int:
    """Pages of a PDF we drew (ReportLab writes each page object uncompressed)."""
    return len(_PAGE.findall(pdf))


@dataclass(frozen=True)
class Drawn:
    """One document drawn for a licence, ready to keep."""

    kind: str
    content: bytes
    sha256: str
    pages: int
    font: str


@dataclass(frozen=True)
class DrawnLicense:
    license_id: str
    verify_code: str
    documents: tuple[Drawn, ...]


async def license_data(
    session: AsyncSession, license: License, verify_code: str
) -> documents.LicenseData:
    """What the licence's documents show, with the department's and matter's names."""
    department = await session.get(Department, license.department)
    matter = await session.get(Matter, license.matter_code)
    return _license_data(
        license,
        department.name if department else None,
        matter.name if matter else None,
        verify_code,
    )


def _license_data(
    license: Any, department_name: str | None, matter_name: str | None, verify_code: str
) -> documents.LicenseData:
    return documents.LicenseData(
        license_id=license.id,
        license_no=license.license_no,
        title=license.title,
        department_name=department_name or license.department,
        holder_name=license.holder_name,
        fields=[(str(k), str(v)) for k, v in (license.fields or {}).items()],
        valid_from=license.valid_from,
        valid_until=license.valid_until,
        issued_at=license.created_at,
        verify_url=signing.verify_url(verify_code),
        matter_name=matter_name or "",
        delivery_method=license.delivery_method,
        address=license.address,
    )


def draw_documents(data: documents.LicenseData) -> tuple[Drawn, ...]:
    font = cjk_font_in_use()
    label = font.label if font.embedded else f"{font.label} (not embedded)"
    drawn = []
    for kind, render in (("license", documents.render_license), ("cover", documents.render_cover)):
        pdf = render(data)
        drawn.append(Drawn(kind, pdf, hashlib.sha256(pdf).hexdigest(), page_count(pdf), label))
    return tuple(drawn)


async def draw_license(license_id: str) -> DrawnLicense | None:
    """The documents of an issued licence, drawn outside any transaction (None: it is no
    longer `issued`, or gone). Writes nothing."""
    licenses = License.__table__
    async with reading() as connection:  # one query: the licence and the names it shows
        license = (
            await connection.execute(
                select(
                    licenses,
                    Department.name.label("department_name"),
                    Matter.name.label("matter_name"),
                )
                .outerjoin(Department, Department.code == licenses.c.department)
                .outerjoin(Matter, Matter.code == licenses.c.matter_code)
                .where(licenses.c.id == license_id)
            )
        ).first()
    if license is None or license.status != ISSUED:
        return None
    code = license.verify_code
    if code is None:  # not signed yet: the code keep_documents will sign (Ed25519
        # signatures are deterministic, so the same key gives the same code)
        key = signing.private_key()
        code = signing.sign_with(license, signing.kid_for(key.public_key()), key)
    data = _license_data(license, license.department_name, license.matter_name, code)
    # In a thread: the worker's event loop (every async actor's) goes on meanwhile.
    return DrawnLicense(license_id, code, await asyncio.to_thread(draw_documents, data))


async def keep_documents(session: AsyncSession, drawn: DrawnLicense) -> bool:
    """Store the drawn documents and move the licence to `rendered`, in the caller's
    unit of work. False when it was not `issued` any more (nothing is stored)."""

    async def store(license: Any) -> None:
        if license.verify_code is None:
            raise _NotSigned
        if license.verify_code != drawn.verify_code:
            # signed again (a key rotation) since the drawing: its QR code is stale
            raise RuntimeError(f"licence {license.id} changed while it was drawn; draw again")
        await store_documents(session, license.id, drawn.documents)

    try:  # Core, a few statements: the licence's lock, its documents, its move
        return bool(
            (await move_licenses(session, [drawn.license_id], "render", before=store)).moved
        )
    except _NotSigned:  # issued before codes were signed at issue: the ORM's way
        return await _keep_unsigned(session, drawn)


async def keep_many_documents(session: AsyncSession, drawn: Sequence[DrawnLicense]) -> None:
    """`keep_documents` for several licences in one set of statements (a consumer's
    batch): the licences' locks and moves in `move_licenses`' few statements, then every
    licence's documents in two. The same checks: a licence no longer `issued` is left
    alone; one signed again since its drawing stops the batch (the consumer then keeps
    each licence on its own, and that one fails alone)."""
    by_id = {d.license_id: d for d in drawn}

    async def check(license: Any) -> None:
        if license.verify_code is None:
            raise _NotSigned
        if license.verify_code != by_id[license.id].verify_code:
            raise RuntimeError(f"licence {license.id} changed while it was drawn; draw again")

    try:
        moved = await move_licenses(session, list(by_id), "render", before=check)
    except _NotSigned:  # issued before codes were signed at issue: one by one
        for one in drawn:
            await keep_documents(session, one)
        return
    await store_many_documents(session, [(row.id, by_id[row.id].documents) for row in moved.moved])


async def store_many_documents(
    session: AsyncSession, documents: Sequence[tuple[str, Sequence[Drawn]]]
) -> None:
    """`store_documents` for several licences: the latest version of each licence's
    kinds in one read, the new versions in one (cached) statement."""
    if not documents:
        return
    docs = LicenseDocument.__table__.c
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    rows = await session.execute(
        select(docs.license_id, docs.kind, docs.version, docs.sha256)
        .where(docs.license_id.in_([license_id for license_id, _ in documents]))
        .order_by(docs.license_id, docs.kind, docs.version)
    )
    for license_id, kind, version, sha256 in rows:
        latest[(license_id, kind)] = (version, sha256)  # ascending versions: the last wins
    now = utcnow()
    new = [
        {
            "license_id": license_id,
            "kind": document.kind,
            "version": latest.get((license_id, document.kind), (0, None))[0] + 1,
            "content": document.content,
            "sha256": document.sha256,
            "pages": document.pages,
            "font": document.font,
            "rendered_at": now,
        }
        for license_id, drawn in documents
        for document in drawn
        if latest.get((license_id, document.kind), (0, None))[1] != document.sha256
    ]
    if new:
        await session.execute(
            insert_ignoring_conflicts(
                session, LicenseDocument.__table__, ["license_id", "kind", "version"]
            ),
            new,
        )


class _NotSigned(Exception):
    pass


async def _keep_unsigned(session: AsyncSession, drawn: DrawnLicense) -> bool:
    async def effect(license: License, transition: Transition[License]) -> object:
        if license.verify_code is None:
            await signing.sign_license(session, license)
        if license.verify_code != drawn.verify_code:
            # signed again (a key rotation) since the drawing: its QR code is stale
            raise RuntimeError(f"licence {license.id} changed while it was drawn; draw again")
        for document in drawn.documents:
            await store_document(session, license.id, document)
        return license_event(license, previous_status=transition.previous)

    license = await session.get(License, drawn.license_id)
    if license is None or license.status != ISSUED:
        return False
    transition = await apply(session, LICENSE_MACHINE, drawn.license_id, "render", effect)
    return transition.changed


async def store_documents(session: AsyncSession, license_id: str, drawn: Sequence[Drawn]) -> None:
    """`store_document` for each drawn document of a licence, in two statements: the
    latest version of each kind, then the new versions (none when all are the same)."""
    await store_many_documents(session, [(license_id, drawn)])


async def store_document(session: AsyncSession, license_id: str, document: Drawn) -> int:
    """Keep a document as its kind's next version unless the latest one is the same
    bytes; returns the version that is current."""
    latest = (
        await session.execute(
            select(LicenseDocument.version, LicenseDocument.sha256)
            .where(LicenseDocument.license_id == license_id, LicenseDocument.kind == document.kind)
            .order_by(LicenseDocument.version.desc())
            .limit(1)
        )
    ).first()
    if latest is not None and latest.sha256 == document.sha256:
        return latest.version
    version = 1 if latest is None else latest.version + 1
    stmt = insert_ignoring_conflicts(
        session, LicenseDocument.__table__, ["license_id", "kind", "version"]
    ).values(
        license_id=license_id,
        kind=document.kind,
        version=version,
        content=document.content,
        sha256=document.sha256,
        pages=document.pages,
        font=document.font,
        rendered_at=utcnow(),
    )
    await session.execute(stmt)
    return version


async def current_document_row(
    session: AsyncSession, license_id: str, kind: str = "license"
) -> LicenseDocument:
    if kind not in KINDS:
        raise NotFound(f"no {kind} document", code="license_document_not_found")
    row = await session.scalar(
        select(LicenseDocument)
        .where(LicenseDocument.license_id == license_id, LicenseDocument.kind == kind)
        .order_by(LicenseDocument.version.desc())
        .limit(1)
    )
    if row is None:
        raise NotFound(
            f"licence {license_id} has no {kind} document yet", code="license_document_not_found"
        )
    return row


async def current_document(session: AsyncSession, license_id: str, kind: str = "license") -> bytes:
    """The latest rendered PDF of a licence (`license` or its `cover` sheet); NotFound
    before it is rendered."""
    return (await current_document_row(session, license_id, kind)).content


async def document_versions(session: AsyncSession, license_id: str) -> int:
    """How many documents a licence has (every kind and version): for tests and checks."""
    stmt = select(func.count()).where(LicenseDocument.license_id == license_id)
    return int(await session.scalar(stmt) or 0)
