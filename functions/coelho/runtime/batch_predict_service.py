"""The batch-predict functions: a raw event in, the batch model's answer out.

`POST /[?version=N]` validates the event exactly as the online predict functions do (405, 413, 422 naming
every bad field) and answers `{prediction, fraud_probability | eta_seconds | cluster, model_source: "batch",
model_version, run_id}` from the `champion` of `coelho-<uc>-batch`, or from version N. Models are loaded
once and cached. The first request looks the champion up; from then on a background thread asks MLflow
every `CHAMPION_CHECK_S` seconds which version holds the alias and loads a new one before it serves it, so
requests never wait for MLflow and a new champion is served within that time. 503 names the reason when
there is no batch model (none registered, no champion, MLflow off or unreachable with nothing cached); 404
when version N does not exist.
`GET /versions` lists the registered versions with their scores.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

import flask

from coelho.config import Settings
from coelho.core.schema import Problem
from coelho.runtime import telemetry
from coelho.runtime.services import Service, predict_payload, reject, target_use_case, version_arg

__all__ = ["BatchModels", "BatchPredictService", "NoBatchModel"]

log = logging.getLogger("coelho.functions")

#: How often (seconds) the function asks MLflow which version holds the `champion` alias.
CHAMPION_CHECK_S = 10.0
#: Loaded versions kept in memory.
CACHED_VERSIONS = 4


class NoBatchModel(LookupError):
    """No batch model can answer; the message says why."""


class BatchModels:
    """The loaded versions of one use case's batch model and which one is the champion."""

    def __init__(self, use_case: Any, settings: Settings) -> None:
        self.use_case = use_case
        self.settings = settings
        self._registry: Any = None
        self._models: collections.OrderedDict[int, tuple[Any, str]] = collections.OrderedDict()
        self._champion: int | None = None
        self._watcher: threading.Thread | None = None
        self._closed = threading.Event()
        self.reason = "MLflow is disabled (COELHO_MLFLOW=off)" if not settings.mlflow else "not looked up yet"
        self._lock = threading.RLock()  # the first request checks the champion under it

    def registry(self) -> Any:
        if self._registry is None:
            from coelho.adapters.mlflow_batch import BatchRegistry

            self._registry = BatchRegistry(self.use_case, self.settings.tracking_uri(), self.settings.artifact_root())
        return self._registry

    def predict(self, payload: dict[str, Any], version: int | None = None) -> dict[str, Any]:
        """The answer of `version` (default: the champion) for one validated event."""
        with self._lock:
            version = version if version is not None else self._champion_version()
            model, run_id = self._load(version)
        [answer] = model.predict_events([payload])
        return {**answer, "model_source": "batch", "model_version": version, "run_id": run_id}

    def _champion_version(self) -> int:
        if not self.settings.mlflow:
            raise NoBatchModel(self.reason)
        if self._watcher is None:  # the first request looks up; a thread keeps looking after that
            self._check()
            self._watcher = threading.Thread(target=self._watch, name=f"batch-champion-{self.use_case.key}",
                                             daemon=True)
            self._watcher.start()
        if self._champion is None:
            raise NoBatchModel(f"no batch model to serve: {self.reason}")
        return self._champion

    def _watch(self) -> None:
        while not self._closed.wait(CHAMPION_CHECK_S):
            self._check()

    def _check(self) -> None:
        """Ask which version holds the alias; load it (before serving it) when it changed."""
        try:
            champion = self.registry().champion_version()
            if champion is None:
                self.reason = f"no version of coelho-{self.use_case.key}-batch holds the champion alias " \
                              f"(train one: coelho train {self.use_case.key})"
            elif champion not in self._models:
                loaded = self.registry().load_version(champion)  # slow: requests go on with the old champion
                with self._lock:
                    self._remember(champion, loaded)
            self._champion = champion
        except Exception as exc:  # noqa: BLE001 - MLflow down: keep serving the cached champion
            self.reason = f"MLflow unreachable: {type(exc).__name__}: {exc}"[:300]
            log.warning("%s batch champion lookup failed: %s", self.use_case.key, self.reason)

    def close(self) -> None:
        """Stop looking for new champions."""
        self._closed.set()

    def _load(self, version: int) -> tuple[Any, str]:
        if version in self._models:
            self._models.move_to_end(version)
            return self._models[version]
        if not self.settings.mlflow:
            raise NoBatchModel(self.reason)
        try:
            loaded = self.registry().load_version(version)
        except LookupError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise NoBatchModel(f"version {version} could not be loaded: {type(exc).__name__}: {exc}"[:300]) from exc
        self._remember(version, loaded)
        return loaded

    def _remember(self, version: int, loaded: tuple[Any, str]) -> None:
        self._models[version] = loaded
        while len(self._models) > CACHED_VERSIONS:
            self._models.popitem(last=False)
        log.info("%s: loaded coelho-%s-batch version %d", self.use_case.key, self.use_case.key, version)

    def versions(self) -> dict[str, Any]:
        if not self.settings.mlflow:
            return {"versions": [], "error": self.reason}
        try:
            return {"versions": self.registry().versions()}
        except Exception as exc:  # noqa: BLE001
            return {"versions": [], "error": f"MLflow unreachable: {type(exc).__name__}: {exc}"[:300]}

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"use_case": self.use_case.key, "role": "batch-predict", "champion": self._champion,
                    "loaded_versions": list(self._models), "reason": None if self._champion else self.reason}


class BatchPredictService(Service):
    """Validates raw events and answers with a batch model; the use case is the target's prefix."""

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        super().__init__(app, settings)
        self.use_case = target_use_case(self.name)

    def _build_engine(self) -> BatchModels:
        return BatchModels(self.use_case, self.settings)

    def stop(self) -> str:
        """Stop looking for new champions."""
        if self._engine is None:
            return "nothing to clean up"
        self._engine.close()
        return "champion watch stopped"

    def _status_view(self) -> dict[str, Any]:
        return {"function": self.name, **self.engine().status()}

    def handle(self, request: flask.Request) -> flask.Response:
        """POST / (one raw event, `?version=N` optional) or GET /versions."""
        from coelho.adapters.mlflow_batch import UnknownVersion

        route = request.path.rstrip("/") or "/"
        if route == "/versions":
            if request.method != "GET":
                reject(405, "GET /versions", **{"Allow": "GET"})
            return flask.jsonify(self.engine().versions())
        if route != "/":
            reject(404, f"no route {route}; use POST / or GET /versions")
        started = time.perf_counter()
        version = version_arg(request)
        payload = predict_payload(self, request)
        try:
            result = self.engine().predict(payload, version)
        except UnknownVersion as exc:
            reject(404, str(exc), [Problem("version", str(exc))])
        except NoBatchModel as exc:
            telemetry.PREDICTIONS.labels(self.name, "no_model").inc()
            reject(503, str(exc), **{"Retry-After": "10"})
        telemetry.PREDICTIONS.labels(self.name, "ok").inc()
        telemetry.PREDICT_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return flask.jsonify(result)

