"""Fixtures of the lifecycle tests: a Valkey of the test's own to kill, MLflow stores that start in seconds."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from coelho.adapters.embedded_redis import EmbeddedValkey
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


class KillableValkey:
    """A Valkey with the embedded defaults (append-only file, fsync every second) that a test kills and restarts."""

    def __init__(self, folder: Path) -> None:
        self.server = EmbeddedValkey(folder)
        self.url = self.server.start()
        self.port = int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL: a crash of the Valkey process (the machine and its page cache live on)."""
        assert self.server.process is not None
        self.server.process.kill()
        self.server.process.wait()

    def restart(self) -> None:
        """Start again on the same port, from the same append-only file."""
        self.server.start(port=self.port)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[KillableValkey]:
    server = KillableValkey(tmp_path / "killable")
    yield server
    server.stop()


@pytest.fixture
def valkey_env(env: dict[str, str], valkey: KillableValkey) -> dict[str, str]:
    """`env` on the test's own Valkey."""
    return {**env, "REDIS_URL": valkey.url}
