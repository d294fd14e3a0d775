"""A learner's MLflow side: one run per learner lifetime, metrics on a cadence, registered versions.

The learner calls four hooks, none of which waits for MLflow: `started` (leadership: open the
run), `observe` (after each applied event: every `mlflow_log_every` events or
`mlflow_log_seconds`, log the scalar metrics with step = events applied; at once when the drift
monitor made a new detection: the run's `coelho.drift.*` tags and a `drift_detection` metric point
at step = the detecting event), `checkpointed` (every
`register_every` Redis checkpoints: register the signed blob as a version and re-run the
champion rule) and `close`. The work goes through an `Outbox`, so while MLflow is down learning
goes on, logs wait in memory and arrive in order once it is back. `restore` is the one
synchronous call: with an empty Redis, the learner continues from the champion.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from coelho.config import Settings
from coelho.core.champion import window_of
from coelho.core.online import OnlineModel
from coelho.core.signing import dumps_signed
from coelho.core.usecase import UseCase
from coelho.runtime.outbox import Outbox

if TYPE_CHECKING:
    from coelho.adapters.mlflow_registry import Champion, MlflowRegistry

__all__ = ["History", "candidate_tags", "open_registry", "register_replay", "scalar_metrics"]

log = logging.getLogger(__name__)

#: Longest MLflow parameter value.
PARAM_MAX = 6000


def open_registry(use_case: UseCase, settings: Settings) -> MlflowRegistry:
    """The MLflow registry of `use_case` (imports MLflow: only called once MLflow is needed)."""
    from coelho.adapters.mlflow_registry import MlflowRegistry

    return MlflowRegistry(use_case, settings.tracking_uri(), settings.artifact_root(),
                          settings.resolved_signing_key())


def scalar_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Finite numbers of a metric report; small dicts of numbers flattened as `name.key`.

    >>> scalar_metrics({"MAE": 1.5, "R2": None, "ConfusionMatrix": {"tp": 3, "fn": 1}, "n_clusters": 2})
    {'MAE': 1.5, 'ConfusionMatrix.tp': 3.0, 'ConfusionMatrix.fn': 1.0, 'n_clusters': 2.0}
    """
    out: dict[str, float] = {}
    for name, value in report.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            if math.isfinite(value):
                out[name] = float(value)
        elif isinstance(value, Mapping) and len(value) <= 50:
            for key, inner in value.items():
                if isinstance(inner, int | float) and not isinstance(inner, bool) and math.isfinite(inner):
                    out[f"{name}.{key}"] = float(inner)
    return out


def candidate_tags(model: OnlineModel) -> dict[str, str]:
    """What the champion rule (and the batch comparison) read from a version: its rolling score and window, the
    metric, and watermarks (events applied, last event time)."""
    report = model.metrics.report()
    rule = model.use_case.champion
    return {
        "coelho.score": str(report.get(rule.rolling)),
        "coelho.window": str(window_of(rule)),
        f"coelho.{rule.metric}": str(report.get(rule.metric)),
        "coelho.events_applied": str(model.events_applied),
        "coelho.last_event_time": str(model.last_event_time),
        "coelho.preset": model.preset,
    }


def register_replay(settings: Settings, model: OnlineModel, run_name: str) -> int | None:
    """Register an online model that learned outside a learner (a replay of stored events, in the benchmarks and
    tests) as a version of `coelho-<uc>` in a run of its own; returns the champion version afterwards."""
    registry = open_registry(model.use_case, settings)
    run_id = registry.start_run(run_name, {"use_case": model.use_case.key, "preset": model.preset},
                                {"coelho.training_mode": "replay", "coelho.holder": f"replay-{uuid.uuid4().hex}"})
    registry.register(run_id, dumps_signed(model, settings.resolved_signing_key()), candidate_tags(model),
                      f"model-{model.events_applied:012d}")
    registry.end_run(run_id)
    return registry.update_champion()


class History:
    """One learner's run and registered versions in MLflow."""

    def __init__(self, use_case: UseCase, settings: Settings, holder: str) -> None:
        self.use_case = use_case
        self.settings = settings
        self.holder = holder
        self.outbox = Outbox(f"{use_case.key}-mlflow")
        self._registry: MlflowRegistry | None = None
        self.run_id: str | None = None
        self.run_requested = False
        self.continued_from: Champion | None = None
        self.restore_error: str | None = None
        self.logged_events = -1
        self.logged_at = 0.0
        self.drift_logged = 0
        self.checkpoints = 0
        self.registered_events = -1
        self.last_version: int | None = None
        self.champion_version: int | None = None

    def registry(self) -> MlflowRegistry:
        if self._registry is None:
            self._registry = open_registry(self.use_case, self.settings)
        return self._registry

    # hooks -----------------------------------------------------------------------------------
    def restore(self) -> OnlineModel | None:
        """The champion's model to continue from, or None (no champion, or MLflow unreachable)."""
        try:
            champion = self.registry().load_champion()
        except Exception as exc:  # noqa: BLE001 - MLflow down must not stop learning
            self.restore_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("%s: could not restore the champion, starting fresh: %s", self.use_case.key,
                        self.restore_error)
            return None
        if champion is None or champion.model.use_case.key != self.use_case.key:
            return None
        self.continued_from = champion
        log.info("%s: continuing from %s version %d (%d events applied)", self.use_case.key,
                 self.registry().name, champion.version, champion.model.events_applied)
        return champion.model

    def started(self, model: OnlineModel) -> None:
        """Open this learner's run (once per lifetime) with params and lineage tags."""
        if self.run_requested:
            return
        self.run_requested = True
        rule = self.use_case.champion
        params = {
            "use_case": self.use_case.key,
            "preset": model.preset,
            "model": repr(model.model)[:PARAM_MAX],
            "champion_rule": f"{rule.mode} {rule.metric}, ranked on {window_of(rule)}",
            "checkpoint_every": self.settings.checkpoint_every,
            "register_every": self.settings.register_every,
            "mlflow_log_every": self.settings.mlflow_log_every,
        }
        tags = {
            "coelho.use_case": self.use_case.key,
            "coelho.holder": self.holder,
            "coelho.training_mode": "continued" if self.continued_from else "from_scratch",
            "coelho.baseline_events_applied": str(model.events_applied),
        }
        if self.continued_from is not None:
            champion = self.continued_from
            tags["coelho.continued_from"] = f"{self.registry().name}/{champion.version}"
            tags["coelho.continued_from_run"] = champion.run_id or ""
            tags["coelho.baseline_last_event_time"] = str(champion.model.last_event_time)
            for name, value in scalar_metrics(champion.model.metrics.report()).items():
                tags[f"coelho.baseline_{name}"] = str(value)
        run_name = f"{self.use_case.key}-{model.preset}-{time.strftime('%Y%m%d-%H%M%S')}"

        def start() -> None:
            self.run_id = self.registry().start_run(run_name, params, tags)

        self.outbox.submit(start)
        if model.drift.detections:  # a model continued from a checkpoint or the champion keeps its detections
            self.drift_detected(model)

    def observe(self, model: OnlineModel) -> None:
        """Log the metrics when `mlflow_log_every` events or `mlflow_log_seconds` passed since the last log."""
        events = model.events_applied
        now = time.monotonic()
        if events == self.logged_events or not self.run_requested:
            return
        if model.drift.detections != self.drift_logged:
            self.drift_detected(model)
        if events - self.logged_events < self.settings.mlflow_log_every and \
                now - self.logged_at < self.settings.mlflow_log_seconds:
            return
        self.log_metrics(model)

    def drift_detected(self, model: OnlineModel) -> None:
        """Queue the drift tags of the run and a `drift_detection` point (value: its number) per new detection."""
        drift = model.drift
        new = [d for d in drift.recent if d["detection"] > self.drift_logged]
        self.drift_logged = drift.detections
        tags = {"coelho.drift.detector": drift.detector_name, "coelho.drift.error": drift.error_name,
                "coelho.drift.detections": str(drift.detections),
                "coelho.drift.last_detected_event": str(drift.last_detected_event),
                "coelho.drift.last_detected_at": str(drift.last_detected_at)}
        stamp = int(time.time() * 1000)

        def log() -> None:
            run_id = self._run()
            self.registry().set_tags(run_id, tags)
            for detection in new:
                self.registry().log_metrics(run_id, {"drift_detection": detection["detection"]}, detection["event"],
                                            stamp)

        self.outbox.submit(log)

    def log_metrics(self, model: OnlineModel) -> None:
        """Queue the current metric values (and the drift monitor's) at step = events applied."""
        self.logged_events, self.logged_at = model.events_applied, time.monotonic()
        metrics = {**scalar_metrics(model.metrics.report()), "drift_detections": float(model.drift.detections),
                   "drift_error_mean": float(model.drift.detector.estimation)}
        step, stamp = model.events_applied, int(time.time() * 1000)
        self.outbox.submit(lambda: self.registry().log_metrics(self._run(), metrics, step, stamp), droppable=True)

    def checkpointed(self, blob: bytes, model: OnlineModel, seq: int) -> None:
        """Every `register_every` checkpoints, register the checkpoint's blob as a version."""
        self.checkpoints += 1
        if self.checkpoints % self.settings.register_every == 0:
            self.register(blob, model, seq)

    def register(self, blob: bytes, model: OnlineModel, seq: int) -> None:
        """Queue: log the blob as a pyfunc model, register a version, re-evaluate the champion."""
        if not self.run_requested or model.events_applied in (0, self.registered_events):
            return
        self.registered_events = model.events_applied
        tags = {**candidate_tags(model), "coelho.wal_seq": str(seq), "coelho.holder": self.holder}
        path = f"model-{model.events_applied:012d}"
        self.log_metrics(model)

        watermarks = {k: tags[k] for k in ("coelho.events_applied", "coelho.last_event_time")}

        def register() -> None:  # runs later, on the outbox thread: uses only values captured now
            run_id = self._run()
            tags["coelho.run_id"] = run_id
            self.last_version = self.registry().register(run_id, blob, tags, path)
            self.registry().set_tags(run_id, {**watermarks, "coelho.last_version": str(self.last_version)})

        def elect() -> None:
            self.champion_version = self.registry().update_champion()

        self.outbox.submit(register)
        self.outbox.submit(elect)

    def close(self, model: OnlineModel | None, seq: int, signing_key: bytes) -> str:
        """Register the final model, end the run as FINISHED and wait for MLflow, at most `stop_mlflow_seconds`.

        Returns what happened, in a few words (what is still queued then is lost; the model is safe in Redis).
        """
        if self.outbox.closed:
            return "MLflow closed already"
        if not self.run_requested:
            self.outbox.close(0)
            return "no MLflow run"
        if model is not None:
            self.register(dumps_signed(model, signing_key), model, seq)
        self.outbox.submit(lambda: self.registry().end_run(self._run()))
        if self.outbox.close(self.settings.stop_mlflow_seconds):
            version = f"last version {self.last_version}" if self.last_version else "no version registered"
            return f"MLflow run {self.run_id} FINISHED, {version}"
        left = self.outbox.status()
        return (f"MLflow: {left['pending']} job(s) not delivered within {self.settings.stop_mlflow_seconds:g} s "
                f"({left['last_error']})")

    def _run(self) -> str:
        if self.run_id is None:
            raise RuntimeError("the MLflow run is not created yet")
        return self.run_id

    def status(self) -> dict[str, Any]:
        """MLflow health as the learner sees it, for /status."""
        return {
            **self.outbox.status(),
            "tracking_uri": _redacted(self.settings.tracking_uri()),
            "run_id": self.run_id,
            "continued_from": self.continued_from.version if self.continued_from else None,
            "restore_error": self.restore_error,
            "last_version": self.last_version,
            "champion_version": self.champion_version,
        }


def _redacted(uri: str) -> str:
    """`uri` without its user:password part.

    >>> _redacted("https://me:secret@mlflow.example:5000/x")
    'https://mlflow.example:5000/x'
    """
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
