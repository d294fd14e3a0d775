"""Houston ride-hailing trips (ETA) with persistent drivers, weather and local-time traffic.

The label follows the original formula, with two corrections: traffic uses *local* rush
hours, and the weather factor applies whenever the weather is bad (the original applied it to
only ~2.5 % of trips). The generative factors are attached as ``debug_*`` fields; the core
never uses them as features.

Examples
--------
>>> from datetime import UTC, datetime
>>> trips = EtaGenerator(seed=1, start=datetime(2026, 3, 2, 14, tzinfo=UTC), drivers=20)
>>> trip = next(trips)
>>> trip["simulated_actual_travel_time_seconds"] >= 60, trip["hour_of_day"]  # 14 UTC = 8 local
(True, 8)
>>> 1000 <= int(trip["driver_id"].removeprefix("driver_")) < 1020
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coelho.core.eta import BAD_WEATHER, USE_CASE, VEHICLE_TYPES
from coelho.core.timeparts import utc_offset_hours
from coelho.producers.base import EventGenerator, Weighted, random_uuid
from coelho.producers.clock import FLAT_PROFILE, ArrivalClock, to_microseconds
from coelho.producers.geography import HOUSTON, haversine_km
from coelho.producers.seasonality import (
    hour_and_weekday,
    is_rush_hour,
    local_hour_of_week,
    weekly_profile,
)
from coelho.producers.weather import WeatherProcess

__all__ = ["DEFAULT_RATE", "EtaGenerator"]

DEFAULT_RATE = 1.8  # trips/s of the original producer
AVERAGE_SPEED_KMH = 40.0
INCIDENT_PROBABILITY = 0.02
#: After `drift_at` trips, trips from or to within `DRIFT_RADIUS_KM` of downtown take this much longer
#: (a lasting closure of downtown roads): no feature of the model says where a trip goes.
DRIFT_SLOWDOWN = 1.6
DRIFT_RADIUS_KM = 10.0

_HOUSTON_OFFSET = utc_offset_hours((HOUSTON.lon_min + HOUSTON.lon_max) / 2)
_VEHICLE_TYPE = Weighted.of(dict(zip(VEHICLE_TYPES, (0.40, 0.25, 0.15, 0.05, 0.15), strict=True)))
_WEATHER_FACTOR = {
    "Rain": (1.1, 1.4), "Heavy Rain": (1.3, 1.8), "Fog": (1.2, 1.6), "Thunderstorm": (1.4, 2.0),
}
# Where trips start and end most often: downtown, both airports, Galleria, Medical Center,
# Energy Corridor, Westchase, Clear Lake.
_HOTSPOTS = (
    (29.7604, -95.3698), (29.9902, -95.3368), (29.6454, -95.2789), (29.7390, -95.4630),
    (29.7073, -95.4010), (29.7850, -95.6300), (29.7363, -95.5830), (29.5630, -95.0900),
)
_HOTSPOT_SHARE = 0.55
_HOTSPOT_SPREAD = 0.025
_MIN_SEPARATION = 0.001


@dataclass(frozen=True, slots=True)
class Driver:
    """A driver and the vehicle they always drive."""

    driver_id: str
    vehicle_id: str
    vehicle_type: str
    rating: float


class EtaGenerator(EventGenerator):
    """Trips by drivers ``driver_1000`` .. ``driver_{999 + drivers}`` inside the Houston box.

    Parameters
    ----------
    seed
        Seed of the only random source; same seed and start give identical events.
    start
        Simulated time of the stream's start (timezone-aware).
    rate
        Mean trips per simulated second over a week.
    drivers
        Size of the driver pool (4001 gives the original ``driver_1000..driver_5000``).
    drift_at
        After this many trips, trips from or to downtown take `DRIFT_SLOWDOWN` times longer while
        the app's initial estimates stay as they were.
    steady
        The same mean rate in every hour (no daily rhythm): load tests and soaks.
    """

    use_case = USE_CASE
    DRIFT = (f"trips from or to within {DRIFT_RADIUS_KM:g} km of downtown take x{DRIFT_SLOWDOWN:g} longer "
             "(downtown roads closed)")

    def __init__(
        self, *, seed: int, start: datetime, rate: float = DEFAULT_RATE, drivers: int = 4001,
        drift_at: int | None = None,
        steady: bool = False,
    ) -> None:
        super().__init__(seed=seed, drift_at=drift_at)
        if drivers < 1:
            raise ValueError(f"drivers must be >= 1, got {drivers}")
        rng = self._rng
        vehicle_numbers = list(range(100, 100 + drivers))
        rng.shuffle(vehicle_numbers)
        self._drivers = [
            Driver(
                driver_id=f"driver_{1000 + i}",
                vehicle_id=f"vehicle_{number}",
                vehicle_type=_VEHICLE_TYPE.draw(rng),
                rating=round(min(max(rng.gauss(4.6, 0.25), 3.5), 5.0), 1),
            )
            for i, number in enumerate(vehicle_numbers)
        ]
        self._weather = WeatherProcess(rng, start_us=to_microseconds(start))
        profile = FLAT_PROFILE if steady else weekly_profile({_HOUSTON_OFFSET: 1.0})
        self._clock = ArrivalClock(start, rate=rate, rng=rng, profile=profile)

    def _next_payload(self) -> dict[str, Any]:
        self._clock.advance()
        rng, now_us = self._rng, self._clock.now_us
        driver = rng.choice(self._drivers)
        origin, destination = self._endpoints()
        distance = haversine_km(*origin, *destination)
        offset = utc_offset_hours(origin[1])
        hour, weekday = hour_and_weekday(local_hour_of_week(now_us, offset))
        weather = self._weather.state_at(now_us)
        base_seconds = distance / AVERAGE_SPEED_KMH * 3600
        traffic = self._traffic_factor(hour, weekday)
        weather_factor = rng.uniform(*_WEATHER_FACTOR[weather]) if weather in BAD_WEATHER else 1.0
        incident = rng.randint(300, 1800) if rng.random() < INCIDENT_PROBABILITY else 0
        driver_factor = 1 - (driver.rating - 4.5) * 0.05
        actual = base_seconds * traffic * weather_factor * driver_factor
        if self.drifted and min(haversine_km(*_HOTSPOTS[0], *point) for point in (origin, destination)) \
                < DRIFT_RADIUS_KM:
            actual *= DRIFT_SLOWDOWN
        return {
            "trip_id": random_uuid(rng),
            "driver_id": driver.driver_id,
            "vehicle_id": driver.vehicle_id,
            "timestamp": self._clock.isoformat(),
            "origin": {"lat": origin[0], "lon": origin[1]},
            "destination": {"lat": destination[0], "lon": destination[1]},
            "estimated_distance_km": round(distance, 2),
            "weather": weather,
            "temperature_celsius": self._weather.temperature_at(now_us, offset),
            "day_of_week": weekday,
            "hour_of_day": hour,
            "driver_rating": driver.rating,
            "vehicle_type": driver.vehicle_type,
            "initial_estimated_travel_time_seconds": max(
                60, int(base_seconds * rng.uniform(0.9, 1.1))
            ),
            "simulated_actual_travel_time_seconds": max(
                60, int(actual + incident + rng.uniform(-60, 60))
            ),
            "debug_traffic_factor": round(traffic, 2),
            "debug_weather_factor": round(weather_factor, 2),
            "debug_incident_delay_seconds": incident,
            "debug_driver_factor": round(driver_factor, 2),
        }

    def _traffic_factor(self, hour: int, weekday: int) -> float:
        """Congestion multiplier of the original producer, on local time."""
        if is_rush_hour(hour, weekday):
            return self._rng.uniform(1.3, 2.0)
        if weekday >= 5:
            return self._rng.uniform(0.8, 1.2)
        return self._rng.uniform(0.9, 1.4)

    def _endpoints(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Origin and destination at 6dp, redrawn while closer than 0.001° on both axes."""
        origin = self._place()
        destination = self._place()
        while (abs(origin[0] - destination[0]) < _MIN_SEPARATION
               and abs(origin[1] - destination[1]) < _MIN_SEPARATION):
            destination = self._place()
        return origin, destination

    def _place(self) -> tuple[float, float]:
        rng = self._rng
        if rng.random() < _HOTSPOT_SHARE:
            lat, lon = HOUSTON.near(rng, *rng.choice(_HOTSPOTS), _HOTSPOT_SPREAD)
        else:
            lat, lon = HOUSTON.uniform(rng)
        return round(lat, 6), round(lon, 6)
