"""The glue between functions-framework entry points and the learner / predictor.

functions-framework executes a function's `main.py` inside the Flask application context, so an
entry point calls `LearnService.mount(flask.current_app)` (or `PredictService`) at import time.
That sets the request-size limit, JSON error handlers and the operational routes
`GET /status`, `GET /metrics` and `GET /healthz`, and returns the object whose `handle` the
decorated target calls. The use case is the target's prefix (`tfd_learn` → `tfd`).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import flask
from cloudevents import exceptions as ce_errors
from cloudevents.http import CloudEvent
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from coelho.adapters.embedded_redis import resolve_redis_url
from coelho.adapters.redis_state import RedisState
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.core.schema import Problem
from coelho.core.usecase import UseCase
from coelho.runtime import telemetry
from coelho.runtime.learner import Learner
from coelho.runtime.predictor import NoModel, Predictor

__all__ = ["LearnService", "PredictService", "close_all", "mount_operational", "reject"]

log = logging.getLogger("coelho.functions")

_open_learners: list[Learner] = []


def close_all() -> None:
    """Checkpoint and release every learner this process started (runs at exit)."""
    while _open_learners:
        _open_learners.pop().close()


atexit.register(close_all)


def reject(status: int, error: str, problems: Iterable[Problem] = (), **headers: str) -> NoReturn:
    """Stop the request with a JSON error body naming every problem."""
    body = {"error": error, "problems": [{"field": p.field, "message": p.message} for p in problems]}
    response = flask.make_response(flask.jsonify(body), status)
    response.headers.update(headers)
    flask.abort(response)


def mount_operational(app: flask.Flask, settings: Settings, status: Callable[[], dict[str, Any]]) -> None:
    """Logging, JSON bodies for 400/413 and the routes GET /status, /metrics and /healthz."""
    telemetry.configure_logging(settings.log_level)
    app.register_error_handler(400, _json_http_error)
    app.register_error_handler(413, _json_http_error)
    app.add_url_rule("/status", "coelho_status", status, methods=["GET"])
    app.add_url_rule("/metrics", "coelho_metrics", _metrics_view, methods=["GET"])
    app.add_url_rule("/healthz", "coelho_healthz", lambda: {"ok": True}, methods=["GET"])


class _Service:
    """Shared wiring: settings, Redis state, error handlers and operational routes."""

    role = ""

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        self.name = app.name
        key = self.name.split("_", 1)[0]
        if key not in USE_CASES:
            raise ValueError(f"target {self.name!r} does not start with a use case {sorted(USE_CASES)}")
        self.use_case: UseCase = USE_CASES[key]
        self.settings = settings
        self._build_lock = threading.Lock()
        self._engine: Any = None
        mount_operational(app, settings, self._status_view)
        app.register_error_handler(ce_errors.GenericException, _malformed_cloudevent)

    @classmethod
    def mount(cls, app: flask.Flask, settings: Settings | None = None) -> Any:
        """Attach a service to the app functions-framework is building."""
        return cls(app, settings or Settings.from_env())

    def engine(self) -> Any:
        """The learner or predictor, created on first use (connects to Redis)."""
        if self._engine is None:
            with self._build_lock:
                if self._engine is None:
                    url = resolve_redis_url(self.settings.redis_url, self.settings.data_dir)
                    state = RedisState.from_url(url, self.settings.key_prefix, self.use_case.key)
                    self._engine = self._build(state)
        return self._engine

    def _build(self, state: RedisState) -> Any:
        raise NotImplementedError

    def _status_view(self) -> dict[str, Any]:
        return {"function": self.name, **self.engine().status()}


class LearnService(_Service):
    """Validates CloudEvents and hands them to the learner."""

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        super().__init__(app, settings)
        self.counters = {outcome: telemetry.EVENTS.labels(self.name, outcome)
                         for outcome in ("accepted", "duplicate", "rejected")}
        self.seconds = telemetry.LEARN_SECONDS.labels(self.name)
        self.version = telemetry.MODEL_VERSION.labels(self.name)
        app.config["MAX_CONTENT_LENGTH"] = settings.max_event_bytes
        # A POST that is not a CloudEvent makes the framework try a legacy conversion that ends
        # in 415; for a CloudEvent endpoint that is a malformed request (400, never retried).
        app.register_error_handler(415, _malformed_cloudevent)

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
        problems: list[Problem] = []
        if event["type"] != uc.event_type:
            problems.append(Problem("type", f"must be {uc.event_type!r} for {self.name}"))
        data = event.data
        if isinstance(data, bytes | str):
            try:
                data = json.loads(data)
            except ValueError:
                problems.append(Problem("data", "must be a JSON object"))
        if not problems:
            problems = uc.schema.validate(data)
        if problems:
            self.counters["rejected"].inc()
            log.warning("%s rejected: %s", ctx, "; ".join(f"{p.field} {p.message}" for p in problems))
            reject(422, "invalid event", problems)
        return data


def _binary_json_body() -> bytes | None:
    """The request body when it is the event's JSON data itself (binary content mode)."""
    request = flask.request
    if "ce-specversion" in request.headers and (request.mimetype or "").endswith("json"):
        return request.get_data()
    return None


class PredictService(_Service):
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


def _json_http_error(exc: HTTPException) -> tuple[dict[str, Any], int]:
    return {"error": exc.name, "detail": exc.description, "problems": []}, exc.code or 500


def _malformed_cloudevent(exc: Exception) -> tuple[dict[str, Any], int]:
    return {"error": "malformed CloudEvent", "detail": str(exc), "problems": []}, 400


def _metrics_view() -> flask.Response:
    return flask.Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
