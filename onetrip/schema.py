"""Every table, gathered from every domain, for migrations and tests."""

from __future__ import annotations

from sqlalchemy import MetaData

from onetrip.db import Base


def load_models() -> MetaData:
    import delivery.models  # noqa: F401
    import ledger.models  # noqa: F401
    import notifications.models  # noqa: F401
    import onetrip.auth
    import onetrip.idempotency
    import onetrip.outbox  # noqa: F401
    import payments.models  # noqa: F401

    return Base.metadata
