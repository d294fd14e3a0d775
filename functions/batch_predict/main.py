"""Batch-predict functions: POST one raw event as JSON, get the batch model's answer."""

from __future__ import annotations

import flask
import functions_framework

from coelho.runtime.batch_predict_service import BatchPredictService

service = BatchPredictService.mount(flask.current_app)


@functions_framework.http
def tfd_batch_predict(request: flask.Request) -> flask.Response:
    """Fraud probability and decision of the batch CatBoost model for one transaction."""
    return service.handle(request)


@functions_framework.http
def eta_batch_predict(request: flask.Request) -> flask.Response:
    """Travel time in seconds from the batch CatBoost model for one trip."""
    return service.handle(request)


@functions_framework.http
def ecci_batch_predict(request: flask.Request) -> flask.Response:
    """KMeans cluster of one shop interaction."""
    return service.handle(request)
