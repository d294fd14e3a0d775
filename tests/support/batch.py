"""Helpers of the batch tests: Delta tables written by the project's writer, online versions in MLflow."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice
from typing import Any

from coelho.config import Settings
from coelho.core import USE_CASES, OnlineModel
from coelho.ingest.delta_sink import DeltaAppender
from coelho.producers.cloudevent import source_for
from coelho.producers.run import make_generator
from coelho.runtime.history import register_replay

#: Simulated time of the first event of every test stream.
START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def events(key: str, count: int, seed: int, start: datetime = START, **options: Any) -> list[dict[str, Any]]:
    """`count` events of the use case's producer from simulated time `start` (deterministic for `seed`)."""
    return list(islice(make_generator(key, seed=seed, start=start, **options), count))


def append_events(settings: Settings, key: str, payloads: list[dict[str, Any]]) -> None:
    """Append to the use case's Delta table with the writer `coelho produce --delta` uses."""
    with DeltaAppender(USE_CASES[key], settings, source_for(key), batch_rows=5_000) as appender:
        for payload in payloads:
            appender.add(payload)


def register_online(settings: Settings, key: str, payloads: list[dict[str, Any]]) -> int:
    """Learn `payloads` online and register the model as a `coelho-<uc>` version; returns the champion version."""
    model = OnlineModel(USE_CASES[key])
    for payload in payloads:
        model.learn(payload)
    champion = register_replay(settings, model, f"{key}-online-test")
    assert champion is not None
    return champion
