"""Properties every generator must have: reproducible, schema-valid, time-ordered, at `rate`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from coelho.core import USE_CASES, SchemaError
from coelho.core.timeparts import local_time
from coelho.producers import make_generator
from coelho.producers.tfd import TfdGenerator

KEYS = ("tfd", "eta", "ecci")
Events = Callable[..., list[dict[str, Any]]]


def _dump(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


@pytest.mark.parametrize("key", KEYS)
def test_same_seed_and_start_give_byte_identical_events(events: Events, key: str) -> None:
    assert _dump(events(key, 2000, seed=11)) == _dump(events(key, 2000, seed=11))


@pytest.mark.parametrize("key", KEYS)
def test_different_seed_or_start_gives_different_events(
    events: Events, start: datetime, key: str,
) -> None:
    baseline = events(key, 200, seed=11)
    other_seed = events(key, 200, seed=12)
    other_start = events(key, 200, seed=11, start=start + timedelta(hours=5))
    ids = {USE_CASES[key].id_field}
    assert {e[f] for e in baseline for f in ids}.isdisjoint({e[f] for e in other_seed for f in ids})
    assert baseline != other_start


@pytest.mark.parametrize("key", KEYS)
def test_ten_thousand_events_pass_the_core_schema_and_features(events: Events, key: str) -> None:
    use_case = USE_CASES[key]
    field_names = [f.name for f in use_case.schema.fields]
    for event in events(key, 10_000):
        assert use_case.schema.validate(event) == []
        assert list(event) == field_names
        use_case.features(event)


@pytest.mark.parametrize("key", KEYS)
def test_timestamps_are_utc_microsecond_iso_and_never_go_back(
    events: Events, start: datetime, key: str,
) -> None:
    stamps = [e["timestamp"] for e in events(key, 3000)]
    parsed = [datetime.fromisoformat(s) for s in stamps]
    assert all(s.endswith("+00:00") and len(s) == 32 for s in stamps)
    assert parsed == sorted(parsed)
    assert parsed[0] >= start


@pytest.mark.parametrize("key", KEYS)
def test_mean_rate_over_a_simulated_week_is_the_configured_rate(start: datetime, key: str) -> None:
    rate = 0.05
    generator = make_generator(key, seed=5, start=start, rate=rate)
    week_end = start + timedelta(days=7)
    count = 0
    while datetime.fromisoformat(next(generator)["timestamp"]) < week_end:
        count += 1
    assert count / (7 * 86_400) == pytest.approx(rate, rel=0.08)


@pytest.mark.parametrize("key", KEYS)
def test_local_rush_hours_are_busier_than_nights(events: Events, key: str) -> None:
    counts = {"rush": 0, "night": 0}
    for event in events(key, 30_000, rate=0.05):  # about a simulated week
        lon = (event.get("location") or event["origin"])["lon"]
        hour, weekday = local_time(event["timestamp"], lon)
        if weekday < 5 and hour in (7, 8):
            counts["rush"] += 1
        elif weekday < 5 and hour in (2, 3):
            counts["night"] += 1
    assert counts["rush"] > 5 * counts["night"]


def test_a_payload_that_breaks_the_schema_raises_instead_of_being_emitted(
    monkeypatch: pytest.MonkeyPatch, start: datetime,
) -> None:
    generator = TfdGenerator(seed=1, start=start, users=10)
    broken = {**next(generator), "currency": "XXX"}
    monkeypatch.setattr(generator, "_next_payload", lambda: broken)
    with pytest.raises(SchemaError, match="currency"):
        next(generator)


def test_make_generator_refuses_unknown_use_cases_and_misplaced_fraud_rate() -> None:
    with pytest.raises(ValueError, match="unknown use case"):
        make_generator("xyz")
    with pytest.raises(ValueError, match="tfd"):
        make_generator("eta", fraud_rate=0.1)
    with pytest.raises(ValueError, match="timezone-aware"):
        make_generator("eta", start=datetime(2026, 3, 2))


@pytest.mark.parametrize("key", KEYS)
def test_drift_at_keeps_every_event_before_the_change_point(events: Events, key: str) -> None:
    assert _dump(events(key, 300, drift_at=300)) == _dump(events(key, 300))
    drifting = events(key, 600, drift_at=300)
    assert drifting[:300] == events(key, 300) and drifting[300:] != events(key, 600)[300:]
    with pytest.raises(ValueError, match="drift_at"):
        make_generator(key, seed=1, drift_at=-5)


def test_tfd_drift_brings_more_fraud_that_looks_like_its_victims_payments(events: Events) -> None:
    before, after = events("tfd", 6000)[3000:], events("tfd", 6000, drift_at=3000)[3000:]
    fraud_before, fraud_after = [e for e in before if e["is_fraud"]], [e for e in after if e["is_fraud"]]
    assert len(fraud_after) > 2 * len(fraud_before)
    assert all(e["cvv_provided"] and e["billing_address_match"] for e in fraud_after)
    assert {e["product_category"] for e in fraud_after} <= {"digital_goods", "electronics"}


def test_eta_drift_slows_the_trips_from_or_to_downtown(events: Events) -> None:
    from coelho.producers.eta import _HOTSPOTS, DRIFT_RADIUS_KM, DRIFT_SLOWDOWN
    from coelho.producers.geography import haversine_km

    plain, drifting = events("eta", 2000), events("eta", 2000, drift_at=0)
    assert [p["initial_estimated_travel_time_seconds"] for p in plain] == \
        [d["initial_estimated_travel_time_seconds"] for d in drifting]  # the app's estimates do not change
    near = 0
    for p, d in zip(plain, drifting, strict=True):
        ends = ((p["origin"]["lat"], p["origin"]["lon"]), (p["destination"]["lat"], p["destination"]["lon"]))
        downtown = min(haversine_km(*_HOTSPOTS[0], *end) for end in ends) < DRIFT_RADIUS_KM
        near += downtown
        ratio = d["simulated_actual_travel_time_seconds"] / p["simulated_actual_travel_time_seconds"]
        if not downtown:
            assert ratio == 1.0
        elif p["debug_incident_delay_seconds"] == 0 and p["simulated_actual_travel_time_seconds"] > 1500:
            assert abs(ratio - DRIFT_SLOWDOWN) < 0.15  # up to the label's +-60 s noise
    assert 0.1 < near / len(plain) < 0.9


def test_ecci_drift_triples_prices_and_doubles_time_on_page(events: Events) -> None:
    def means(stream: list[dict[str, Any]]) -> tuple[float, float]:
        prices = [e["price"] for e in stream if e["price"] is not None]
        return sum(prices) / len(prices), sum(e["time_on_page_seconds"] for e in stream) / len(stream)

    (price, seconds), (drift_price, drift_seconds) = means(events("ecci", 3000)), means(events("ecci", 3000,
                                                                                             drift_at=0))
    assert 2.5 < drift_price / price < 3.5 and 1.7 < drift_seconds / seconds < 2.3  # sessions pace differently
