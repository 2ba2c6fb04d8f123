"""Cursor pagination: `?limit=` (1..200) and `?cursor=` (the last id of the previous page).

Ids are time-ordered, so the newest-first order is `ORDER BY id DESC` and the cursor is
simply the last id returned.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from onetrip.errors import ValidationFailed

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


def page(stmt: Select[Any], id_column: Any, cursor: str | None, limit: int | None) -> Select[Any]:
    """Newest first, after `cursor`, one extra row to know whether there is a next page."""
    limit = check_limit(limit)
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
