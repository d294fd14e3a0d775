"""Learn functions: each accepted CloudEvent is applied exactly once to its use case's online model.

ASGI targets (functions-framework's `aio` server): they decode the CloudEvent themselves, so that a bad
one gets a JSON error naming each problem, and answer GET /status, /metrics and /healthz.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from coelho.runtime.learn_service import LearnTargets

learn = LearnTargets()


@functions_framework.aio.http
async def tfd_learn(request: Request) -> Response:
    """Learn one card transaction (io.coelho.tfd.transaction.v1)."""
    return await learn.respond("tfd_learn", request)


@functions_framework.aio.http
async def eta_learn(request: Request) -> Response:
    """Learn one finished trip (io.coelho.eta.trip.v1)."""
    return await learn.respond("eta_learn", request)


@functions_framework.aio.http
async def ecci_learn(request: Request) -> Response:
    """Learn one shop interaction (io.coelho.ecci.interaction.v1)."""
    return await learn.respond("ecci_learn", request)
