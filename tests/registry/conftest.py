"""MLflow fixtures: settings with MLflow on (sqlite under tmp_path unless a server is given)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from coelho.config import Settings
from coelho.runtime.learner import Learner
from support.registry import FAST


@pytest.fixture
def ml_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """MLflow on, sqlite store and artifacts under tmp_path; the pyfunc loader finds the signing key in env."""
    assert settings.signing_key
    monkeypatch.setenv("COELHO_SIGNING_KEY", settings.signing_key.decode())
    return dataclasses.replace(settings, **FAST)


@pytest.fixture
def learners() -> Iterator[list[Learner]]:
    """Learners a test opens, closed at the end."""
    opened: list[Learner] = []
    yield opened
    for learner in opened:
        learner.close()



@pytest.fixture
def global_uri(ml_settings: Settings) -> Iterator[str]:
    """Point MLflow's global tracking and registry URIs at the test store (for `mlflow.pyfunc.load_model`)."""
    import mlflow

    uri = ml_settings.tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri("")
    mlflow.set_registry_uri("")
