"""Fixtures of the lifecycle tests: MLflow stores that start in seconds."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.servers import FunctionServer


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store with its schema created once (a fresh store spends seconds migrating)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def ml_env(env: dict[str, str], tmp_path: Path, mlflow_template: Path) -> dict[str, str]:
    """`env` with MLflow on, on its own sqlite store under COELHO_DATA_DIR (where the functions look by default)."""
    store = tmp_path / "mlflow" / "mlflow.db"
    store.parent.mkdir(exist_ok=True)
    shutil.copy(mlflow_template, store)
    return {**env, "COELHO_MLFLOW": "on"}


@pytest.fixture
def mlflow_client(ml_env: dict[str, str], tmp_path: Path) -> Any:
    """An MlflowClient on the test's store."""
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., FunctionServer]]:
    """`serve(name, env, **extra_env)` starts a function as `coelho fn serve` does; whatever is left is stopped."""
    started: list[FunctionServer] = []

    def start(name: str, env: dict[str, str], **extra_env: str) -> FunctionServer:
        server = FunctionServer(name, env, tmp_path, **extra_env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
