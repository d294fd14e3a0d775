"""Batch fixtures: Delta tables written by the project's writer from producer events, trainings on a real MLflow.

The tables, the online versions and one training per use case are made once per session (they are what most
tests look at); the trainings run with spies recording what each fit received, for the leakage test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.core.batch import FeatureBuilder
from coelho.core.progress import Progress
from coelho.core.train_request import TrainRequest
from coelho.runtime import trainer
from coelho.runtime.catalog import FUNCTIONS
from coelho.runtime.lifecycle import LIFECYCLE
from support import ROOT
from support.batch import append_events, events, register_online

SIGNING_KEY = "tests-signing-key-0123456789abcdef"
#: Rows per table: enough for 1000+ rows in each block after the gaps (60 s, set below).
SIZES = {"tfd": 8_000, "eta": 10_000, "ecci": 12_000}
SEEDS = {"tfd": 101, "eta": 102, "ecci": 103}
#: The online model learns this share of the stream: it ends before the test block starts.
ONLINE_SHARE = 0.6


@pytest.fixture(scope="session")
def batch_settings(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """MLflow on (sqlite under the data dir), the session Valkey under a fresh prefix, 60 s gaps."""
    return Settings(redis_url=redis_url, key_prefix=f"b{uuid.uuid4().hex[:8]}",
                    data_dir=tmp_path_factory.mktemp("batch"), signing_key=SIGNING_KEY.encode(), mlflow=True,
                    train_gap_seconds=60.0)


@pytest.fixture(scope="session")
def batch_env(batch_settings: Settings) -> dict[str, str]:
    """The same settings as environment variables (functions, child processes)."""
    return {"REDIS_URL": batch_settings.redis_url or "", "COELHO_KEY_PREFIX": batch_settings.key_prefix,
            "COELHO_DATA_DIR": str(batch_settings.data_dir), "COELHO_SIGNING_KEY": SIGNING_KEY,
            "COELHO_MLFLOW": "on", "COELHO_TRAIN_GAP_SECONDS": "60"}


@pytest.fixture(scope="session")
def streams(batch_settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Each use case's events, appended to its Delta table by the `coelho produce --delta` writer."""
    out = {}
    for key, count in SIZES.items():
        # fraud a little more frequent; trips slower (0.03/s: 3.5 days), so that most trips, which take up to
        # hours, end within their block (rows whose label arrives after the next block starts are purged)
        options = {"tfd": {"fraud_rate": 0.05}, "eta": {"rate": 0.03}}.get(key, {})
        out[key] = events(key, count, SEEDS[key], **options)
        append_events(batch_settings, key, out[key])
    return out


@dataclass
class FitSpy:
    """What the fits of the session's trainings received: event ids of each frame, CatBoost's pools, KMeans' inputs."""

    frames: dict[int, tuple[Any, list[str]]] = field(default_factory=dict)
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ids_of(self, frame: Any) -> list[str]:
        return self.frames[id(frame)][1]


def _install_spies(patch: pytest.MonkeyPatch, spy: FitSpy) -> None:
    add, frame = FeatureBuilder.add, FeatureBuilder.frame

    def spied_add(self: FeatureBuilder, chunk: Any) -> FeatureBuilder:
        chunk = list(chunk)
        self.__dict__.setdefault("spied_ids", []).extend(str(e[self.use_case.id_field]) for e in chunk)
        return add(self, chunk)

    def spied_frame(self: FeatureBuilder) -> Any:
        result = frame(self)
        spy.frames[id(result)] = (result, list(self.__dict__.get("spied_ids", [])))
        return result

    fit_catboost, k_search = trainer.fit_catboost, trainer.k_search

    def spied_fit_catboost(kind: str, columns: Any, train: Any, y_train: Any, validation: Any, y_validation: Any,
                           options: Any, progress: Any) -> Any:
        from catboost import CatBoostClassifier, CatBoostRegressor

        calls: list[dict[str, Any]] = []
        cls = CatBoostClassifier if kind == "classifier" else CatBoostRegressor
        original = cls.fit

        def spied_fit(model: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
            assert not args, "the eval set goes by keyword"
            eval_set = kwargs.get("eval_set")
            sets = eval_set if isinstance(eval_set, list) else [eval_set]
            calls.append({"rows": x.num_row(), "eval_rows": [s.num_row() for s in sets if s is not None]})
            return original(model, x, **kwargs)

        with pytest.MonkeyPatch.context() as inner:
            inner.setattr(cls, "fit", spied_fit)
            model = fit_catboost(kind, columns, train, y_train, validation, y_validation, options, progress)
        key = "tfd" if kind == "classifier" else "eta"
        spy.fits[key] = {"train": spy.ids_of(train), "validation": spy.ids_of(validation), "catboost": calls}
        return model

    def spied_k_search(x_train: Any, x_validation: Any, ks: list[int], progress: Any) -> Any:
        spy.fits["ecci"] = {"x_train_rows": len(x_train), "x_validation_rows": len(x_validation), "ks": list(ks)}
        return k_search(x_train, x_validation, ks, progress)

    patch.setattr(FeatureBuilder, "add", spied_add)
    patch.setattr(FeatureBuilder, "frame", spied_frame)
    patch.setattr(trainer, "fit_catboost", spied_fit_catboost)
    patch.setattr(trainer, "k_search", spied_k_search)


@dataclass
class Trained:
    """One session training: its outcome, the online version it was compared with, the spy's records."""

    outcome: trainer.TrainOutcome
    online_version: int
    progress: Progress
    spy: FitSpy


@pytest.fixture(scope="session")
def trained(batch_settings: Settings, streams: dict[str, list[dict[str, Any]]]) -> dict[str, Trained]:
    """Per use case: an online champion that learned the first 60 % of the stream, then one batch training."""
    spy = FitSpy()
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COELHO_SIGNING_KEY", SIGNING_KEY)
        _install_spies(patch, spy)
        for key in USE_CASES:
            online = register_online(batch_settings, key, streams[key][: int(len(streams[key]) * ONLINE_SHARE)])
            progress = Progress()
            outcome = trainer.run_training(batch_settings, TrainRequest(key), progress)
            assert outcome.state == "finished", (outcome.error, progress.snapshot()["log"])
            out[key] = Trained(outcome, online, progress, spy)
    return out


@pytest.fixture
def function_client(batch_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FlaskClient]]:
    """`function_client("train", **env)` → a Flask test client of that target, configured like its container."""

    def build(target: str, **extra_env: str) -> FlaskClient:
        for name, value in {**batch_env, **extra_env}.items():
            monkeypatch.setenv(name, value)
        spec = next(spec for spec in FUNCTIONS if spec.target == target)
        source = Path(ROOT) / "functions" / spec.folder / "main.py"
        return functions_framework.create_app(target, str(source), spec.signature).test_client()

    yield build
    LIFECYCLE.close_all()
