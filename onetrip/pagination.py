"""Cursor pagination: `?limit=` (1..200) and `?cursor=` (the last id of the previous page).

Ids are time-ordered, so the newest-first order is `ORDER BY id DESC` and the cursor is
simply the last id returned. A cursor that is not such an id (of the list's kind, when
it says which) is a 400 `invalid_cursor`: it was never returned by the list, and an
empty page would let a client believe it had read everything.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from onetrip.errors import BadRequest, ValidationFailed
from onetrip.ids import is_id

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1 or limit > MAX_LIMIT:
        raise ValidationFailed(
            f"limit must be between 1 and {MAX_LIMIT}",
            code="invalid_limit",
            errors=[{"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"}],
        )
    return limit


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    title = "The cursor is not one this list returned"


def check_cursor(cursor: str | None, prefix: str | None = None) -> str | None:
    """`cursor` if it is an id as the list returns them (`prefix`: of that kind, e.g.
    `pay`), else InvalidCursor (400). None and "" mean the first page."""
    if not cursor:
        return None
    if not is_id(cursor, prefix):
        raise InvalidCursor(
            "cursor is not one this list returned: pass next_cursor from the previous "
            "page as it is, or no cursor for the first page",
            errors=[{"field": "cursor", "message": "is not a next_cursor of this list"}],
        )
    return cursor


def page(
    stmt: Select[Any],
    id_column: Any,
    cursor: str | None,
    limit: int | None,
    *,
    prefix: str | None = None,
) -> Select[Any]:
    """Newest first, after `cursor` (checked: `check_cursor`), one extra row to know
    whether there is a next page."""
    limit = check_limit(limit)
    cursor = check_cursor(cursor, prefix)
    if cursor:
        stmt = stmt.where(id_column < cursor)
    return stmt.order_by(id_column.desc()).limit(limit + 1)


def envelope(
    items: list[Any], limit: int | None, id_of: Any = lambda item: item["id"]
) -> dict[str, Any]:
    limit = check_limit(limit)
    more = len(items) > limit
    items = items[:limit]
    return {"data": items, "next_cursor": id_of(items[-1]) if more and items else None}
