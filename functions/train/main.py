"""Train function: start, follow and stop batch trainings; their runs, figures and online-vs-batch tables."""

from __future__ import annotations

import flask
import functions_framework

from coelho.runtime.train_service import TrainService

service = TrainService.mount(flask.current_app)


@functions_framework.http
def train(request: flask.Request) -> flask.Response:
    """POST / (JSON or CloudEvent) → 202; POST /stop; GET /status, /runs, /diagnostics, /comparison."""
    return service.handle(request)
