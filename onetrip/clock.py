from datetime import UTC, datetime

from onetrip.errors import ValidationFailed


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


def require_offset(**moments: datetime | None) -> None:
    """Refuse (422, every bad one named) timestamps a client sent that `in_utc` cannot
    place: RFC 3339 timestamps carry an offset. Keyword names are the fields; a
    trailing `_` is dropped (`from_=` names the field `from`)."""
    errors = [
        {"field": name.rstrip("_"), "message": "must be an RFC 3339 timestamp with an offset"}
        for name, moment in moments.items()
        if moment is not None and in_utc(moment) is None
    ]
    if errors:
        raise ValidationFailed(
            "timestamps need a UTC offset, e.g. 2026-03-01T00:00:00+08:00", errors=errors
        )
