"""A simulated clock whose ticks form a Poisson process modulated by a weekly profile.

Time is kept as integer microseconds since the Unix epoch, so it is exact and reproducible.

Examples
--------
>>> import random
>>> from datetime import UTC, datetime
>>> clock = ArrivalClock(datetime(2026, 3, 2, tzinfo=UTC), rate=2.0, rng=random.Random(7))
>>> clock.isoformat()
'2026-03-02T00:00:00.000000+00:00'
>>> clock.advance()
>>> clock.now_us > to_microseconds(datetime(2026, 3, 2, tzinfo=UTC))
True
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from coelho.producers.seasonality import HOURS_PER_WEEK, hour_of_week

__all__ = ["FLAT_PROFILE", "ArrivalClock", "format_timestamp", "to_microseconds"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The same intensity in every hour of the week: a steady rate.
FLAT_PROFILE = (1.0,) * HOURS_PER_WEEK


def to_microseconds(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (naive ones are refused)."""
    if moment.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def format_timestamp(microseconds: int) -> str:
    """ISO-8601 UTC with microseconds and a +00:00 offset, as the original producers wrote.

    >>> format_timestamp(1_772_461_800_123_456)
    '2026-03-02T14:30:00.123456+00:00'
    """
    moment = _EPOCH + timedelta(microseconds=microseconds)
    return moment.isoformat(timespec="microseconds")


class ArrivalClock:
    """Simulated time advanced by exponential gaps of mean ``1 / (rate * profile[hour])``.

    Parameters
    ----------
    start
        First instant (timezone-aware).
    rate
        Mean arrivals per simulated second over a week.
    rng
        The generator's random source.
    profile
        Relative intensity per UTC hour of week (mean 1); flat when omitted.
    """

    def __init__(
        self,
        start: datetime,
        *,
        rate: float,
        rng: random.Random,
        profile: Sequence[float] = FLAT_PROFILE,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 events/s, got {rate}")
        if len(profile) != HOURS_PER_WEEK:
            raise ValueError(f"profile needs {HOURS_PER_WEEK} hourly values")
        self.now_us = to_microseconds(start)
        self._rate = rate
        self._rng = rng
        self._profile = tuple(profile)

    def advance(self) -> None:
        """Move to the next arrival (at least one microsecond later)."""
        intensity = self._rate * self._profile[hour_of_week(self.now_us)]
        self.now_us += max(1, round(self._rng.expovariate(intensity) * 1e6))

    def isoformat(self) -> str:
        """The current instant as an event timestamp."""
        return format_timestamp(self.now_us)
