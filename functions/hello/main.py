"""Hello-world baselines for benchmarks: the same framework, server and decoding as the real functions, no work.

`hello_event` is served like the learn functions (ASGI, CloudEvent decoded, the same routes);
`hello_http` like the predict functions (Flask, JSON body parsed).
"""

from __future__ import annotations

import flask
import functions_framework
import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from coelho.config import Settings
from coelho.runtime.asgi import CloudEventEndpoint

no_op = CloudEventEndpoint.ignoring("hello_event", Settings.from_env().max_event_bytes)


@functions_framework.aio.http
async def hello_event(request: Request) -> Response:
    """Accept any CloudEvent and do nothing."""
    return await no_op.respond(request)


@functions_framework.http
def hello_http(request: flask.Request) -> flask.Response:
    """Parse the JSON body and echo a constant answer."""
    request.get_json(silent=True)
    return flask.jsonify({"prediction": 0})
