"""Drift detection quality per use case: delay after a known change point, false detections on a stationary stream.

The producers' streams, learned prequentially by `OnlineModel` in process (the code path of the learners):

* **stationary**: `stationary_events` events of the unchanged producer → false detections, per 100k events;
* **drifting**: for each seed, `change_at` events, then the producer's `--drift-at` change, then `after` events →
  the delay (events after the change to the first detection), missed changes, false detections before it.

Baseline, on the very same error values (recorded as the monitor reads them): River's Page-Hinkley test with its
default parameters, on increases only (`mode="up"`), the other detector the issue names. Detections are a
deterministic function of the seeds: these figures do not depend on the machine's load.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from river.drift import PageHinkley

from coelho.core import USE_CASES, OnlineModel
from coelho.core.drift import DriftRule
from coelho.producers.run import make_generator

__all__ = ["drift_quality"]

log = logging.getLogger("bench")

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _detections(key: str, seed: int, count: int, drift_at: int | None) -> dict[str, list[int]]:
    """Event numbers of the model's detections and of the Page-Hinkley baseline's on one producer stream."""
    use_case = USE_CASES[key]
    baseline = PageHinkley(mode="up")
    baseline_at: list[int] = []

    def error(outcome: Mapping[str, Any]) -> float | None:
        value = use_case.drift.error(outcome)
        if value is not None:
            baseline.update(value)
            if baseline.drift_detected:
                baseline_at.append(model.events_applied + 1)
        return value

    watched = dataclasses.replace(use_case, drift=DriftRule(use_case.drift.name, error, use_case.drift.delta))
    model = OnlineModel(watched)
    for event in islice(make_generator(key, seed=seed, start=START, drift_at=drift_at), count):
        model.learn(event)
    return {"detections": [d["event"] for d in model.drift.recent], "baseline": baseline_at,
            "count": [model.drift.detections]}  # recent holds the last 20: count is the total


def _summary(runs: Sequence[dict[str, list[int]]], change_at: int, after: int, detector: str) -> dict[str, Any]:
    delays, missed, early = [], 0, 0
    for run in runs:
        found = [n for n in run[detector] if n > change_at]
        early += len([n for n in run[detector] if n <= change_at])
        if found and found[0] <= change_at + after:
            delays.append(found[0] - change_at)
        else:
            missed += 1
    return {"delays": delays, "mean_delay": sum(delays) / len(delays) if delays else None, "missed": missed,
            "false_before_change": early}


def drift_quality(keys: Sequence[str], stationary_events: int, change_at: int, after: int,
                  seeds: Sequence[int]) -> dict[str, Any]:
    """The section's figures per use case (two use cases in parallel: the streams are independent)."""
    jobs: dict[tuple[str, str, int], Any] = {}
    with ProcessPoolExecutor(max_workers=2) as pool:
        for key in keys:
            jobs[(key, "stationary", seeds[0])] = pool.submit(_detections, key, seeds[0], stationary_events, None)
            for seed in seeds:
                jobs[(key, "drifting", seed)] = pool.submit(_detections, key, seed, change_at + after, change_at)
        results = {job: future.result() for job, future in jobs.items()}
    out: dict[str, Any] = {"stationary_events": stationary_events, "change_at": change_at, "after": after,
                           "seeds": list(seeds)}
    for key in keys:
        stationary = results[(key, "stationary", seeds[0])]
        drifting = [results[(key, "drifting", seed)] for seed in seeds]
        per_100k = 100_000 / stationary_events
        out[key] = {
            "detector": USE_CASES[key].drift.describe(), "error": USE_CASES[key].drift.name,
            "false_per_100k": stationary["count"][0] * per_100k,
            "baseline_false_per_100k": len(stationary["baseline"]) * per_100k,
            "stationary_detections": stationary["detections"],
            **_summary(drifting, change_at, after, "detections"),
            "baseline": _summary(drifting, change_at, after, "baseline"),
        }
        log.info("drift %s: %s", key, out[key])
    return out
