"""Every table, gathered from the one list of domains, for migrations and tests."""

from __future__ import annotations

from sqlalchemy import MetaData


def load_models() -> MetaData:
    """The shared metadata with every kernel and domain table on it."""
    from onetrip.domains import load_models as load

    return load()
