"""MLflow fixtures: settings with MLflow on (sqlite under tmp_path unless a server is given)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coelho.adapters.mlflow_server import MlflowServer
from coelho.config import Settings
from coelho.runtime.learner import Learner
from support.postgres import PostgresServer
from support.registry import FAST, global_mlflow
from support.servers import free_port


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
    with global_mlflow(ml_settings.tracking_uri()) as uri:
        yield uri


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[Callable[..., MlflowServer]]:
    """`mlflow_server(backend_uri=None, port=None)` starts a lean server (sqlite in tmp_path by default)."""
    started: list[MlflowServer] = []

    def start(backend_uri: str | None = None, port: int | None = None) -> MlflowServer:
        backend = backend_uri or f"sqlite:///{tmp_path / 'server.db'}"
        server = MlflowServer(backend, tmp_path / "server-artifacts", port or free_port(),
                              log_path=tmp_path / "mlflow-server.log")
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (installed with apt-get when missing)."""
    server = PostgresServer(free_port()).start()
    yield server
    server.stop()
