"""ETA: Houston trips whose label responds to local rush hours, weather and incidents."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from coelho.core.eta import BAD_WEATHER
from coelho.core.timeparts import local_time
from coelho.producers.geography import HOUSTON, haversine_km

Events = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="module")
def trips() -> list[dict[str, Any]]:
    """About two simulated weeks of trips."""
    from datetime import UTC, datetime

    from coelho.producers import make_generator

    generator = make_generator("eta", seed=21, start=datetime(2026, 3, 2, tzinfo=UTC), rate=0.02)
    return [next(generator) for _ in range(25_000)]


def _slowdown(trip: dict[str, Any]) -> float:
    """Actual over ideal travel time, without incidents, so only the factors remain."""
    ideal = trip["estimated_distance_km"] / 40 * 3600
    return float(trip["simulated_actual_travel_time_seconds"] / ideal)


def _long(trips: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        t for t in trips
        if t["estimated_distance_km"] > 10 and not t["debug_incident_delay_seconds"]
    ]


def test_rush_hour_trips_are_slower_on_average(trips: list[dict[str, Any]]) -> None:
    clear = [t for t in _long(trips) if t["weather"] not in BAD_WEATHER]
    weekday = [t for t in clear if t["day_of_week"] < 5]
    rush = [_slowdown(t) for t in weekday if t["hour_of_day"] in (6, 7, 8, 16, 17, 18)]
    calm = [_slowdown(t) for t in weekday if 10 <= t["hour_of_day"] < 15]
    assert statistics.mean(rush) > statistics.mean(calm) + 0.3


def test_bad_weather_trips_are_slower_on_average(trips: list[dict[str, Any]]) -> None:
    offpeak = [t for t in _long(trips) if t["debug_traffic_factor"] < 1.3]
    bad = [_slowdown(t) for t in offpeak if t["weather"] in BAD_WEATHER]
    good = [_slowdown(t) for t in offpeak if t["weather"] not in BAD_WEATHER]
    assert len(bad) > 500
    assert statistics.mean(bad) > statistics.mean(good) + 0.2
    assert all(t["debug_weather_factor"] > 1 for t in trips if t["weather"] in BAD_WEATHER)
    assert all(t["debug_weather_factor"] == 1 for t in trips if t["weather"] not in BAD_WEATHER)


def test_incidents_are_rare_and_delay_the_trip(trips: list[dict[str, Any]]) -> None:
    delays = [t["debug_incident_delay_seconds"] for t in trips]
    share = sum(1 for d in delays if d) / len(delays)
    assert share == pytest.approx(0.02, abs=0.005)
    assert all(d == 0 or 300 <= d <= 1800 for d in delays)


def test_label_and_estimate_follow_the_formula(trips: list[dict[str, Any]]) -> None:
    for trip in trips:
        distance = haversine_km(trip["origin"]["lat"], trip["origin"]["lon"],
                                trip["destination"]["lat"], trip["destination"]["lon"])
        assert trip["estimated_distance_km"] == round(distance, 2)
        base = distance / 40 * 3600
        assert trip["initial_estimated_travel_time_seconds"] >= 60
        assert trip["initial_estimated_travel_time_seconds"] <= max(60, base * 1.1)
        factors = (trip["debug_traffic_factor"] * trip["debug_weather_factor"]
                   * trip["debug_driver_factor"])
        expected = base * factors + trip["debug_incident_delay_seconds"]
        actual = trip["simulated_actual_travel_time_seconds"]
        assert actual == 60 or abs(actual - expected) <= 61 + base * factors * 0.02


def test_geography_time_and_ids(trips: list[dict[str, Any]]) -> None:
    for trip in trips[:5000]:
        for point in (trip["origin"], trip["destination"]):
            assert HOUSTON.contains(point["lat"], point["lon"])
            assert round(point["lat"], 6) == point["lat"]
        hour, weekday = local_time(trip["timestamp"], trip["origin"]["lon"])
        assert (trip["hour_of_day"], trip["day_of_week"]) == (hour, weekday)
        assert re.fullmatch(r"driver_\d{4}", trip["driver_id"])
        assert 1000 <= int(trip["driver_id"][7:]) <= 5000


def test_drivers_keep_their_vehicle_and_rating(trips: list[dict[str, Any]]) -> None:
    profiles: dict[str, set[tuple[str, str, float]]] = defaultdict(set)
    for trip in trips:
        profiles[trip["driver_id"]].add(
            (trip["vehicle_id"], trip["vehicle_type"], trip["driver_rating"]))
    assert max(len(p) for p in profiles.values()) == 1
    assert any(len([t for t in trips if t["driver_id"] == d]) > 10 for d in list(profiles)[:50])


def test_weather_persists_between_consecutive_trips(events: Events) -> None:
    stream = events("eta", 5000, rate=0.05)  # about 28 simulated hours
    changes = sum(a["weather"] != b["weather"] for a, b in zip(stream, stream[1:], strict=False))
    assert 0 < changes < 50
