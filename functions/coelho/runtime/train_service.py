"""The `train` function: start, follow and stop batch trainings; list runs, their figures and comparisons.

Routes (JSON errors name every bad field, see `coelho.runtime.asgi.problem_body`):

- `POST /`: a training request as JSON (`{"use_case", "sample_frac"?, "max_rows"?, "since"?, "until"?, "k"?}`)
  or a CloudEvent (binary or structured) of type `io.coelho.train.requested.v1` carrying it (or a PingSource tick
  or a learner's drift detection, `coelho.core.train_request.EVENT_TYPES`). The function
  takes the use case's training lock (409 naming the running training when taken), checks the rows (422
  naming the block and its row count), opens the MLflow run (503 when MLflow is unreachable) and starts
  `coelho train` as a child process with that run, lock and Delta version → 202 `{use_case, run_id, state}`;
- `GET /status?use_case=`: the training's progress, from Redis (so a JobSink's Job shows too);
- `POST /stop?use_case=` → 202 `{stopping, run_id}`, 404 when nothing runs;
- `GET /runs?use_case=`, `GET /diagnostics?use_case=&run_id=[&name=]`, `GET /comparison?use_case=[&run_id=]`;
- `GET /metrics`: Prometheus, including the `coelho_training_*` metrics read from Redis; `GET /healthz`.
"""

from __future__ import annotations

import collections
import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import flask
from cloudevents.http import from_http
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from coelho.adapters.training_state import DURATION_BUCKETS, OUTCOMES, TrainingState
from coelho.config import Settings
from coelho.core.schema import Problem
from coelho.core.train_request import (
    USE_CASE_KEYS,
    InvalidTrainRequest,
    TrainRequest,
    parse_train_request,
    request_from_event,
)
from coelho.runtime.services import Service, reject
from coelho.runtime.warm_start import ForkedTraining, WarmStarter

__all__ = ["TrainService", "idle_status"]

log = logging.getLogger("coelho.functions")

#: How long the function's stop waits for its trainings to end their runs.
STOP_TRAININGS_S = 8.0
#: Artifacts kept in memory (they never change once logged).
ARTIFACT_CACHE = 64


def idle_status(use_case: str) -> dict[str, Any]:
    """The status of a use case that never trained."""
    return {"use_case": use_case, "state": "idle", "run_id": None, "stage": None, "percent": 0.0, "message": "",
            "log": [], "started_at": None, "finished_at": None, "error": None}


class TrainingCollector(Collector):
    """The `coelho_training_*` metrics, read from Redis at each scrape (the trainings may run in Jobs)."""

    def __init__(self) -> None:
        self.states: Callable[[], dict[str, TrainingState]] = dict

    def collect(self) -> Iterator[Any]:
        runs = CounterMetricFamily("coelho_training_runs", "Batch trainings ended, by outcome.",
                                   labels=["use_case", "outcome"])
        duration = HistogramMetricFamily("coelho_training_duration_seconds", "Wall time of whole batch trainings.",
                                         labels=["use_case"])
        progress = GaugeMetricFamily("coelho_training_progress_ratio", "Progress (0..1) of the running training.",
                                     labels=["use_case"])
        success = GaugeMetricFamily("coelho_training_last_success_timestamp_seconds",
                                    "Unix time the last batch training finished and registered a model.",
                                    labels=["use_case"])
        for key, state in self.states().items():
            try:
                stats, status = state.stats(), state.read_status() or {}
            except Exception as exc:  # noqa: BLE001 - Redis away: the other metrics still scrape
                log.warning("training metrics of %s unavailable: %s", key, exc)
                continue
            for outcome in OUTCOMES:
                runs.add_metric([key, outcome], stats.get(f"runs:{outcome}", 0.0))
            buckets = [(f"{bound:g}", stats.get(f"duration:le:{bound:g}", 0.0)) for bound in DURATION_BUCKETS]
            duration.add_metric([key], buckets + [("+Inf", stats.get("duration:count", 0.0))],
                                stats.get("duration:sum", 0.0))
            running = status.get("state") == "running"
            progress.add_metric([key], float(status.get("percent") or 0.0) / 100 if running else 0.0)
            if "last_success" in stats:
                success.add_metric([key], stats["last_success"])
        yield from (runs, duration, progress, success)


_COLLECTOR = TrainingCollector()
REGISTRY.register(_COLLECTOR)


class TrainService(Service):
    """Routes the train function's requests."""

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        super().__init__(app, settings)
        self._states: dict[str, TrainingState] = {}
        _COLLECTOR.states = self.states
        self.children: dict[str, subprocess.Popen[bytes] | ForkedTraining] = {}
        self.warm = WarmStarter() if settings.train_warm_start else None
        self._prepared = False
        app.before_request(self._prepare)
        self._registries: dict[str, Any] = {}
        self._artifacts: collections.OrderedDict[tuple[str, str], Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _prepare(self) -> None:
        """On the first request, in the server's worker (the app is built before it forks): start the forkserver
        and, in the background, import and connect what `POST /` uses (the rows check, the MLflow registries),
        so that the first training request is answered as fast as the next ones."""
        if self._prepared:  # every later request: nothing to do, no lock taken
            return
        with self._lock:
            if self._prepared:
                return
            self._prepared = True
        if self.warm is not None:
            self.warm.start()
        threading.Thread(target=self._connect, name="train-prepare", daemon=True).start()

    def _connect(self) -> None:
        try:
            import coelho.runtime.trainer  # noqa: F401 - POST / checks the rows with it

            for key in USE_CASE_KEYS:
                self.registry(key)
        except Exception as exc:  # noqa: BLE001 - POST / says what is wrong when it happens
            log.warning("train: could not prepare the MLflow registries: %s", exc)

    def states(self) -> dict[str, TrainingState]:
        """Each use case's training state in Redis, connected on first use (after the server forks)."""
        with self._lock:
            if not self._states:
                self._states = {key: TrainingState.open(self.settings, key) for key in USE_CASE_KEYS}
            return self._states

    def handle(self, request: flask.Request) -> flask.Response:
        """Route one request by path and method."""
        route = request.path.rstrip("/") or "/"
        routes = {"/": ("POST", self._start), "/stop": ("POST", self._stop), "/runs": ("GET", self._runs),
                  "/diagnostics": ("GET", self._diagnostics), "/comparison": ("GET", self._comparison)}
        if route not in routes:
            reject(404, f"no route {route}; use POST /, POST /stop, GET /status, /runs, /diagnostics, /comparison")
        method, view = routes[route]
        if request.method != method:
            reject(405, f"{method} {route}", **{"Allow": method})
        return view(request)

    def stop(self) -> str:
        """Stop the trainings this function started: each child gets SIGTERM and ends its run KILLED (bounded)."""
        running = {key: child for key, child in self.children.items() if child.poll() is None}
        if not running:
            return "no training running"
        deadline = time.monotonic() + STOP_TRAININGS_S
        for child in running.values():
            child.terminate()
        for key, child in running.items():
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                log.warning("%s: training pid %d killed after %.0f s", key, child.pid, STOP_TRAININGS_S)
        return "stopped the trainings of " + ", ".join(sorted(running))

    # starting -----------------------------------------------------------------------------------------------
    def _start(self, request: flask.Request) -> flask.Response:
        if (request.content_length or 0) > self.settings.max_event_bytes:
            reject(413, f"request larger than {self.settings.max_event_bytes} bytes")
        try:
            train = parse_train_request(_request_data(request))
        except InvalidTrainRequest as exc:
            reject(400 if exc.problems[0].field in ("body", "data") else 422, "invalid training request",
                   exc.problems)
        from coelho.runtime.trainer import TooSmall, plan_training

        state = self.states()[train.use_case]
        token = uuid.uuid4().hex
        started_at = datetime.now(UTC).isoformat()
        holder = state.try_lock(token, None, started_at)
        if holder is not None:
            body = {"error": f"{train.use_case} is already training", "problems": [],
                    "running": {"use_case": train.use_case, "run_id": holder.get("run_id"),
                                "started_at": holder.get("started_at")}}
            flask.abort(flask.make_response(flask.jsonify(body), 409))
        try:
            plan = plan_training(self.settings, train, columns=[])
            run_id = self._open_run(train, started_at)
        except TooSmall as exc:
            state.unlock(token)
            reject(422, "not enough rows to train and test honestly", exc.problems)
        except Exception as exc:  # noqa: BLE001 - MLflow unreachable (or broken): nothing was started
            state.unlock(token)
            reject(503, f"MLflow unreachable at {self.settings.tracking_uri()}", detail=f"{type(exc).__name__}: {exc}",
                   **{"Retry-After": "10"})
        state.renew(token, run_id)
        state.write_status({**idle_status(train.use_case), "state": "running", "run_id": run_id, "stage": "starting",
                            "message": "starting coelho train", "started_at": started_at,
                            "request": train.as_json(), "trigger": "function"})
        self._spawn(train, run_id, token, plan.rows.version)
        return flask.make_response(flask.jsonify({"use_case": train.use_case, "run_id": run_id, "state": "running"}),
                                   202)

    def _open_run(self, train: TrainRequest, started_at: str) -> str:
        registry = self.registry(train.use_case)
        tags = {"coelho.trigger": "function", "coelho.request": json.dumps(train.as_json())}
        return str(registry.start_run(f"{train.use_case}-batch-{started_at[:19]}", tags))

    def _spawn(self, train: TrainRequest, run_id: str, token: str, version: int) -> None:
        options = [arg for name, value in train.as_json().items() if name != "use_case"
                   for arg in (f"--{name.replace('_', '-')}", str(value))]
        argv = [train.use_case, *options, "--run-id", run_id, "--lock-token", token, "--delta-version", str(version)]
        child = self._fork(argv) if self.warm is not None else None
        if child is None:  # logs go to the function's own stdout/stderr
            child = subprocess.Popen([sys.executable, "-m", "coelho.cli", "train", *argv], start_new_session=True)
        log.info("%s: training run %s started (pid %d%s)", train.use_case, run_id, child.pid,
                 ", forked warm" if isinstance(child, ForkedTraining) else "")
        self.children[train.use_case] = child
        threading.Thread(target=self._reap, args=(train.use_case, child, run_id, token), daemon=True,
                         name=f"train-reaper-{train.use_case}").start()

    def _fork(self, argv: list[str]) -> ForkedTraining | None:
        """The training forked from the warm forkserver; None (logged) when it cannot start."""
        assert self.warm is not None
        try:
            return self.warm.spawn(argv)
        except Exception as exc:  # noqa: BLE001 - a fresh process does the same, only slower to start
            log.warning("train: cannot fork a warm training (%s): starting a fresh process", exc)
            return None

    def _reap(self, use_case: str, child: subprocess.Popen[bytes] | ForkedTraining, run_id: str,
              token: str) -> None:
        """When the child exits without having said how its training ended (a crash), say it for it."""
        code = child.wait()
        try:
            self._close_after(use_case, code, run_id, token)
        except Exception as exc:  # noqa: BLE001 - Redis away: the lock expires by itself
            log.warning("%s: could not close run %s after its process exited: %s", use_case, run_id, exc)

    def _close_after(self, use_case: str, code: int, run_id: str, token: str) -> None:
        state = self.states()[use_case]
        status = state.read_status() or {}
        if status.get("run_id") == run_id and status.get("state") == "running":
            error = f"coelho train exited with code {code} without finishing its run"
            log.error("%s: %s", use_case, error)
            try:
                self.registry(use_case).end_run(run_id, "FAILED")
            except Exception as exc:  # noqa: BLE001
                log.warning("could not close run %s: %s", run_id, exc)
            state.record_outcome("failed", 0.0)
            state.finish(token, {**status, "state": "failed", "error": error,
                                 "finished_at": datetime.now(UTC).isoformat()})
        state.unlock(token)

    # following and stopping -------------------------------------------------------------------------------
    def _status_view(self) -> dict[str, Any]:
        if "use_case" not in flask.request.args:
            return {"function": self.name, "warm_start": self.warm.state if self.warm else "off",
                    "use_cases": {key: self.status(key) for key in USE_CASE_KEYS}}
        return self.status(_use_case_arg(flask.request))

    def status(self, use_case: str) -> dict[str, Any]:
        """The last status the training of `use_case` published (idle when none ever ran)."""
        state = self.states()[use_case]
        status = state.read_status()
        if status is None:
            return idle_status(use_case)
        if status.get("state") == "running" and state.holder() is None:
            status = {**status, "state": "failed", "error": "the training stopped reporting (its lock expired)"}
        return {**idle_status(use_case), **status}

    def _stop(self, request: flask.Request) -> flask.Response:
        use_case = _use_case_arg(request)
        state = self.states()[use_case]
        holder = state.holder()
        if holder is None:
            reject(404, f"no {use_case} training is running")
        run_id = holder.get("run_id")
        if run_id is None:
            reject(409, f"the {use_case} training is starting: ask again in a second", **{"Retry-After": "1"})
        state.request_stop(run_id)
        return flask.make_response(flask.jsonify({"stopping": True, "run_id": run_id}), 202)

    # runs, figures, comparisons -----------------------------------------------------------------------------
    def registry(self, use_case: str) -> Any:
        from coelho.adapters.mlflow_batch import BatchRegistry
        from coelho.core import USE_CASES

        with self._lock:
            if use_case not in self._registries:
                self._registries[use_case] = BatchRegistry(USE_CASES[use_case], self.settings.tracking_uri(),
                                                           self.settings.artifact_root())
            return self._registries[use_case]

    def _runs(self, request: flask.Request) -> flask.Response:
        use_case = _use_case_arg(request)
        return flask.jsonify({"runs": self._mlflow(lambda: self.registry(use_case).runs())})

    def _diagnostics(self, request: flask.Request) -> flask.Response:
        use_case = _use_case_arg(request)
        run_id = request.args.get("run_id") or reject(400, "run_id is required", [Problem("run_id", "is required")])
        name = request.args.get("name")
        index = self._artifact(use_case, run_id, "diagnostics/index.json")
        if name is None:
            return flask.jsonify({"use_case": use_case, "run_id": run_id, "figures": index})
        if name not in {figure["name"] for figure in index}:
            reject(404, f"run {run_id} has no figure {name!r}",
                   [Problem("name", f"must be one of {[f['name'] for f in index]}")])
        return flask.jsonify(self._artifact(use_case, run_id, f"diagnostics/{name}.json"))

    def _comparison(self, request: flask.Request) -> flask.Response:
        use_case = _use_case_arg(request)
        run_id = request.args.get("run_id") or self._mlflow(lambda: self.registry(use_case).champion_run_id())
        if run_id is None:
            reject(404, f"coelho-{use_case}-batch has no champion yet: pass run_id")
        return flask.jsonify({"use_case": use_case, "run_id": run_id,
                              **self._artifact(use_case, run_id, "comparison.json")})

    def _artifact(self, use_case: str, run_id: str, path: str) -> Any:
        from coelho.adapters.mlflow_batch import UnknownRun

        key = (run_id, path)
        with self._lock:
            if key in self._artifacts:
                self._artifacts.move_to_end(key)
                return self._artifacts[key]
        try:
            document = self._mlflow(lambda: self.registry(use_case).read_json(run_id, path))
        except UnknownRun as exc:
            reject(404, str(exc), [Problem("run_id", str(exc))])
        with self._lock:
            self._artifacts[key] = document
            while len(self._artifacts) > ARTIFACT_CACHE:
                self._artifacts.popitem(last=False)
        return document

    def _mlflow(self, call: Any) -> Any:
        from coelho.adapters.mlflow_batch import UnknownRun

        try:
            return call()
        except UnknownRun:
            raise
        except Exception as exc:  # noqa: BLE001 - MLflow down: say so, never a 500 page
            log.warning("MLflow call failed: %s", exc)
            reject(503, f"MLflow unreachable at {self.settings.tracking_uri()}", detail=f"{type(exc).__name__}: {exc}",
                   **{"Retry-After": "10"})


def _request_data(request: flask.Request) -> Any:
    """The request object: a CloudEvent's data (binary or structured mode) or the plain JSON body."""
    content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if "ce-specversion" in request.headers or content_type == "application/cloudevents+json":
        try:
            event = from_http(dict(request.headers), request.get_data())
        except Exception as exc:  # noqa: BLE001 - whatever the SDK refuses is not a CloudEvent
            raise InvalidTrainRequest([Problem("body", f"malformed CloudEvent: {exc}")]) from None
        return request_from_event(event["type"], event.data).as_json()
    data = request.get_json(silent=True)
    if data is None:
        raise InvalidTrainRequest([Problem("body", "must be a JSON object (or a CloudEvent)")])
    return data


def _use_case_arg(request: flask.Request) -> str:
    use_case = request.args.get("use_case", "")
    if use_case not in USE_CASE_KEYS:
        reject(400, "invalid use_case", [Problem("use_case", f"must be one of {list(USE_CASE_KEYS)}")])
    return use_case
