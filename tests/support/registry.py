"""Helpers of the MLflow tests: learners on the session Valkey, feeding events, losing Redis."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from coelho.adapters.redis_state import RedisState
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.runtime.learner import Learner

#: Small cadences so that a test sees several metric logs, checkpoints and registrations; a close waits for its MLflow jobs as long as a busy machine needs (the bound
#: itself is tested in tests/lifecycle with an unreachable server).
FAST = {"mlflow": True, "checkpoint_every": 300, "register_every": 1, "mlflow_log_every": 100,
        "stop_mlflow_seconds": 120.0}


def open_learner(key: str, settings: Settings, opened: list[Learner]) -> Learner:
    """A Learner of `key` on the session Valkey under the settings' prefix."""
    assert settings.redis_url
    state = RedisState.from_url(settings.redis_url, settings.key_prefix, key)
    learner = Learner(USE_CASES[key], state, settings)
    opened.append(learner)
    return learner


def feed(learner: Learner, events: list[dict[str, Any]], source: str = "/tests/mlflow") -> None:
    """Hand every event to the learner and learn them."""
    id_field = learner.use_case.id_field
    for event in events:
        assert learner.handle(source, str(event[id_field]), event).accepted
    learner.drain()


def flush_redis(settings: Settings) -> None:
    """Delete every key of the settings' prefix: Redis lost its state."""
    assert settings.redis_url
    client = RedisState.from_url(settings.redis_url, settings.key_prefix, "x").client
    keys = list(client.scan_iter(f"{settings.key_prefix}:*"))
    if keys:
        client.delete(*keys)


@contextmanager
def global_mlflow(uri: str) -> Iterator[str]:
    """MLflow's global tracking and registry URIs on `uri` (for `mlflow.pyfunc.load_model`), reset afterwards."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri("")
        mlflow.set_registry_uri("")

