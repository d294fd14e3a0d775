"""Weekly activity profiles: how busy an hour of local time is, relative to an average hour.

Hours are indexed by *hour of week*: ``weekday * 24 + hour`` with 0 = Monday 00:00. Local time
is UTC plus the nautical offset ``round(lon / 15)`` hours (`coelho.core.timeparts`).

Examples
--------
>>> activity(8, 0) > activity(12, 0) > activity(3, 0)  # weekday rush > midday > night
True
>>> activity(8, 5) < activity(8, 0)  # no morning rush on Saturday
True
>>> profile = weekly_profile({-6: 1.0})
>>> len(profile), round(sum(profile) / len(profile), 6)
(168, 1.0)
>>> hour_of_week(0)  # the Unix epoch was a Thursday, 00:00 UTC
72
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "HOURS_PER_WEEK",
    "PEAK_ACTIVITY",
    "activity",
    "hour_and_weekday",
    "hour_of_week",
    "is_rush_hour",
    "local_hour_of_week",
    "weekly_profile",
]

HOURS_PER_WEEK = 168
MICROSECONDS_PER_HOUR = 3_600_000_000
_EPOCH_HOUR_OF_WEEK = 3 * 24  # 1970-01-01 was a Thursday

# Relative activity per local hour; weekdays peak in the commuting hours (7-9, 16-19), weekends
# start late, stay busy through the afternoon and run later into the night.
_WEEKDAY = (
    0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.70, 1.50, 1.60, 1.20, 1.00, 1.05,
    1.20, 1.10, 1.00, 1.10, 1.50, 1.70, 1.60, 1.20, 1.00, 0.80, 0.50, 0.30,
)
_WEEKEND = (
    0.35, 0.30, 0.20, 0.15, 0.10, 0.10, 0.15, 0.30, 0.50, 0.80, 1.00, 1.15,
    1.20, 1.20, 1.15, 1.10, 1.05, 1.00, 1.00, 0.95, 0.90, 0.80, 0.60, 0.45,
)
PEAK_ACTIVITY = max(_WEEKDAY + _WEEKEND)


def activity(hour: int, weekday: int) -> float:
    """Relative activity of a local hour (0-23) on a weekday (0 = Monday)."""
    return (_WEEKEND if weekday >= 5 else _WEEKDAY)[hour]


def is_rush_hour(hour: int, weekday: int) -> bool:
    """Weekday commuting hours as the original ETA producer defined them: 06-09 and 16-19."""
    return weekday < 5 and (6 <= hour < 9 or 16 <= hour < 19)


def hour_of_week(microseconds: int) -> int:
    """UTC hour of week (0 = Monday 00:00) of a time given in microseconds since the epoch."""
    return (microseconds // MICROSECONDS_PER_HOUR + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK


def local_hour_of_week(microseconds: int, offset_hours: int) -> int:
    """Local hour of week for a UTC time and a whole-hour offset east of UTC."""
    return (hour_of_week(microseconds) + offset_hours) % HOURS_PER_WEEK


def weekly_profile(offset_weights: Mapping[int, float]) -> tuple[float, ...]:
    """Activity per UTC hour of week for a population spread over UTC offsets, mean 1.

    Parameters
    ----------
    offset_weights
        Share of the population per whole-hour UTC offset.
    """
    total = sum(offset_weights.values())
    raw = [
        sum(
            weight * activity(*hour_and_weekday((utc + offset) % HOURS_PER_WEEK))
            for offset, weight in offset_weights.items()
        ) / total
        for utc in range(HOURS_PER_WEEK)
    ]
    mean = sum(raw) / HOURS_PER_WEEK
    return tuple(value / mean for value in raw)


def hour_and_weekday(index: int) -> tuple[int, int]:
    """(hour 0-23, weekday 0 = Monday) of an hour-of-week index."""
    weekday, hour = divmod(index, 24)
    return hour, weekday
