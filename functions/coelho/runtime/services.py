"""The glue between functions-framework's Flask entry points and the predictor and delta-sink.

functions-framework executes a function's `main.py` inside the Flask application context, so an
entry point calls `PredictService.mount(flask.current_app)` (or `SinkService`) at import time.
That sets the request-size limit, JSON error handlers and the operational routes
`GET /status`, `GET /metrics` and `GET /healthz`, and returns the object whose `handle` the
decorated target calls. The use case is the target's prefix (`tfd_predict` → `tfd`). The learn
functions are ASGI targets (`coelho.runtime.learn_service`); both kinds share the helpers here.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 - registers its exit hook before ours
import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, NoReturn, Protocol, TypeVar

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
from coelho.runtime.predictor import NoModel, Predictor

__all__ = ["PredictService", "Service", "SinkService", "close_all", "close_at_exit", "event_payload", "open_state",
           "reject", "target_use_case"]

log = logging.getLogger("coelho.functions")


class Closable(Protocol):
    def close(self) -> None: ...


ClosableT = TypeVar("ClosableT", bound=Closable)
_open: list[Closable] = []


def close_at_exit(resource: ClosableT) -> ClosableT:
    """Close `resource` when the process exits (learners checkpoint, Delta writers flush)."""
    _open.append(resource)
    return resource


def close_all() -> None:
    """Checkpoint and release every learner, and flush every Delta writer, this process started (runs at exit)."""
    while _open:
        _open.pop().close()


# A learner's last checkpoint and MLflow registration need concurrent.futures (MLflow uploads with a thread
# pool), which refuses new work once the interpreter starts exiting — before plain `atexit` hooks run. So
# close everything from threading's exit hooks instead, which run first and in reverse order of registration:
# registered after concurrent.futures' own, ours runs before it.
threading._register_atexit(close_all)  # type: ignore[attr-defined]


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
        telemetry.configure_logging(settings.log_level)
        app.register_error_handler(400, _json_http_error)
        app.register_error_handler(413, _json_http_error)
        app.register_error_handler(ce_errors.GenericException, _malformed_cloudevent)
        app.add_url_rule("/status", "coelho_status", self._status_view, methods=["GET"])
        app.add_url_rule("/metrics", "coelho_metrics", _metrics_view, methods=["GET"])
        app.add_url_rule("/healthz", "coelho_healthz", lambda: {"ok": True}, methods=["GET"])

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
        app.add_url_rule("/versions", "coelho_versions", lambda: self.engine().versions.listing(), methods=["GET"])

    def _build_engine(self) -> Predictor:
        """The predictor of the use case's state in Redis."""
        return Predictor(self.use_case, open_state(self.settings, self.use_case), self.settings)

    def _status_view(self) -> dict[str, Any]:
        return {"function": self.name, **self.engine().status()}

    def handle(self, request: flask.Request) -> flask.Response:
        """POST one raw event (label optional) → prediction, model_version, model_source; `?version=N` asks
        registered MLflow version N instead of the live model (GET /versions lists them)."""
        started = time.perf_counter()
        if request.method != "POST":
            reject(405, "POST one event as JSON", **{"Allow": "POST"})
        # Checked by hand: the framework re-reads the body after the response, which a Flask
        # MAX_CONTENT_LENGTH would turn into a second error.
        if (request.content_length or 0) > self.settings.max_event_bytes:
            reject(413, f"event larger than {self.settings.max_event_bytes} bytes")
        version = _version_arg(request)
        payload = request.get_json(silent=True)
        uc = self.use_case
        problems = uc.schema.validate(payload, optional=uc.optional_for_predict)
        if problems:
            telemetry.PREDICTIONS.labels(self.name, "rejected").inc()
            reject(422, "invalid event", problems)
        try:
            engine = self.engine()
            result = engine.predict(payload) if version is None else engine.versions.predict(version, payload)
        except NoModel as exc:
            telemetry.PREDICTIONS.labels(self.name, "no_model").inc()
            reject(503, str(exc), **{"Retry-After": "5"})
        except LookupError as exc:
            telemetry.PREDICTIONS.labels(self.name, "no_model").inc()
            reject(404, str(exc), [Problem("version", str(exc))])
        telemetry.PREDICTIONS.labels(self.name, "ok").inc()
        telemetry.PREDICT_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        if version is None:  # the gauge follows the model served by default, not a version asked for
            telemetry.MODEL_VERSION.labels(self.name).set(result["model_version"])
        return flask.jsonify(result)


def _version_arg(request: flask.Request) -> int | None:
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
    """

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        super().__init__(app, settings)
        from coelho.ingest.delta_sink import Arrivals  # deltalake is imported by the sink only

        self._accept_cloudevents(app)
        self.arrivals = Arrivals()
        self.writers: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.counters = {outcome: telemetry.SINK_EVENTS.labels(self.name, outcome)
                         for outcome in ("written", "duplicate", "rejected", "unavailable")}

    def writer(self, use_case: UseCase) -> Any:
        """The `DeltaWriter` of `use_case`, created on first use (creates the table if needed)."""
        from coelho.ingest.delta_sink import DeltaWriter

        with self._lock:
            if use_case.key not in self.writers:
                self.writers[use_case.key] = close_at_exit(DeltaWriter(use_case, self.settings, self.arrivals))
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

    def _status_view(self) -> dict[str, Any]:
        return {"function": self.name, "tables": {key: writer.status() for key, writer in self.writers.items()}}


def _json_http_error(exc: HTTPException) -> tuple[dict[str, Any], int]:
    return problem_body(exc.name, detail=exc.description), exc.code or 500


def _malformed_cloudevent(exc: Exception) -> tuple[dict[str, Any], int]:
    return problem_body("malformed CloudEvent", detail=str(exc)), 400


def _metrics_view() -> flask.Response:
    return flask.Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
