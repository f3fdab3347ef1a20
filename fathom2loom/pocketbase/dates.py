"""PocketBase's date format (`2026-11-25 14:03:05.123Z`), both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["now_iso", "parse_date", "pb_date", "seconds_until"]


def pb_date(moment: datetime) -> str:
    """A datetime as PocketBase stores it: UTC, milliseconds, a space and a trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def now_iso(after_seconds: float = 0.0) -> str:
    """Now (or `after_seconds` from now), in PocketBase's date format."""
    return pb_date(datetime.now(UTC) + timedelta(seconds=after_seconds))


def parse_date(value: Any) -> datetime | None:
    """A PocketBase date (or ISO 8601 text) as an aware datetime; None for empty or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds_until(value: Any) -> float:
    """Seconds from now until the date `value` (negative when past, 0.0 when empty)."""
    moment = parse_date(value)
    return 0.0 if moment is None else (moment - datetime.now(UTC)).total_seconds()
