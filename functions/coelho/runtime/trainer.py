"""One batch training, from a committed Delta version to a registered `coelho-<uc>-batch` version.

`run_training` is what `coelho train` runs (in the foreground, as the `train` function's child process, or
as a JobSink's Kubernetes Job). It takes the use case's training lock in Redis (one training per use case;
a second one gets `AlreadyTraining` naming the first), opens the MLflow run (failing fast when MLflow is
unreachable), publishes progress to Redis every half second (so the `train` function's `/status` works for
a Job as for a child) and polls for a stop request, which ends the training within about a second and
marks the run KILLED without registering anything.

`Trainer.run` is the training itself, in stages:

1. **loading**: read the Delta version (`plan_training`: filters, sample, max rows, split by event time,
   block sizes and classes checked) and build each block's features with the use case's one feature
   function, chunk by chunk; record the split, the table version and per-block digests in the run;
2. **training**: CatBoost with early stopping on the validation block, or the KMeans K search
   (`coelho.runtime.batch_fit`); the test block is not touched;
3. **evaluating**: the test metrics, once;
4. **comparing**: the online model on the same test rows (`batch_evaluate.compare_with_online`);
5. **diagnostics**: the figures, as plotly JSON and PNG;
6. **registering**: metrics, curves, comparison, figures and the model logged; a new version registered
   and the `champion` alias re-evaluated by the champion rule on the test block.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from coelho.adapters.training_data import NoTrainingData, TrainingRows, read_rows
from coelho.adapters.training_state import TrainingState
from coelho.config import Settings
from coelho.core import USE_CASES, OnlineModel
from coelho.core.batch import BATCH_SPECS, Encoder, FeatureBuilder, feature_columns, feature_inputs
from coelho.core.batch_metrics import best_threshold, nearest_centre
from coelho.core.champion import test_window
from coelho.core.progress import Progress, Stopped
from coelho.core.schema import Problem
from coelho.core.split import Split, iso_from_us, missing_classes, time_split, too_small
from coelho.core.train_request import TrainRequest
from coelho.core.usecase import UseCase
from coelho.runtime.batch_fit import FitOptions, fit_catboost, k_search

__all__ = ["AlreadyTraining", "Plan", "TooSmall", "TrainOutcome", "Trainer", "TrainingFailed", "fit_options",
           "outcome_json", "plan_training", "run_training", "training_columns"]

log = logging.getLogger(__name__)

#: How often progress goes to Redis (and the lock is renewed, and a stop request looked for).
REPORT_S = 0.5
#: Raw fields the diagnostics group the test block's errors by (ETA: day, hour and weather of each trip).
RAW_FIELDS = {"regressor": ("day_of_week", "hour_of_day", "weather")}


def training_columns(use_case: UseCase) -> list[str]:
    """The table columns a training reads (with the label, the label delay and the sort keys `plan_training` and
    `read_rows` add): the features' inputs — `timestamp` comes from `event_time` —, the id and the raw fields the
    diagnostics use. Complete events, where a model wants them, read the other columns for their rows only."""
    inputs = [name for name in feature_inputs(use_case) if name != "timestamp"]
    return [*inputs, use_case.id_field, *RAW_FIELDS.get(BATCH_SPECS[use_case.key].model, ())]


class TrainingFailed(RuntimeError):
    """The training cannot go on; the message says why (exit code 1)."""


class TooSmall(TrainingFailed):
    """The selected rows cannot make an honest split: too few rows in a block, or a class missing."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


class AlreadyTraining(RuntimeError):
    """The use case is training already; `holder` is that training's lock (run_id, started_at)."""

    def __init__(self, use_case: str, holder: Mapping[str, Any]) -> None:
        super().__init__(f"{use_case} is already training (run {holder.get('run_id')}, started "
                         f"{holder.get('started_at')})")
        self.holder = dict(holder)


def fit_options(settings: Settings) -> FitOptions:
    """The fit's knobs from the settings."""
    return FitOptions(iterations=settings.train_iterations, early_stopping_rounds=settings.train_early_stopping,
                      threads=settings.train_threads or -1, k_range=settings.train_k_range)


def gap_seconds(settings: Settings, use_case: UseCase) -> float:
    """COELHO_TRAIN_GAP_SECONDS, else the use case's default (at least its label delay)."""
    gap = settings.train_gap_seconds
    return BATCH_SPECS[use_case.key].gap_seconds if gap is None else gap


@dataclass
class Plan:
    """The rows a training uses and their split."""

    rows: TrainingRows
    split: Split

    def describe(self) -> dict[str, Any]:
        return {**self.split.describe(), "delta_version": self.rows.version, "delta_uri": self.rows.uri,
                "selected_rows": self.rows.rows}


def plan_training(settings: Settings, request: TrainRequest, version: int | None = None,
                  columns: Sequence[str] | None = None) -> Plan:
    """Select and split the rows; raise TooSmall naming each block that cannot be trained or scored on."""
    use_case = USE_CASES[request.use_case]
    delay = BATCH_SPECS[use_case.key].label_delay_seconds
    if columns is not None:
        columns = [*columns, *(name for name in (use_case.label_field, delay) if name)]
    try:
        rows = read_rows(settings, use_case, request, version, columns)
    except NoTrainingData as exc:
        raise TooSmall([Problem("table", str(exc))]) from None
    times = rows.times_us()
    label_times = None if delay is None else times + np.asarray(rows.column(delay), dtype=np.int64) * 1_000_000
    split = time_split(times, gap_seconds(settings, use_case), label_times_us=label_times)
    problems = [Problem(message.split(" ", 1)[0], message) for message in too_small(split, settings.train_min_rows)]
    if not problems and use_case.task == "classification" and use_case.label_field:
        labels = rows.column(use_case.label_field)
        problems = [Problem(m.split(" ", 1)[0], m) for m in missing_classes(split, labels, use_case.label_field)]
    if problems:
        raise TooSmall(problems)
    return Plan(rows, split)


@dataclass
class TrainOutcome:
    """How a training ended."""

    state: str  # finished | failed | killed
    run_id: str | None
    version: int | None = None
    champion: int | None = None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)


class Trainer:
    """One training of one use case into one (already created) MLflow run."""

    def __init__(self, settings: Settings, request: TrainRequest, registry: Any, run_id: str, progress: Progress,
                 delta_version: int | None = None, plan: Plan | None = None) -> None:
        self.settings = settings
        self.request = request
        self.use_case = USE_CASES[request.use_case]
        self.kind = BATCH_SPECS[self.use_case.key].model
        self.registry = registry
        self.run_id = run_id
        self.progress = progress
        self.delta_version = delta_version
        self.plan = plan  # the rows already read and split (else read at `delta_version`)
        self.options = fit_options(settings)
        self.columns = feature_columns(self.use_case)

    def run(self) -> TrainOutcome:
        """Train, evaluate, compare, draw and register; raise Stopped on a stop request."""
        from coelho.adapters.figure_png import png_bytes
        from coelho.runtime.batch_evaluate import TestBlock, compare_with_online, diagnostics, test_metrics
        from coelho.runtime.history import scalar_metrics

        p, uc, registry = self.progress, self.use_case, self.registry
        p.enter("loading", f"reading {self.settings.delta_uri(uc.key)} (request {self.request.as_json()})")
        plan = self.plan or plan_training(self.settings, self.request, self.delta_version, training_columns(uc))
        rows, split = plan.rows, plan.split
        p.log(f"Delta version {rows.version}: {rows.rows} rows selected; train {split.train.rows}, validation "
              f"{split.validation.rows}, test {split.test.rows}, {split.dropped} in the gaps of "
              f"{split.gap_seconds:g} s, {split.purged} purged (label not known before the next block)")
        registry.set_tags(self.run_id, {"coelho.delta_version": rows.version, "coelho.delta_uri": rows.uri,
                                        "coelho.split": json.dumps(split.describe())})
        frames, labels, test_ids = self.features(rows, split)
        registry.log_inputs(self.run_id, rows.uri, rows.version,
                            {b.name: {"rows": b.rows, "digest": rows.digest(b.indices)} for b in split.blocks})
        params = self._base_params(plan)

        p.enter("training", f"fitting on {split.train.rows} rows, validating on {split.validation.rows}")
        if self.kind == "kmeans":
            batch, curves, extra, k_scores, evals, best_iteration = self._fit_kmeans(frames)
        else:
            batch, curves, extra, evals, best_iteration = self._fit_catboost(frames, labels)
            k_scores = None
        params.update(extra)
        registry.log_params(self.run_id, params)
        p.check()

        p.enter("evaluating", f"scoring the test block once ({split.test.rows} rows)")
        test_frame = frames["test"]
        block = TestBlock(test_frame, labels.get("test"), np.empty(0), test_ids, self._raw(rows, split))
        if self.kind == "kmeans":
            assert batch.encoder is not None
            block.x = batch.encoder.transform(test_frame)
            block.scores, block.squared_distances = nearest_centre(block.x, batch.centres)
        else:
            block.scores = batch.scores(test_frame)
        metrics = test_metrics(batch, block)
        rule = uc.champion
        p.log(f"test {rule.metric} {metrics.get(rule.metric)}")

        p.enter("comparing", "scoring the online model on the same test rows")
        compared = min(split.test.rows, self.settings.train_compare_rows)
        events = [e for chunk in rows.events(split.test.indices[:compared]) for e in chunk]
        online, info = self._online_model(split.test.first_us)
        described = info.get("reason") or f"{info.get('model')} version {info.get('version')}"
        p.step(0.2, f"online model: {described}", log=True)
        comparison = compare_with_online(batch, block, events, online, info)

        p.enter("diagnostics", "drawing the diagnostic figures")
        figures = diagnostics(batch, block, evals, best_iteration, k_scores, p.check)
        pngs = {}
        for index, figure in enumerate(figures):
            p.check()
            pngs[figure.name] = png_bytes(figure.figure)
            p.step((index + 1) / len(figures), f"figure {figure.name}")

        p.enter("registering", f"logging to MLflow run {self.run_id}")
        now = int(time.time() * 1000)
        registry.log_metrics(self.run_id, scalar_metrics(metrics), now)
        registry.log_curves(self.run_id, curves, now)
        registry.log_comparison(self.run_id, comparison)
        registry.log_figures(self.run_id, figures, pngs)
        p.check()  # the last point where a stop leaves nothing registered
        score = metrics.get(rule.metric)
        version = registry.register(self.run_id, batch, {
            "coelho.score": str(score), "coelho.window": str(test_window(rule)),
            "coelho.test_rows": str(split.test.rows), "coelho.run_id": self.run_id,
            "coelho.delta_version": str(rows.version)})
        champion = registry.update_champion()
        p.enter("finished", f"registered {registry.name} version {version} (test {rule.metric} {score}); "
                            f"champion: {'none eligible' if champion is None else f'version {champion}'}")
        p.log("seconds per stage: " + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in p.seconds.items()))
        registry.log_metrics(self.run_id, {f"stage_seconds.{k}": v for k, v in p.seconds.items()}, now)
        return TrainOutcome("finished", self.run_id, version, champion, metrics=metrics, stage_seconds=dict(p.seconds))

    # loading ------------------------------------------------------------------------------------------------
    def features(self, rows: TrainingRows, split: Split) -> tuple[dict[str, Any], dict[str, np.ndarray], list[str]]:
        """Each block's feature frame (and labels) from its rows, the formulas over columns; the test block's ids."""
        p, uc = self.progress, self.use_case
        total, done = sum(b.rows for b in split.blocks), 0
        frames, labels = {}, {}
        for block in split.blocks:
            builder = FeatureBuilder(uc)
            for chunk in rows.chunks(block.indices):
                p.check()
                builder.add(chunk)
                done += len(chunk)
                p.step(done / total, f"features of {done}/{total} rows ({block.name} block)")
            frames[block.name] = builder.frame()
            if uc.label_field:
                labels[block.name] = rows.values(uc.label_field, block.indices).astype(
                    float if self.kind == "regressor" else int)
        return frames, labels, [str(i) for i in rows.column(uc.id_field, split.test.indices)]

    def _raw(self, rows: TrainingRows, split: Split) -> dict[str, list[Any]]:
        """Raw fields the diagnostics group errors by (ETA: day, hour and weather of each test trip)."""
        return {name: rows.column(name, split.test.indices) for name in RAW_FIELDS.get(self.kind, ())}

    def _base_params(self, plan: Plan) -> dict[str, Any]:
        split = plan.split
        return {
            "use_case": self.use_case.key, "model_kind": self.kind, **{f"request.{k}": v for k, v in
                                                                       self.request.as_json().items()},
            "delta.uri": plan.rows.uri, "delta.version": plan.rows.version,
            "split.method": "event time: train | gap | validation | gap | test",
            "split.gap_seconds": split.gap_seconds, "split.fractions": list(split.fractions),
            "split.label_delay": BATCH_SPECS[self.use_case.key].label_delay_seconds or "none (known with the event)",
            "split.min_rows": self.settings.train_min_rows,
            **{f"split.{b.name}_rows": b.rows for b in split.blocks},
            **{f"split.{b.name}_from": b.time_range()[0] for b in split.blocks},
            **{f"split.{b.name}_to": b.time_range()[1] for b in split.blocks},
            "features": list(self.columns.names), "features.categorical": list(self.columns.categorical),
            "features.source": f"coelho.core.{self.use_case.key}.formulas (the online models' feature definition)",
        }

    # fitting ------------------------------------------------------------------------------------------------
    def _fit_catboost(self, frames: dict[str, Any], labels: dict[str, np.ndarray]) -> tuple:
        from coelho.adapters.batch_model import BatchModel

        model = fit_catboost(self.kind, self.columns, frames["train"], labels["train"], frames["validation"],
                             labels["validation"], self.options, self.progress)
        threshold = None
        if self.kind == "classifier":
            threshold = best_threshold(labels["validation"], model.predict_proba(frames["validation"])[:, 1])
            self.progress.log(f"decision threshold {threshold:.4f} (best FBeta on the validation block)")
        evals = model.get_evals_result()
        curves = {f"{block}.{metric}": {i + 1: value for i, value in enumerate(values)}
                  for block, metrics in evals.items() for metric, values in metrics.items()}
        params = {f"catboost.{k}": v for k, v in model.get_all_params().items()}
        params.update({"catboost.best_iteration": model.get_best_iteration(), "decision_threshold": threshold})
        return BatchModel(self.use_case, model, threshold=threshold), curves, params, evals, model.get_best_iteration()

    def _fit_kmeans(self, frames: dict[str, Any]) -> tuple:
        from coelho.adapters.batch_model import BatchModel

        encoder = Encoder.fit(self.columns, frames["train"])
        x_train, x_validation = encoder.transform(frames["train"]), encoder.transform(frames["validation"])
        low, high = self.options.k_range
        ks = [self.request.k] if self.request.k else list(range(low, high + 1))
        search = k_search(x_train, x_validation, ks, self.progress)
        assert search.best is not None
        self.progress.log(f"chosen K = {search.best}")
        curves = {f"k_search.{metric}": {k: scores[metric] for k, scores in search.scores.items()
                                         if scores.get(metric) is not None}
                  for metric in ("Silhouette", "CalinskiHarabasz", "DaviesBouldin", "Inertia")}
        params = {f"kmeans.{k}": v for k, v in search.model.get_params().items()}
        params.update({"kmeans.k_range": ks, "kmeans.chosen_k": search.best, "encoder.max_levels": 8,
                       "encoder.dimensions": len(encoder.output_names()), "encoder.numeric": "standardised",
                       "encoder.categorical": "one-hot of the 8 most frequent values + other"})
        return BatchModel(self.use_case, search.model, encoder=encoder), curves, params, search.scores, None, None

    # the online model -------------------------------------------------------------------------------------------
    def _online_model(self, test_start_us: int | None) -> tuple[OnlineModel | None, dict[str, Any]]:
        """The online model as it was before the test block: the champion if it learned only earlier events, else
        the newest version that did; None (with the reason) when there is none or MLflow cannot say."""
        from coelho.runtime.history import open_registry

        try:
            registry = open_registry(self.use_case, self.settings)
            tags = registry.version_tags()
            champion = registry.champion_version()
        except Exception as exc:  # noqa: BLE001 - the comparison is extra: the training goes on without it
            return None, {"reason": f"online registry unavailable: {type(exc).__name__}: {exc}"[:300]}
        start = iso_from_us(test_start_us)

        def before_test(version: int) -> bool:
            watermark = tags[version].get("coelho.last_event_time")
            return bool(watermark and start and datetime.fromisoformat(watermark) < datetime.fromisoformat(start))

        if champion is not None and before_test(champion):
            choice, why = champion, "the champion (it learned only events before the test block)"
        else:
            earlier = [v for v in tags if before_test(v)]
            if not earlier:
                return None, {"model": registry.name, "reason": f"no version of {registry.name} learned only events "
                              f"before the test block (from {start}): an online model that saw the test rows "
                              "cannot be scored on them"}
            choice, why = max(earlier), "the newest version that learned only events before the test block"
        try:
            loaded = registry.load_version(choice)
        except Exception as exc:  # noqa: BLE001
            return None, {"model": registry.name, "reason": f"version {choice} could not be loaded: {exc}"[:300]}
        return loaded.model, {"model": registry.name, "version": choice, "choice": why, "champion": champion,
                              "watermark": tags[choice].get("coelho.last_event_time"),
                              "events_applied": loaded.model.events_applied, "reason": None}


class _Reporter(threading.Thread):
    """Publishes progress to Redis every REPORT_S, renews the lock and turns a stop request into `progress.stop`."""

    def __init__(self, state: TrainingState, progress: Progress, token: str, status: dict[str, Any]) -> None:
        super().__init__(name=f"train-report-{status['use_case']}", daemon=True)
        self.state = state
        self.progress = progress
        self.token = token
        self.status = status
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(REPORT_S):
            self.publish()

    def publish(self, **final: Any) -> None:
        status = {**self.status, **self.progress.snapshot(), **final}
        try:
            if final:  # the last status and the lock's release together: "finished" means the next may start
                self.state.finish(self.token, status)
                return
            self.state.write_status(status)
            if not self.state.renew(self.token):
                self.progress.log("the training lock was lost (another training may have started): stopping")
                self.progress.stop.set()
            if self.status.get("run_id") and self.state.stop_requested(self.status["run_id"]):
                if not self.progress.stop.is_set():
                    self.progress.log("stop requested")
                self.progress.stop.set()
        except Exception as exc:  # noqa: BLE001 - Redis away for a moment: the training goes on
            log.warning("could not publish the training status: %s", exc)

    def finish(self, **final: Any) -> None:
        self._done.set()
        if self.is_alive():
            self.join()
        self.publish(**final)


def run_training(settings: Settings, request: TrainRequest, progress: Progress | None = None, *,
                 run_id: str | None = None, lock_token: str | None = None, delta_version: int | None = None,
                 trigger: str = "cli") -> TrainOutcome:
    """One training under the use case's lock; returns how it ended.

    Raises TooSmall (checked first, before anything is created, when `delta_version` is not given: the rows
    are then read once, here) and AlreadyTraining.
    """
    from coelho.adapters.mlflow_batch import BatchRegistry

    progress = progress or Progress()
    use_case = USE_CASES[request.use_case]
    started = time.monotonic()
    plan = None
    progress.enter("starting", f"{request.use_case} training requested: {request.as_json()}")
    if delta_version is None:  # read and check the rows before anything is created; then train on exactly them
        progress.log(f"reading and checking the rows of {settings.delta_uri(use_case.key)}")
        plan = plan_training(settings, request, columns=training_columns(use_case))
        delta_version = plan.rows.version
    state = TrainingState.open(settings, use_case.key)
    started_at = datetime.now(UTC).isoformat()
    token = lock_token or uuid.uuid4().hex
    if lock_token is None:
        holder = state.try_lock(token, run_id, started_at)
        if holder is not None:
            raise AlreadyTraining(use_case.key, holder)
    elif not state.renew(token, run_id):
        raise TrainingFailed(f"the {use_case.key} training lock is not held by this training")
    status = {"use_case": use_case.key, "state": "running", "run_id": run_id, "started_at": started_at,
              "finished_at": None, "error": None, "request": request.as_json(), "trigger": trigger}
    reporter = _Reporter(state, progress, token, status)
    outcome = TrainOutcome("failed", run_id)
    registry = None
    try:
        reporter.publish()
        progress.log(f"connecting to MLflow at {settings.tracking_uri()}")
        if not settings.mlflow:
            raise TrainingFailed("MLflow is off (COELHO_MLFLOW=off): a batch run needs MLflow to record and serve it")
        registry = BatchRegistry(use_case, settings.tracking_uri(), settings.artifact_root())
        try:
            registry.experiment_id()
            if run_id is None:
                tags = {"coelho.trigger": trigger, "coelho.request": json.dumps(request.as_json())}
                run_id = registry.start_run(f"{use_case.key}-batch-{started_at[:19]}", tags)
        except Exception as exc:
            raise TrainingFailed(f"MLflow unreachable at {settings.tracking_uri()}: {type(exc).__name__}: "
                                 f"{str(exc)[:300]}") from exc
        status["run_id"] = outcome.run_id = run_id
        state.renew(token, run_id)
        progress.log(f"MLflow run {run_id}")
        reporter.start()
        outcome = Trainer(settings, request, registry, run_id, progress, delta_version, plan).run()
    except Stopped:
        outcome = TrainOutcome("killed", run_id, error="stopped on request; nothing registered")
        progress.log("stopped: run KILLED, nothing registered")
    except Exception as exc:  # noqa: BLE001 - the run and the status say what went wrong
        if isinstance(exc, TrainingFailed):
            log.error("%s training failed: %s", use_case.key, exc)
        else:
            log.exception("%s training failed", use_case.key)
        outcome = TrainOutcome("failed", run_id, error=f"{type(exc).__name__}: {exc}"[:1000])
        progress.log(f"failed: {outcome.error}")
    finally:
        outcome.seconds = time.monotonic() - started
        if registry is not None and run_id is not None:
            try:
                registry.end_run(run_id, {"finished": "FINISHED", "killed": "KILLED"}.get(outcome.state, "FAILED"))
            except Exception as exc:  # noqa: BLE001 - MLflow gone: the status still says how it ended
                log.warning("could not close run %s: %s", run_id, exc)
        state.record_outcome(outcome.state, outcome.seconds)
        reporter.finish(state=outcome.state, finished_at=datetime.now(UTC).isoformat(), error=outcome.error,
                        run_id=run_id, version=outcome.version, champion=outcome.champion,
                        percent=100.0 if outcome.state == "finished" else progress.percent)
    return outcome


def outcome_json(outcome: TrainOutcome) -> dict[str, Any]:
    """The outcome as JSON (the CLI prints it)."""
    return {k: v for k, v in asdict(outcome).items() if k != "metrics"} | {
        "metrics": {k: v for k, v in outcome.metrics.items() if not isinstance(v, dict)}}
