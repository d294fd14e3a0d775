"""The glue between functions-framework's Flask entry points and the predictor and delta-sink.

functions-framework executes a function's `main.py` inside the Flask application context, so an
entry point calls `PredictService.mount(flask.current_app)` (or `SinkService`) at import time.
That sets the request-size limit, JSON error handlers and the operational routes
`GET /status`, `GET /metrics` and `GET /healthz`, counts every request in the function's RED
metrics, and returns the object whose `handle` the decorated target calls. The use case is the
target's prefix (`tfd_predict` → `tfd`). The learn functions are ASGI targets
(`coelho.runtime.learn_service`); both kinds share the helpers here.

Every service takes part in the process's stop (`coelho.runtime.lifecycle`): while it drains, requests
but `GET /status` and `/metrics` get a JSON 503 with `Retry-After`, and its `stop` hook says what it did.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, NoReturn

import flask
from cloudevents import exceptions as ce_errors
from cloudevents.http import CloudEvent
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from coelho.adapters.embedded_redis import resolve_redis_url
from coelho.adapters.redis_state import RedisState
from coelho.config import Settings
from coelho.core import USE_CASES, use_case_for_type
from coelho.core.schema import Problem
from coelho.core.usecase import UseCase
from coelho.runtime import telemetry
from coelho.runtime.asgi import problem_body
from coelho.runtime.lifecycle import LIFECYCLE, RETRY_AFTER_S, Draining
from coelho.runtime.predictor import NoModel, Predictor
from coelho.runtime.telemetry import PredictionMetrics, RequestMetrics, Sample

__all__ = ["PredictService", "Service", "SinkService", "event_payload", "open_state", "predict_payload", "reject",
           "target_use_case", "version_arg"]

log = logging.getLogger("coelho.functions")

#: Requests that are answered while the function stops.
OPERATIONAL_PATHS = ("/status", "/metrics")


def reject(status: int, error: str, problems: Iterable[Problem] = (), **headers: str) -> NoReturn:
    """Stop the request with a JSON error body naming every problem."""
    response = flask.make_response(flask.jsonify(problem_body(error, problems)), status)
    response.headers.update(headers)
    flask.abort(response)


class Service:
    """Shared wiring: settings, logging, JSON error bodies, GET /status, /metrics and /healthz, a lazy engine."""

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        self.name = app.name
        self.settings = settings
        self._build_lock = threading.Lock()
        self._engine: Any = None
        self.requests = RequestMetrics(self.name)
        telemetry.configure_logging(settings.log_level)
        app.before_request(_start_clock)
        app.after_request(self._count_request)
        app.register_error_handler(400, _json_http_error)
        app.register_error_handler(413, _json_http_error)
        app.register_error_handler(500, _json_http_error)  # never the framework's text page
        app.register_error_handler(ce_errors.GenericException, _malformed_cloudevent)
        app.add_url_rule("/status", "coelho_status", self._status_view, methods=["GET"])
        app.add_url_rule("/metrics", "coelho_metrics", _metrics_view, methods=["GET"])
        app.add_url_rule("/healthz", "coelho_healthz", self._healthz_view, methods=["GET"])
        app.before_request(self._admit)
        app.teardown_request(self._release)
        LIFECYCLE.install()
        LIFECYCLE.on_stop(self.name, self.stop, self.begin_stop)

    @classmethod
    def mount(cls, app: flask.Flask, settings: Settings | None = None) -> Any:
        """Attach a service to the app functions-framework is building."""
        return cls(app, settings or Settings.from_env())

    def engine(self) -> Any:
        """What serves the requests, built on first use (after the server forks; it may connect somewhere)."""
        if self._engine is None:
            with self._build_lock:
                if self._engine is None:
                    self._engine = self._build_engine()
        return self._engine

    def _build_engine(self) -> Any:
        raise NotImplementedError

    def _count_request(self, response: flask.Response) -> flask.Response:
        started = flask.g.get("coelho_started")
        if started is not None:
            request = flask.request
            self.requests.observe(request.path, request.method, response.status_code, time.perf_counter() - started)
        return response

    def health(self) -> dict[str, Any]:
        """Readiness: `ok` unless the function cannot do its job (GET /healthz answers 503 then)."""
        return {"ok": True}

    def _healthz_view(self) -> tuple[dict[str, Any], int]:
        health = self.health()
        return health, 200 if health["ok"] else 503

    def begin_stop(self) -> None:
        """The process begins to stop (before the requests in flight finish)."""

    def stop(self) -> str:
        """Clean up once the requests in flight are done; returns what was done."""
        return "nothing to clean up"

    def _admit(self) -> None:
        if (flask.request.path.rstrip("/") or "/") in OPERATIONAL_PATHS:
            return
        try:
            LIFECYCLE.enter()
        except Draining as exc:
            reject(503, str(exc), **{"Retry-After": str(RETRY_AFTER_S)})
        flask.g.coelho_in_flight = True

    def _release(self, _exc: BaseException | None) -> None:
        if flask.g.pop("coelho_in_flight", False):
            LIFECYCLE.leave()

    def _status_view(self) -> dict[str, Any]:
        raise NotImplementedError

    def _accept_cloudevents(self, app: flask.Flask) -> None:
        """Limit the request size, and answer a POST that is not a CloudEvent with 400 (never retried)."""
        app.config["MAX_CONTENT_LENGTH"] = self.settings.max_event_bytes
        # A POST that is not a CloudEvent makes the framework try a legacy conversion that ends
        # in 415; for a CloudEvent endpoint that is a malformed request (400, never retried).
        app.register_error_handler(415, _malformed_cloudevent)


def target_use_case(target: str) -> UseCase:
    """The use case a target serves: its prefix (`tfd_learn` → tfd)."""
    key = target.split("_", 1)[0]
    if key not in USE_CASES:
        raise ValueError(f"target {target!r} does not start with a use case {sorted(USE_CASES)}")
    return USE_CASES[key]


def open_state(settings: Settings, use_case: UseCase) -> RedisState:
    """The use case's model state in Redis (an embedded Valkey when REDIS_URL is unset)."""
    url = resolve_redis_url(settings.redis_url, settings.data_dir)
    return RedisState.from_url(url, settings.key_prefix, use_case.key)


def event_payload(event: CloudEvent, use_case: UseCase | None, type_problem: str) -> tuple[Any, list[Problem]]:
    """The CloudEvent's JSON data and every problem with it; `use_case` None: its type is not accepted here."""
    problems: list[Problem] = []
    if use_case is None:
        problems.append(Problem("type", type_problem))
    data = event.data
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            problems.append(Problem("data", "must be a JSON object"))
    if not problems and use_case is not None:
        problems = use_case.schema.validate(data)
    return data, problems


class PredictService(Service):
    """Validates raw events posted as JSON and answers with the live model's prediction.

    The use case is the target's prefix; the model is the learner's, read from Redis.
    """

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        super().__init__(app, settings)
        self.use_case = target_use_case(self.name)
        self.predictions = PredictionMetrics(self.name, self.use_case.key)
        app.add_url_rule("/versions", "coelho_versions", lambda: self.engine().versions.listing(), methods=["GET"])

    def _build_engine(self) -> Predictor:
        """The predictor of the use case's state in Redis."""
        return Predictor(self.use_case, open_state(self.settings, self.use_case), self.settings)

    def _status_view(self) -> dict[str, Any]:
        return {"function": self.name, **self.engine().status()}

    def health(self) -> dict[str, Any]:
        """Ready while it can answer: Redis reachable, or a model held to answer from."""
        return self.engine().health()

    def handle(self, request: flask.Request) -> flask.Response:
        """POST one raw event (label optional) → prediction, model_version, model_source; `?version=N` asks
        registered MLflow version N instead of the live model (GET /versions lists them)."""
        started = time.perf_counter()
        payload = predict_payload(self, request)
        version = version_arg(request)
        predictor = self.engine()
        try:
            result = predictor.predict(payload) if version is None else predictor.versions.predict(version, payload)
        except NoModel as exc:
            telemetry.PREDICTIONS.labels(self.name, "no_model").inc()
            reject(503, str(exc), **{"Retry-After": "5"})
        except LookupError as exc:
            telemetry.PREDICTIONS.labels(self.name, "no_model").inc()
            reject(404, str(exc), [Problem("version", str(exc))])
        if version is None:  # the live model's quality and staleness, not a version asked for
            self.predictions.observe(result, time.monotonic() - predictor.refreshed_at)
        telemetry.PREDICTIONS.labels(self.name, "ok").inc()
        telemetry.PREDICT_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        if version is None:  # the gauge follows the model served by default, not a version asked for
            telemetry.MODEL_VERSION.labels(self.name).set(result["model_version"])
        return flask.jsonify(result)


def predict_payload(service: Service, request: flask.Request) -> Any:
    """The raw event of a predict request (label optional), or the request refused: 405, 413, 422 naming each field."""
    if request.method != "POST":
        reject(405, "POST one event as JSON", **{"Allow": "POST"})
    # Checked by hand: the framework re-reads the body after the response, which a Flask
    # MAX_CONTENT_LENGTH would turn into a second error.
    if (request.content_length or 0) > service.settings.max_event_bytes:
        reject(413, f"event larger than {service.settings.max_event_bytes} bytes")
    payload = request.get_json(silent=True)
    use_case: UseCase = service.use_case  # type: ignore[attr-defined]
    problems = use_case.schema.validate(payload, optional=use_case.optional_for_predict)
    if problems:
        telemetry.PREDICTIONS.labels(service.name, "rejected").inc()
        reject(422, "invalid event", problems)
    return payload


def version_arg(request: flask.Request) -> int | None:
    """The optional `?version=N` of a predict request (a registered MLflow version)."""
    raw = request.args.get("version")
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        reject(400, "invalid version", [Problem("version", "must be a registered version number (an integer >= 1)")])
    return int(raw)


class SinkService(Service):
    """delta-sink: validates CloudEvents of every use case and appends them to their Delta tables.

    The request is answered once the micro-batch holding the event is committed (2xx, also for a
    duplicate), 422 when invalid, 503 when the commit failed or took too long (the sender retries).
    After `COELHO_SINK_RECYCLE_COMMITS` commits the worker stops as for SIGTERM and gunicorn starts a fresh
    one: the deltalake library keeps native memory per commit that nothing gives back.
    """

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        super().__init__(app, settings)
        from coelho.ingest.delta_sink import Arrivals  # deltalake is imported by the sink only

        self._accept_cloudevents(app)
        self.arrivals = Arrivals()
        self.writers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._recycling = False
        self.counters = {outcome: telemetry.SINK_EVENTS.labels(self.name, outcome)
                         for outcome in ("written", "duplicate", "rejected", "unavailable")}
        telemetry.watch(self)

    def writer(self, use_case: UseCase) -> Any:
        """The `DeltaWriter` of `use_case`, created on first use (creates the table if needed)."""
        from coelho.ingest.delta_sink import DeltaWriter

        with self._lock:
            if use_case.key not in self.writers:
                self.writers[use_case.key] = DeltaWriter(use_case, self.settings, self.arrivals)
            return self.writers[use_case.key]

    def handle(self, event: CloudEvent) -> None:
        """Append one CloudEvent's row: 2xx once committed (or a duplicate), 422 when invalid, 503 to retry."""
        from coelho.ingest.delta_sink import SinkUnavailable

        ctx = f"ce-id={event['id']} ce-type={event['type']}"
        with self.arrivals:
            use_case = use_case_for_type(event["type"])
            types = ", ".join(repr(uc.event_type) for uc in USE_CASES.values())
            data, problems = event_payload(event, use_case, f"must be one of {types}")
            if problems:
                self.counters["rejected"].inc()
                log.warning("%s rejected: %s", ctx, "; ".join(f"{p.field} {p.message}" for p in problems))
                reject(422, "invalid event", problems)
            assert use_case is not None
            writer = self.writer(use_case)
        try:
            outcome = writer.submit(event["source"], event["id"], data)
        except SinkUnavailable as exc:
            self.counters["unavailable"].inc()
            log.warning("%s not committed: %s", ctx, exc)
            reject(503, f"not committed: {exc}", **{"Retry-After": "1"})
        self.counters[outcome].inc()
        self._recycle_when_due()

    def _recycle_when_due(self) -> None:
        """After `COELHO_SINK_RECYCLE_COMMITS` commits in this worker, hand over to a fresh one (see README)."""
        limit = self.settings.sink_recycle_commits
        with self._lock:
            if not limit or self._recycling:
                return
            commits = sum(writer.stats["commits"] for writer in self.writers.values())
            if commits >= limit:
                self._recycling = LIFECYCLE.recycle(f"recycled after {commits} commits")

    def _status_view(self) -> dict[str, Any]:
        return {"function": self.name, "tables": {key: writer.status() for key, writer in self.writers.items()}}

    def metric_samples(self) -> list[Sample]:
        """Each writer's counters as state metrics (`telemetry.STATE_METRICS`)."""
        names = {"rows": "coelho_sink_rows_total", "commits": "coelho_sink_commits_total",
                 "failures": "coelho_sink_commit_failures_total", "compactions": "coelho_sink_compactions_total",
                 "pending": "coelho_sink_pending_events"}
        with self._lock:
            writers = [(key, writer) for key, writer in self.writers.items() if writer.open]
        return [(names[field], (key,), float(value)) for key, writer in writers
                for field, value in writer.status().items() if field in names]

    def stop(self) -> str:
        """Commit every table's pending micro-batch (its senders get their answer), then stop the writers."""
        with self._lock:
            writers, self.writers = dict(self.writers), {}
        if not writers:
            return "no table written"
        return "committed the pending events: " + ", ".join(
            f"{key} {writer.close()}" for key, writer in sorted(writers.items()))


def _start_clock() -> None:
    flask.g.coelho_started = time.perf_counter()


def _json_http_error(exc: HTTPException) -> tuple[dict[str, Any], int]:
    return problem_body(exc.name, detail=exc.description), exc.code or 500


def _malformed_cloudevent(exc: Exception) -> tuple[dict[str, Any], int]:
    return problem_body("malformed CloudEvent", detail=str(exc)), 400


def _metrics_view() -> flask.Response:
    return flask.Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
