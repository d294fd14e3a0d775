"""Local-time features derived from a UTC timestamp and a longitude (no time-zone database).

The local offset is the nautical one, round(longitude / 15) hours, which is what the producers
use too: deterministic, dependency-free and close enough for daily and weekly seasonality.

>>> local_time("2026-03-02T14:30:00+00:00", -95.4)
(8, 0)

`local_time_us` is the same over arrays of instants (microseconds since the epoch, UTC):

>>> import numpy as np
>>> hours, weekdays = local_time_us(np.array([1_772_461_800_000_000]), np.array([-95.4]))
>>> hours.tolist(), weekdays.tolist()
([8], [0])
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["local_time", "local_time_us", "utc_offset_hours"]

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
#: Day of week (0 = Monday) of 1970-01-01, a Thursday.
EPOCH_WEEKDAY = 3


def utc_offset_hours(longitude: float) -> int:
    """Whole hours east of UTC for a longitude."""
    return round(longitude / 15.0)


def local_time(timestamp: str, longitude: float) -> tuple[int, int]:
    """(hour 0-23, day of week 0=Monday) in local time."""
    utc = dt.datetime.fromisoformat(timestamp).astimezone(dt.UTC)
    local = utc + dt.timedelta(hours=utc_offset_hours(longitude))
    return local.hour, local.weekday()


def local_time_us(times_us: Any, longitudes: Any) -> tuple[Any, Any]:
    """(hour 0-23, day of week 0=Monday) in local time of numpy arrays of instants and longitudes.

    The offset rounds half to even, as Python's `round` does in `utc_offset_hours`.
    """
    import numpy as np

    local = times_us + np.rint(longitudes / 15.0).astype(np.int64) * HOUR_US
    return (local // HOUR_US) % 24, (local // DAY_US + EPOCH_WEEKDAY) % 7
