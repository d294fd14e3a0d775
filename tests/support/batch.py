"""Helpers of the batch tests: Delta tables written by the project's writer, online versions in MLflow."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice
from typing import Any

from coelho.config import Settings
from coelho.core import USE_CASES, OnlineModel
from coelho.core.champion import window_of
from coelho.core.signing import dumps_signed
from coelho.ingest.delta_sink import DeltaAppender
from coelho.producers.cloudevent import source_for
from coelho.producers.run import make_generator

#: Simulated time of the first event of every test stream.
START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def events(key: str, count: int, seed: int, **options: Any) -> list[dict[str, Any]]:
    """`count` events of the use case's producer (deterministic for `seed`)."""
    return list(islice(make_generator(key, seed=seed, start=START, **options), count))


def append_events(settings: Settings, key: str, payloads: list[dict[str, Any]]) -> None:
    """Append to the use case's Delta table with the writer `coelho produce --delta` uses."""
    with DeltaAppender(USE_CASES[key], settings, source_for(key), batch_rows=5_000) as appender:
        for payload in payloads:
            appender.add(payload)


def register_online(settings: Settings, key: str, payloads: list[dict[str, Any]]) -> int:
    """Learn `payloads` online and register the model as a `coelho-<uc>` version, as a learner would; returns the
    champion version."""
    from coelho.runtime.history import open_registry

    use_case = USE_CASES[key]
    model = OnlineModel(use_case)
    for payload in payloads:
        model.learn(payload)
    registry = open_registry(use_case, settings)
    run_id = registry.start_run(f"{key}-online-test", {"use_case": key}, {"coelho.training_mode": "from_scratch"})
    rule = use_case.champion
    tags = {"coelho.score": str(model.metrics.report()[rule.rolling]), "coelho.window": str(window_of(rule)),
            "coelho.events_applied": str(model.events_applied), "coelho.last_event_time": str(model.last_event_time)}
    registry.register(run_id, dumps_signed(model, settings.resolved_signing_key()), tags, "model-online")
    registry.end_run(run_id)
    champion = registry.update_champion()
    assert champion is not None
    return champion

