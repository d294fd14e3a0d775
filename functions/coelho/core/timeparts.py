"""Local-time features derived from a UTC timestamp and a longitude (no time-zone database).

The local offset is the nautical one, round(longitude / 15) hours, which is what the producers
use too: deterministic, dependency-free and close enough for daily and weekly seasonality.

>>> local_time("2026-03-02T14:30:00+00:00", -95.4)
(8, 0)
"""

from __future__ import annotations

import datetime as dt

__all__ = ["local_time", "utc_offset_hours"]


def utc_offset_hours(longitude: float) -> int:
    """Whole hours east of UTC for a longitude."""
    return round(longitude / 15.0)


def local_time(timestamp: str, longitude: float) -> tuple[int, int]:
    """(hour 0-23, day of week 0=Monday) in local time."""
    utc = dt.datetime.fromisoformat(timestamp).astimezone(dt.UTC)
    local = utc + dt.timedelta(hours=utc_offset_hours(longitude))
    return local.hour, local.weekday()
