"""Estimated Time of Arrival (ETA): regression of a trip's travel time in seconds.

The producer attaches the generative factors (`debug_*`) for inspection; they are accepted in
the event but **never** used as features: they are functions of the label (the original system
leaked the target through them).

Examples
--------
>>> from coelho.core import eta
>>> x = eta.features(eta.EXAMPLE)
>>> sorted(k for k in x if k.startswith("debug"))
[]
>>> x["rush_hour"], x["weather"], x["time_slot"]
(1.0, 'Rain', 'weekday-07')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from river import compose, forest, linear_model, metrics, optim, preprocessing
from river.drift import ADWIN

from coelho.core.drift import DriftRule
from coelho.core.formulas import SCALAR, Ops
from coelho.core.metrics import RegressionSuite
from coelho.core.schema import Field, Schema
from coelho.core.select import Select
from coelho.core.usecase import ChampionRule, UseCase

__all__ = ["EXAMPLE", "USE_CASE", "features", "formulas"]

WEATHER = ("Clear", "Clouds", "Rain", "Heavy Rain", "Fog", "Thunderstorm")
VEHICLE_TYPES = ("Sedan", "SUV", "Hatchback", "Motorcycle", "Van")
POINT = (
    Field("lat", "float", minimum=-90.0, maximum=90.0),
    Field("lon", "float", minimum=-180.0, maximum=180.0),
)

SCHEMA = Schema("eta.trip.v1", (
    Field("trip_id", "str", max_length=64),
    Field("driver_id", "str", max_length=64),
    Field("vehicle_id", "str", max_length=64),
    Field("timestamp", "timestamp"),
    Field("origin", "object", fields=POINT),
    Field("destination", "object", fields=POINT),
    Field("estimated_distance_km", "float", minimum=0.0, maximum=5_000.0),
    Field("weather", "str", choices=WEATHER),
    Field("temperature_celsius", "float", minimum=-60.0, maximum=60.0),
    Field("day_of_week", "int", minimum=0, maximum=6),
    Field("hour_of_day", "int", minimum=0, maximum=23),
    Field("driver_rating", "float", minimum=1.0, maximum=5.0),
    Field("vehicle_type", "str", choices=VEHICLE_TYPES),
    Field("initial_estimated_travel_time_seconds", "int", minimum=0, maximum=864_000),
    Field("simulated_actual_travel_time_seconds", "int", minimum=0, maximum=864_000),
    Field("debug_traffic_factor", "float", required=False),
    Field("debug_weather_factor", "float", required=False),
    Field("debug_incident_delay_seconds", "float", required=False),
    Field("debug_driver_factor", "float", required=False),
))

#: Inputs of the original configuration's forest (one-hot categoricals, since ARF needs numbers).
CATEGORICAL = ("weather", "vehicle_type")
NUMERIC = (
    "distance_km", "log_distance", "initial_estimate_s", "driver_rating", "temperature_celsius",
    "local_hour", "rush_hour", "weekend", "rush_distance", "bad_weather", "bad_weather_distance",
)
#: Inputs of the default model: travel time is multiplicative (distance x traffic x weather x
#: driver), so in log space it is additive in log-distance, the hour of the week and the weather.
DEFAULT_NUMERIC = ("log_distance", "driver_rating")
DEFAULT_CATEGORICAL = ("weather", "vehicle_type", "time_slot")
BAD_WEATHER = frozenset({"Rain", "Heavy Rain", "Fog", "Thunderstorm"})

EXAMPLE: dict[str, Any] = {
    "trip_id": "0b1e3c5a-7d10-4b55-8d2f-2f1f3d4c5b6a",
    "driver_id": "driver_1234",
    "vehicle_id": "vehicle_321",
    "timestamp": "2026-03-03T13:45:00+00:00",
    "origin": {"lat": 29.7604, "lon": -95.3698},
    "destination": {"lat": 29.95, "lon": -95.55},
    "estimated_distance_km": 27.1,
    "weather": "Rain",
    "temperature_celsius": 21.5,
    "day_of_week": 1,
    "hour_of_day": 7,
    "driver_rating": 4.6,
    "vehicle_type": "Sedan",
    "initial_estimated_travel_time_seconds": 2400,
    "simulated_actual_travel_time_seconds": 3900,
}


def formulas(event: Mapping[str, Any], ops: Ops) -> dict[str, Any]:
    """Model inputs of one trip, or of columns of them: distance, estimate, local time, weather, vehicle, driver."""
    hour, weekday = ops.local_time(event["timestamp"], event["origin"]["lon"])
    distance = event["estimated_distance_km"]
    weekend = weekday >= 5
    rush = ops.num((weekday < 5) & (((hour >= 6) & (hour < 9)) | ((hour >= 16) & (hour < 19))))
    bad_weather = ops.num(ops.isin(event["weather"], BAD_WEATHER))
    return {
        "distance_km": distance,
        "log_distance": ops.log1p(distance),
        "initial_estimate_s": ops.num(event["initial_estimated_travel_time_seconds"]),
        "driver_rating": event["driver_rating"],
        "temperature_celsius": event["temperature_celsius"],
        "local_hour": ops.num(hour),
        "rush_hour": rush,
        "weekend": ops.num(weekend),
        "rush_distance": rush * distance,
        "bad_weather": bad_weather,
        "bad_weather_distance": bad_weather * distance,
        "weather": event["weather"],
        "vehicle_type": event["vehicle_type"],
        "time_slot": ops.join(ops.where(weekend, "weekend", "weekday"), "-", ops.text(hour, 2)),
    }


def features(event: Mapping[str, Any]) -> dict[str, Any]:
    """Model inputs of one trip: `formulas` on plain Python values."""
    return formulas(event, SCALAR)


def _encoder(numeric: tuple[str, ...], categorical: tuple[str, ...]) -> Any:
    scaled = Select(*numeric) | preprocessing.StandardScaler()
    return scaled + (Select(*categorical) | preprocessing.OneHotEncoder())


def log_seconds(seconds: float) -> float:
    """Forward target transform of the default model."""
    return math.log1p(seconds)


def seconds_from_log(value: float) -> float:
    """Inverse target transform, clipped so an early, wild estimate cannot overflow."""
    return math.expm1(min(value, 20.0))


def default_model() -> Any:
    """Linear regression of log travel time on log distance, hour-of-week slot and weather.

    The target is standardised online, and the step size decays slowly (inverse scaling, power
    0.3) so that the estimate settles without losing the ability to follow drift. A few
    kilobytes of state, tens of microseconds per event.
    """
    regressor = linear_model.LinearRegression(
        optimizer=optim.SGD(optim.schedulers.InverseScaling(0.02, power=0.3)),
        intercept_lr=0.01, clip_gradient=5.0,
    )
    return _encoder(DEFAULT_NUMERIC, DEFAULT_CATEGORICAL) | compose.TargetTransformRegressor(
        preprocessing.TargetStandardScaler(regressor), func=log_seconds, inverse_func=seconds_from_log,
    )


def relative_error(outcome: Mapping[str, Any]) -> float:
    """Absolute error relative to the actual travel time, |y - y_pred| / y (the drift detector's input).

    Relative, because absolute seconds grow with trip length, which follows the daily rhythm: rush
    hours would read as drift.

    >>> relative_error({"y": 1000, "y_pred": 1250.0})
    0.25
    """
    return abs(outcome["y"] - max(0.0, outcome["y_pred"])) / max(outcome["y"], 1.0)


def original_model() -> Any:
    """The original system's ARFRegressor configuration (one-hot, since ARF needs numbers)."""
    return _encoder(NUMERIC, CATEGORICAL) | forest.ARFRegressor(
        n_models=10, max_features="sqrt", aggregation_method="median", lambda_value=6,
        metric=metrics.MAE(), disable_weighted_vote=True,
        drift_detector=ADWIN(delta=0.002), warning_detector=ADWIN(delta=0.01),
        grace_period=50, max_depth=None, delta=0.01, tau=0.05, leaf_prediction="adaptive",
        leaf_model=None, model_selector_decay=0.95, min_samples_split=5, binary_split=False,
        max_size=500.0, memory_estimate_period=2_000_000, seed=42,
    )


USE_CASE = UseCase(
    key="eta",
    title="Estimated Time of Arrival",
    task="regression",
    event_type="io.coelho.eta.trip.v1",
    schema=SCHEMA,
    id_field="trip_id",
    partition_field="driver_id",
    label_field="simulated_actual_travel_time_seconds",
    features=features,
    formulas=formulas,
    presets={"default": default_model, "original": original_model},
    make_metrics=RegressionSuite,
    champion=ChampionRule("MAE", "min", rolling="RollingMAE"),
    drift=DriftRule("absolute error relative to the actual time", relative_error, delta=1e-5),
)
