"""ASGI glue for CloudEvent targets served by functions-framework's `aio` server (uvicorn).

functions-framework hands every path and method of an `@functions_framework.aio.http` target to
it, so a target that takes CloudEvents delegates to a `CloudEventEndpoint`, which routes:

- `POST` (any path but the ones below): one CloudEvent, binary or structured mode, at most
  `max_event_bytes` (413), not a CloudEvent → 400; then `await accept(event, body)`, whose
  `Rejected` becomes a JSON 4xx naming every problem; 200 once it returns;
- `GET /status` (`await status()`), `GET /metrics` (Prometheus) and `GET /healthz` (`await health()`:
  503 unless its `ok` holds);
- anything else: a JSON 405. An unexpected error is a JSON 500, never the framework's text page.

Every answer is counted in the function's RED metrics (`telemetry.RequestMetrics`). While the
process stops (`coelho.runtime.lifecycle`) every request but `GET /status` and `/metrics` gets a
JSON 503 with `Retry-After`, `/healthz` included; the requests in flight are counted, so the stop
waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from cloudevents.http import CloudEvent, from_http
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coelho.core.schema import Problem
from coelho.runtime.lifecycle import LIFECYCLE, RETRY_AFTER_S, Draining
from coelho.runtime.telemetry import RequestMetrics

__all__ = ["CloudEventEndpoint", "Rejected", "problem_body", "read_body"]

Accept = Callable[[CloudEvent, bytes | None], Awaitable[None]]
Status = Callable[[], Awaitable[dict[str, Any]]]

log = logging.getLogger("coelho.functions")


async def always_ready() -> dict[str, Any]:
    """The readiness of a function that needs nothing but itself."""
    return {"ok": True}


def problem_body(error: str, problems: Iterable[Problem] = (), detail: str | None = None) -> dict[str, Any]:
    """The JSON body of every refusal: what went wrong and each bad field.

    >>> problem_body("invalid event", [Problem("amount", "must be finite")])
    {'error': 'invalid event', 'problems': [{'field': 'amount', 'message': 'must be finite'}]}
    """
    body: dict[str, Any] = {"error": error}
    if detail is not None:
        body["detail"] = detail
    body["problems"] = [{"field": p.field, "message": p.message} for p in problems]
    return body


class Rejected(Exception):
    """A request refused with a JSON body (`problem_body`) and a 4xx status (503 when it should be retried)."""

    def __init__(self, status: int, error: str, problems: Iterable[Problem] = (), detail: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}")
        self.status = status
        self.body = problem_body(error, problems, detail)
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, self.status, headers=self.headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Rejected(413, f"event larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"event larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _binary_json(headers: Headers) -> bool:
    """Whether the body is the event's JSON data itself (binary content mode)."""
    mimetype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return "ce-specversion" in headers and mimetype.endswith("json")


class CloudEventEndpoint:
    """Routes one target's requests (see the module docstring)."""

    def __init__(self, name: str, max_event_bytes: int, accept: Accept, status: Status,
                 health: Status = always_ready) -> None:
        self.name = name
        self.max_event_bytes = max_event_bytes
        self.accept = accept
        self.status = status
        self.health = health
        self.requests = RequestMetrics(name)
        LIFECYCLE.install()

    @classmethod
    def ignoring(cls, name: str, max_event_bytes: int) -> CloudEventEndpoint:
        """An endpoint that decodes every CloudEvent and does nothing with it (the benchmarks' baseline)."""

        async def ignore(event: CloudEvent, body: bytes | None) -> None:
            return None

        async def no_status() -> dict[str, Any]:
            return {}

        endpoint = cls(name, max_event_bytes, ignore, no_status)
        LIFECYCLE.on_stop(name, lambda: "nothing to clean up")
        return endpoint

    async def respond(self, request: Request) -> Response:
        """The answer to one request."""
        started = time.perf_counter()
        response = await self._route(request)
        self.requests.observe(request.url.path, request.method, response.status_code, time.perf_counter() - started)
        return response

    async def _route(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        try:
            if path in ("/status", "/metrics"):
                return await self._operational(request, path)
            with LIFECYCLE.request():
                if path == "/healthz":
                    return await self._operational(request, path)
                return await self._event(request)
        except Rejected as exc:
            return exc.response()
        except Draining as exc:
            return Rejected(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)}).response()
        except Exception:
            log.exception("%s %s %s failed", self.name, request.method, path)
            return JSONResponse(problem_body("Internal Server Error", detail="see the function's log"), 500)

    async def _operational(self, request: Request, path: str) -> Response:
        if request.method != "GET":
            raise Rejected(405, f"GET {path}", headers={"Allow": "GET"})
        if path == "/status":
            return JSONResponse({"function": self.name, **await self.status()})
        if path == "/metrics":  # from a thread: reading a learner's state may wait for its model
            return Response(await asyncio.to_thread(generate_latest), media_type=CONTENT_TYPE_LATEST)
        health = await self.health()
        return JSONResponse(health, 200 if health["ok"] else 503)

    async def _event(self, request: Request) -> Response:
        if request.method != "POST":
            raise Rejected(405, "POST one CloudEvent", headers={"Allow": "POST"})
        body = await read_body(request, self.max_event_bytes)
        try:
            event = from_http(request.headers, body)
        except Exception as exc:  # whatever the decoder refuses is not a CloudEvent
            raise Rejected(400, "malformed CloudEvent", detail=str(exc)) from None
        await self.accept(event, body if _binary_json(request.headers) else None)
        return Response(status_code=200)
