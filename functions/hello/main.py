"""Hello-world baselines for benchmarks: the same framework and server settings, no work."""

from __future__ import annotations

import flask
import functions_framework
from cloudevents.http import CloudEvent


@functions_framework.cloud_event
def hello_event(event: CloudEvent) -> None:
    """Accept any CloudEvent and do nothing."""


@functions_framework.http
def hello_http(request: flask.Request) -> flask.Response:
    """Parse the JSON body and echo a constant answer."""
    request.get_json(silent=True)
    return flask.jsonify({"prediction": 0})
