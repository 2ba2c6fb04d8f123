from datetime import UTC, datetime


def in_utc(moment: datetime) -> datetime | None:
    """`moment` in UTC, or None when it cannot be: naive, or outside years 1 to 9999
    once converted (0001-01-01T00:00:00+01:00 is valid RFC 3339 but falls before year 1
    in UTC, where datetime raises OverflowError). Every timestamp a client sends goes
    through here before it is compared or stored."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def utcnow() -> datetime:
    """Aware UTC now; the one place the service reads the time."""
    return datetime.now(UTC)
