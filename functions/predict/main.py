"""Predict functions: POST one raw event as JSON, get the live model's answer."""

from __future__ import annotations

import flask
import functions_framework

from coelho.runtime.services import PredictService

service = PredictService.mount(flask.current_app)


@functions_framework.http
def tfd_predict(request: flask.Request) -> flask.Response:
    """Fraud probability and decision for one transaction."""
    return service.handle(request)


@functions_framework.http
def eta_predict(request: flask.Request) -> flask.Response:
    """Travel time in seconds for one trip."""
    return service.handle(request)


@functions_framework.http
def ecci_predict(request: flask.Request) -> flask.Response:
    """Cluster of one shop interaction."""
    return service.handle(request)
