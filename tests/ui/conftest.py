"""The functions the UI talks to, for real: predict per use case and sql as processes, MLflow, learned models.

One stack for the whole UI test session (starting it costs tens of seconds on two shared cores). The models
are learned by `Learner`s in the test process, the very code the learn functions run (the UI never calls a
learn function; it reads the learner's status through the predict functions): `EVENTS` events each,
checkpointed every `CHECKPOINT_EVERY` and each checkpoint registered in MLflow, so every use case has several
versions and a champion. Each use case's Delta table holds `TABLE_ROWS` rows for the sql function. The UI
tests point the UI at the stack through COELHO_FUNCTION_URLS, as `make up` does.

The batch functions (`train`, `<uc>-batch-predict`) come up only for the tests that ask for them (`batch`),
on the same Valkey and MLflow store, training on tables of their own (`BATCH_ROWS` producer events each,
written by the project's Delta writer after the online models' events) with trainings made small
(`TRAIN_ENV`); `trained` is one finished TFD training, started over HTTP.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from coelho.adapters.mlflow_server import MlflowServer
from coelho.config import Settings
from coelho.runtime.learner import Learner
from support import stream, table_rows, wait_for, write_table
from support.batch import append_events, events
from support.registry import feed, open_learner
from support.servers import FunctionServer, free_port

SIGNING_KEY = "ui-tests-signing-key-0123456789abcdef"
EVENTS = 1_200  # > the champion rule's 1000-event window: the last version can be the champion
CHECKPOINT_EVERY = 400  # three registered versions per use case
TABLE_ROWS = 1_500
KEYS = ("tfd", "eta", "ecci")
#: The batch tables: after the online models' events (12:00), so that the online versions can be compared on
#: their test blocks; fraud more frequent and trips slower (labels known within the blocks), as in tests/batch.
BATCH_START = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
#: TFD and ECCI: test blocks of 1000+ rows, the champion rule's window; ETA is only stopped (small blocks do).
BATCH_ROWS = {"tfd": 8_000, "eta": 2_000, "ecci": 8_000}
BATCH_OPTIONS: dict[str, dict[str, Any]] = {"tfd": {"fraud_rate": 0.05}, "eta": {"rate": 0.01}}
#: Small trainings: blocks of 100+ rows, 5 s gaps, 50 boosting rounds, K searched in 2..4.
TRAIN_ENV = {"COELHO_TRAIN_MIN_ROWS": "100", "COELHO_TRAIN_GAP_SECONDS": "5", "COELHO_TRAIN_ITERATIONS": "50",
             "COELHO_TRAIN_K_RANGE": "2-4"}
TRAIN_TIMEOUT_S = 240
BATCH_FUNCTIONS = ("train", *(f"{key}-batch-predict" for key in KEYS))


@dataclass
class Stack:
    """Where the functions of the UI tests answer, and the learners behind them."""

    env: dict[str, str]
    log_dir: Path
    mlflow_url: str
    closed_port: int = field(default_factory=free_port)
    servers: dict[str, FunctionServer] = field(default_factory=dict)
    learners: dict[str, Learner] = field(default_factory=dict)
    mlflow: MlflowServer | None = None

    def urls(self, **overrides: str) -> str:
        """COELHO_FUNCTION_URLS for the UI: every function of the stack, the batch functions at a port nobody
        listens on (not their `coelho up` ports, where another checkout may run them), and `overrides`."""
        absent = {name: f"http://127.0.0.1:{self.closed_port}" for name in BATCH_FUNCTIONS}
        urls = absent | {name: server.url for name, server in self.servers.items()} | overrides
        return ",".join(f"{name}={url}" for name, url in urls.items())

    def ui_env(self, **overrides: str) -> dict[str, str]:
        """The UI's environment: functions, MLflow's server, no map tiles (no request leaves the machine)."""
        return {"COELHO_FUNCTION_URLS": self.urls(**overrides), "MLFLOW_TRACKING_URI": self.mlflow_url,
                "COELHO_MLFLOW": "on", "COELHO_UI_TILE_URL": "off", "COELHO_SIGNING_KEY": SIGNING_KEY}


@dataclass
class Batch:
    """The batch functions of the UI tests: `train` and the three `<uc>-batch-predict`."""

    env: dict[str, str]
    servers: dict[str, FunctionServer]

    def url(self, name: str) -> str:
        return self.servers[name].url

    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def status(self, use_case: str, url: str | None = None) -> dict[str, Any]:
        """The train function's /status of `use_case` (at `url`, default the session's train function)."""
        response = requests.get((url or self.url("train")) + "/status", params={"use_case": use_case}, timeout=30)
        assert response.ok, response.text
        return response.json()

    def wait_until_ended(self, use_case: str) -> dict[str, Any]:
        """Poll /status until the use case's training is no longer running; its final status."""
        deadline = time.monotonic() + TRAIN_TIMEOUT_S
        while (status := self.status(use_case))["state"] == "running":
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        return status


def start_all(servers: list[FunctionServer]) -> None:
    """Start servers side by side (each waits for its /healthz)."""
    with ThreadPoolExecutor(len(servers)) as pool:
        list(pool.map(lambda server: server.start(timeout=180), servers))


@pytest.fixture(scope="session")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Predict functions and sql over learned models and Delta tables, MLflow with versions and champions.

    The learners and the predict functions use the MLflow store directly (sqlite); the tracking server, which the
    UI asks for metric histories over HTTP, starts on that store once it exists and comes up while the first tests
    run (`mlflow_up` waits for it).
    """
    data_dir = tmp_path_factory.mktemp("ui-stack")
    log_dir = data_dir / "logs"
    log_dir.mkdir()
    settings = Settings(redis_url=redis_url, key_prefix=f"ui{uuid.uuid4().hex[:8]}", data_dir=data_dir,
                        signing_key=SIGNING_KEY.encode(), checkpoint_every=CHECKPOINT_EVERY, register_every=1,
                        mlflow_log_every=100)
    mlflow = MlflowServer(settings.tracking_uri(), settings.artifact_root(), free_port(),
                          log_path=log_dir / "mlflow.log")
    env = {"REDIS_URL": redis_url, "COELHO_KEY_PREFIX": settings.key_prefix, "COELHO_DATA_DIR": str(data_dir),
           "COELHO_SIGNING_KEY": SIGNING_KEY, "COELHO_MLFLOW": "on", "COELHO_PREDICT_REFRESH_MS": "50"}
    built = Stack(env, log_dir, mlflow.url)
    opened: list[Learner] = []
    try:
        for key in KEYS:
            write_table(str(data_dir / "delta" / key), key, table_rows(key, stream(key, TABLE_ROWS, seed=11)))
        built.servers = {name: FunctionServer(name, env, log_dir) for name in
                         [f"{key}-predict" for key in KEYS] + ["sql"]}
        with ThreadPoolExecutor(1) as background:
            started = background.submit(start_all, list(built.servers.values()))
            for key in KEYS:
                built.learners[key] = open_learner(key, settings, opened)
                feed(built.learners[key], stream(key, EVENTS, seed=5), source="/tests/ui")

            def registered(learner: Learner) -> bool:
                status = learner.status()["mlflow"]
                return status["pending"] == 0 and status["champion_version"] is not None

            for learner in built.learners.values():
                wait_for(lambda learner=learner: registered(learner), timeout=180, what="the champion in MLflow")
                learner.publish_status()  # what the predict functions relay: every event, the run, the versions
            mlflow.start(wait=None)
            started.result()
        built.mlflow = mlflow
        yield built
    finally:
        for learner in opened:
            learner.close()
        for server in built.servers.values():
            server.stop()
        mlflow.stop()


@pytest.fixture(scope="session")
def mlflow_up(stack: Stack) -> None:
    """The tracking server answers (the UI reads metric histories from it)."""
    assert stack.mlflow is not None
    stack.mlflow.wait_healthy(180)


@pytest.fixture(autouse=True)
def ui_environment(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings the in-process UI (User fixture) reads at start-up."""
    for name, value in stack.ui_env().items():
        monkeypatch.setenv(name, value)
    for name in ("COELHO_UI_PASSWORD", "COELHO_FUNCTION_URL_TEMPLATE", "PORT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def batch(stack: Stack) -> Iterator[Batch]:
    """`train` and `<uc>-batch-predict` as processes on the stack's Valkey and MLflow store, their own tables."""
    root = stack.log_dir.parent / "batch-delta"
    env = {**stack.env, **TRAIN_ENV, "COELHO_DELTA_ROOT": str(root)}
    settings = Settings.from_env(env)
    for key, count in BATCH_ROWS.items():
        append_events(settings, key, events(key, count, seed=21, start=BATCH_START, **BATCH_OPTIONS.get(key, {})))
    servers = {name: FunctionServer(name, env, stack.log_dir) for name in BATCH_FUNCTIONS}
    try:
        start_all(list(servers.values()))
        yield Batch(env, servers)
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="session")
def trained(batch: Batch) -> dict[str, Any]:
    """One finished TFD training (POST / of the train function): its final status."""
    response = requests.post(batch.url("train") + "/", json={"use_case": "tfd"}, timeout=60)
    assert response.status_code == 202, response.text
    status = batch.wait_until_ended("tfd")
    assert status["state"] == "finished", status
    return status


@pytest.fixture
def batch_ui(batch: Batch, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Batch:
    """The in-process UI sees the batch functions too."""
    monkeypatch.setenv("COELHO_FUNCTION_URLS", stack.urls(**batch.urls()))
    return batch
