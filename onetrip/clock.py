from datetime import UTC, datetime


def utcnow() -> datetime:
    """Aware UTC now; the one place the service reads the time."""
    return datetime.now(UTC)
