"""Houston weather as a Markov process in simulated time, and a temperature with daily and
yearly cycles.

Each state lasts an exponential time (storms are short, clear spells long), then jumps to a
plausible neighbour. Long-run time shares are close to the original per-event draw (Clear 60 %,
Clouds 15 %, Rain 10 %, the others 5 % each), but consecutive trips now share the same sky.

Examples
--------
>>> import random
>>> from coelho.core.eta import WEATHER
>>> sky = WeatherProcess(random.Random(2), start_us=0)
>>> sky.state_at(0) in WEATHER
True
>>> sky.state_at(3_600_000_000) == sky.state_at(3_600_000_001)  # persistent, not per event
True
"""

from __future__ import annotations

import math
import random

from coelho.producers.base import Weighted
from coelho.producers.seasonality import MICROSECONDS_PER_HOUR

__all__ = ["WeatherProcess"]

_MEAN_HOURS = {
    "Clear": 9.0, "Clouds": 1.8, "Rain": 1.5, "Heavy Rain": 1.2, "Fog": 3.0, "Thunderstorm": 1.5,
}
_NEXT = {
    "Clear": Weighted.of({"Clouds": 0.52, "Fog": 0.22, "Rain": 0.17, "Thunderstorm": 0.09}),
    "Clouds": Weighted.of({"Clear": 0.55, "Rain": 0.30, "Heavy Rain": 0.05, "Thunderstorm": 0.10}),
    "Rain": Weighted.of({"Clouds": 0.45, "Heavy Rain": 0.30, "Clear": 0.15, "Thunderstorm": 0.10}),
    "Heavy Rain": Weighted.of({"Rain": 0.65, "Thunderstorm": 0.20, "Clouds": 0.15}),
    "Fog": Weighted.of({"Clear": 0.70, "Clouds": 0.30}),
    "Thunderstorm": Weighted.of({"Heavy Rain": 0.40, "Rain": 0.40, "Clouds": 0.20}),
}
_INITIAL = Weighted.of({
    "Clear": 0.60, "Clouds": 0.15, "Rain": 0.10, "Heavy Rain": 0.05, "Fog": 0.05,
    "Thunderstorm": 0.05,
})
_COOLING = {"Clear": 0.0, "Clouds": 1.0, "Fog": 1.0, "Rain": 2.0, "Heavy Rain": 3.0,
            "Thunderstorm": 3.0}
_MICROSECONDS_PER_DAY = 24 * MICROSECONDS_PER_HOUR
_DAYS_PER_YEAR = 365.2425
_WARMEST_DAY_OF_YEAR = 200
_WARMEST_LOCAL_HOUR = 15


class WeatherProcess:
    """A continuous-time Markov chain over the six weather states.

    Parameters
    ----------
    rng
        The generator's random source.
    start_us
        Simulated start time (microseconds since the epoch).
    """

    def __init__(self, rng: random.Random, *, start_us: int) -> None:
        self._rng = rng
        self._state = _INITIAL.draw(rng)
        self._until_us = start_us + self._duration_us(self._state)

    def state_at(self, now_us: int) -> str:
        """The weather at `now_us`; time must not go backwards between calls."""
        while now_us >= self._until_us:
            self._state = _NEXT[self._state].draw(self._rng)
            self._until_us += self._duration_us(self._state)
        return self._state

    def temperature_at(self, now_us: int, offset_hours: int) -> float:
        """Air temperature (°C, 1dp): yearly and daily cycles, cooler under clouds and rain."""
        days = now_us / _MICROSECONDS_PER_DAY
        yearly = 7.5 * math.cos(2 * math.pi * (days % _DAYS_PER_YEAR - _WARMEST_DAY_OF_YEAR)
                                / _DAYS_PER_YEAR)
        local_hour = (days * 24 + offset_hours) % 24
        daily = 5.0 * math.cos(2 * math.pi * (local_hour - _WARMEST_LOCAL_HOUR) / 24)
        cooling = _COOLING[self.state_at(now_us)]
        celsius = 21.0 + yearly + daily - cooling + self._rng.gauss(0.0, 0.8)
        return round(min(max(celsius, -20.0), 45.0), 1)

    def _duration_us(self, state: str) -> int:
        return max(1, round(self._rng.expovariate(1.0 / _MEAN_HOURS[state])
                            * MICROSECONDS_PER_HOUR))
