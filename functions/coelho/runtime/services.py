"""The glue between functions-framework entry points and the learner / predictor.

functions-framework executes a function's `main.py` inside the Flask application context, so an
entry point calls `LearnService.mount(flask.current_app)` (or `PredictService`) at import time.
That sets the request-size limit, JSON error handlers and the operational routes
`GET /status`, `GET /metrics` and `GET /healthz`, and returns the object whose `handle` the
decorated target calls. The use case is the target's prefix (`tfd_learn` → `tfd`).
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401 - registers its exit hook before ours
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
from coelho.runtime.learner import Learner
from coelho.runtime.predictor import NoModel, Predictor

__all__ = ["LearnService", "PredictService", "Service", "SinkService", "close_all", "event_payload", "reject"]

log = logging.getLogger("coelho.functions")

_open_learners: list[Learner] = []
_open_writers: list[Any] = []


def close_all() -> None:
    """Checkpoint and release every learner, and flush every Delta writer, this process started (runs at exit)."""
    while _open_learners:
        _open_learners.pop().close()
    while _open_writers:
        _open_writers.pop().close()


# A learner's last checkpoint and MLflow registration need concurrent.futures (MLflow uploads with a thread
# pool), which refuses new work once the interpreter starts exiting — before plain `atexit` hooks run. So
# close everything from threading's exit hooks instead, which run first and in reverse order of registration:
# registered after concurrent.futures' own, ours runs before it.
threading._register_atexit(close_all)  # type: ignore[attr-defined]


def reject(status: int, error: str, problems: Iterable[Problem] = (), **headers: str) -> NoReturn:
    """Stop the request with a JSON error body naming every problem."""
    body = {"error": error, "problems": [{"field": p.field, "message": p.message} for p in problems]}
    response = flask.make_response(flask.jsonify(body), status)
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


class _ModelService(Service):
    """A service of one use case's model, kept in Redis; the use case is the target's prefix."""

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        super().__init__(app, settings)
        key = self.name.split("_", 1)[0]
        if key not in USE_CASES:
            raise ValueError(f"target {self.name!r} does not start with a use case {sorted(USE_CASES)}")
        self.use_case: UseCase = USE_CASES[key]

    def _build_engine(self) -> Any:
        """The learner or predictor of the use case's state in Redis."""
        url = resolve_redis_url(self.settings.redis_url, self.settings.data_dir)
        return self._build(RedisState.from_url(url, self.settings.key_prefix, self.use_case.key))

    def _build(self, state: RedisState) -> Any:
        raise NotImplementedError

    def _status_view(self) -> dict[str, Any]:
        return {"function": self.name, **self.engine().status()}


class LearnService(_ModelService):
    """Validates CloudEvents and hands them to the learner."""

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        super().__init__(app, settings)
        self.counters = {outcome: telemetry.EVENTS.labels(self.name, outcome)
                         for outcome in ("accepted", "duplicate", "rejected")}
        self.seconds = telemetry.LEARN_SECONDS.labels(self.name)
        self.version = telemetry.MODEL_VERSION.labels(self.name)
        self._accept_cloudevents(app)

    def _build(self, state: RedisState) -> Learner:
        learner = Learner(self.use_case, state, self.settings)
        _open_learners.append(learner)
        return learner

    def handle(self, event: CloudEvent) -> None:
        """Accept one CloudEvent: 2xx when logged or a duplicate, 4xx when invalid (5xx when Redis is down)."""
        started = time.perf_counter()
        ctx = f"ce-id={event['id']} ce-type={event['type']}"
        payload = self._payload(event, ctx)
        result = self.engine().handle(event["source"], event["id"], payload, _binary_json_body())
        self.counters["accepted" if result.accepted else "duplicate"].inc()
        self.seconds.observe(time.perf_counter() - started)
        if result.accepted:
            self.version.set(result.seq)

    def _payload(self, event: CloudEvent, ctx: str) -> dict[str, Any]:
        uc = self.use_case
        data, problems = event_payload(event, uc if event["type"] == uc.event_type else None,
                                       f"must be {uc.event_type!r} for {self.name}")
        if problems:
            self.counters["rejected"].inc()
            log.warning("%s rejected: %s", ctx, "; ".join(f"{p.field} {p.message}" for p in problems))
            reject(422, "invalid event", problems)
        return data


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


def _binary_json_body() -> bytes | None:
    """The request body when it is the event's JSON data itself (binary content mode)."""
    request = flask.request
    if "ce-specversion" in request.headers and (request.mimetype or "").endswith("json"):
        return request.get_data()
    return None


class PredictService(_ModelService):
    """Validates raw events posted as JSON and answers with the live model's prediction."""

    def _build(self, state: RedisState) -> Predictor:
        return Predictor(self.use_case, state, self.settings)

    def handle(self, request: flask.Request) -> flask.Response:
        """POST one raw event (label optional) → prediction, model_version, model_source."""
        started = time.perf_counter()
        if request.method != "POST":
            reject(405, "POST one event as JSON", **{"Allow": "POST"})
        # Checked by hand: the framework re-reads the body after the response, which a Flask
        # MAX_CONTENT_LENGTH would turn into a second error.
        if (request.content_length or 0) > self.settings.max_event_bytes:
            reject(413, f"event larger than {self.settings.max_event_bytes} bytes")
        payload = request.get_json(silent=True)
        uc = self.use_case
        problems = uc.schema.validate(payload, optional=uc.optional_for_predict)
        if problems:
            telemetry.PREDICTIONS.labels(self.name, "rejected").inc()
            reject(422, "invalid event", problems)
        try:
            result = self.engine().predict(payload)
        except NoModel as exc:
            telemetry.PREDICTIONS.labels(self.name, "no_model").inc()
            reject(503, str(exc), **{"Retry-After": "5"})
        telemetry.PREDICTIONS.labels(self.name, "ok").inc()
        telemetry.PREDICT_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        telemetry.MODEL_VERSION.labels(self.name).set(result["model_version"])
        return flask.jsonify(result)


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
                self.writers[use_case.key] = DeltaWriter(use_case, self.settings, self.arrivals)
                _open_writers.append(self.writers[use_case.key])
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
    return {"error": exc.name, "detail": exc.description, "problems": []}, exc.code or 500


def _malformed_cloudevent(exc: Exception) -> tuple[dict[str, Any], int]:
    return {"error": "malformed CloudEvent", "detail": str(exc), "problems": []}, 400


def _metrics_view() -> flask.Response:
    return flask.Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
