"""Drift detection on the prequential error stream: after the producer's change point, never before, replay-exact."""

from __future__ import annotations

import functools
import pickle
from datetime import UTC, datetime
from itertools import islice

import pytest

from coelho.core import USE_CASES, OnlineModel
from coelho.core.drift import DriftMonitor, DriftRule
from coelho.core.signing import dumps_signed, loads_signed
from coelho.producers.run import make_generator

START = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
KEY = b"drift-tests-key"
#: (seed, change point, events): small producer streams whose change the model's monitor detects.
STREAMS = {"tfd": (3, 2000, 3500), "eta": (1, 2000, 3500), "ecci": (2, 1500, 2500)}


@functools.cache
def learned(key: str) -> tuple[list[dict], OnlineModel]:
    """The drifting stream of `key` and a model that learned it, in order."""
    seed, change_at, count = STREAMS[key]
    stream = list(islice(make_generator(key, seed=seed, start=START, drift_at=change_at), count))
    model = OnlineModel(USE_CASES[key])
    for event in stream:
        model.learn(event)
    return stream, model


@pytest.mark.parametrize("key", sorted(STREAMS))
def test_the_producers_change_is_detected_after_the_change_point_and_not_before(key: str) -> None:
    _, change_at, _ = STREAMS[key]
    stream, model = learned(key)
    drift = model.status()["drift"]
    assert drift["detections"] >= 1
    assert all(d["event"] > change_at for d in drift["recent"]), drift["recent"]
    first = drift["recent"][0]
    assert first["error_after"] > first["error_before"]
    assert drift["last_detected_at"] == stream[drift["last_detected_event"] - 1]["timestamp"]


@pytest.mark.parametrize("key", sorted(STREAMS))
def test_a_checkpoint_and_a_replay_give_the_same_detections(key: str) -> None:
    _, change_at, _ = STREAMS[key]
    stream, reference = learned(key)
    model = OnlineModel(USE_CASES[key])
    for event in stream[: change_at - 100]:
        model.learn(event)
    restored = loads_signed(dumps_signed(model, KEY), KEY)  # what a crash leaves: the checkpoint, then the WAL
    for event in stream[change_at - 100 :]:
        restored.learn(event)
    assert restored.status()["drift"] == reference.status()["drift"]
    assert restored.drift.detections >= 1


def test_a_model_checkpointed_before_drift_detection_existed_gets_a_fresh_monitor() -> None:
    model = OnlineModel(USE_CASES["tfd"])
    state = model.__getstate__()
    del state["drift"]
    old = OnlineModel.__new__(OnlineModel)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert old.status()["drift"]["detections"] == 0 and old.drift.detector_name == "ADWIN(delta=0.002)"


def test_an_error_that_falls_is_not_a_detection() -> None:
    monitor = DriftMonitor(DriftRule("0/1 error", lambda outcome: 0.0))
    for n in range(1, 4001):
        error = (n % 2 == 0) if n <= 2000 else (n % 10 == 0)  # 50 % errors, then 10 %: the model got better
        monitor.update(float(error), n, f"t{n}")
    assert monitor.detections == 0 and monitor.detector.width < 4000  # the detector did cut its window


def test_undefined_errors_are_skipped() -> None:
    monitor = DriftMonitor(USE_CASES["ecci"].drift)
    assert monitor.update(None, 1, "t1") is False and monitor.detector.width == 0
