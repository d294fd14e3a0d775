"""The glue between the learn entry points and the learner, served by functions-framework's ASGI server.

A learn target is an `@functions_framework.aio.http` function that hands its request to the entry
module's `LearnTargets`, which makes the `LearnService` of that target on first use (after the server
forked; the use case is the target's prefix, `tfd_learn` → `tfd`), whose learner is built on the first
event or status request. Routes and errors: `coelho.runtime.asgi`. When the process stops
(`coelho.runtime.lifecycle`), the service closes its learner: final checkpoint, lease, MLflow run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cloudevents.http import CloudEvent
from starlette.requests import Request
from starlette.responses import Response

from coelho.config import Settings
from coelho.runtime import telemetry
from coelho.runtime.asgi import CloudEventEndpoint, Rejected
from coelho.runtime.learner import Learner, Unavailable
from coelho.runtime.lifecycle import LIFECYCLE, RETRY_AFTER_S
from coelho.runtime.services import event_payload, open_state, target_use_case

__all__ = ["LearnService", "LearnTargets"]

log = logging.getLogger("coelho.functions")

#: While events come, a timer every LAG_PROBE_S measures the event loop's lag; it stops LAG_PROBE_IDLE_S after the last.
LAG_PROBE_S = 0.01
LAG_PROBE_IDLE_S = 1.0


class LearnService:
    """Validates one use case's CloudEvents and hands them to its learner."""

    def __init__(self, name: str, settings: Settings) -> None:
        telemetry.configure_logging(settings.log_level)
        self.name = name
        self.settings = settings
        self.use_case = target_use_case(name)
        self.endpoint = CloudEventEndpoint(name, settings.max_event_bytes, self.accept, self.status, self.health)
        self.counters = {outcome: telemetry.EVENTS.labels(name, outcome)
                         for outcome in ("accepted", "duplicate", "rejected", "unavailable")}
        self.seconds = telemetry.LEARN_SECONDS.labels(name)
        self.version = telemetry.MODEL_VERSION.labels(name)
        self._learner: Learner | None = None
        self.event_at = 0.0
        self.lag_probe = False
        self.status_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-status")
        telemetry.watch(self)
        LIFECYCLE.on_stop(name, self.stop)

    async def respond(self, request: Request) -> Response:
        """Answer one request: a CloudEvent to learn, or GET /status, /metrics, /healthz."""
        return await self.endpoint.respond(request)

    def learner(self) -> Learner:
        """The use case's learner, built on first use (it connects to Redis)."""
        if self._learner is None:
            state = open_state(self.settings, self.use_case)
            self._learner = Learner(self.use_case, state, self.settings)
        return self._learner

    def stop(self) -> str:
        """Close the learner, if one was built; returns what it did."""
        return self._learner.close() if self._learner is not None else "no event received: nothing to clean up"

    async def accept(self, event: CloudEvent, body: bytes | None) -> None:
        """Log one CloudEvent (or recognise a duplicate); `Rejected` 422 when invalid, an error when Redis is down.

        `body` is the request body when it is the event's JSON data itself (binary mode): the WAL keeps it as is.
        The event loop only validates and waits: the learner's appender thread logs the event (group commit)
        and its lease thread learns it.
        """
        started, cpu_started = time.perf_counter(), time.thread_time()
        uc = self.use_case
        data, problems = event_payload(event, uc if event["type"] == uc.event_type else None,
                                       f"must be {uc.event_type!r} for {self.name}")
        if problems:
            self.counters["rejected"].inc()
            log.warning("ce-id=%s ce-type=%s rejected: %s", event["id"], event["type"],
                        "; ".join(f"{p.field} {p.message}" for p in problems))
            raise Rejected(422, "invalid event", problems)
        learner = self.learner()
        learner.parts.add("validate", time.thread_time() - cpu_started)
        self._watch_loop(learner)
        try:
            result = await learner.accept(event["source"], event["id"], data, body)
        except Unavailable as exc:
            self.counters["unavailable"].inc()
            raise Rejected(503, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        self.counters["accepted" if result.accepted else "duplicate"].inc()
        self.seconds.observe(time.perf_counter() - started)
        if result.accepted:
            self.version.set(result.seq)

    def _watch_loop(self, learner: Learner) -> None:
        """Measure the event loop's lag (how late a timer fires: the time it was blocked) while events come."""
        self.event_at = time.monotonic()
        if self.lag_probe:
            return
        loop = asyncio.get_running_loop()
        self.lag_probe = True

        def schedule() -> None:
            due = loop.time() + LAG_PROBE_S
            loop.call_at(due, probe, due)

        def probe(due: float) -> None:
            learner.parts.add("loop_lag", max(0.0, loop.time() - due))
            if time.monotonic() - self.event_at < LAG_PROBE_IDLE_S:
                schedule()
            else:
                self.lag_probe = False

        schedule()

    async def status(self) -> dict[str, Any]:
        """The learner's status (a follower relays the leader's).

        From a thread of its own, as it may wait (briefly) for the model: not from the pool that events
        use while the learner recovers, where it would wait behind them.
        """
        return await asyncio.get_running_loop().run_in_executor(self.status_thread, self.learner().status)

    async def health(self) -> dict[str, Any]:
        """Readiness: Redis answers (from the status thread: a ping may wait for its timeout)."""
        return await asyncio.get_running_loop().run_in_executor(self.status_thread, self.learner().health)


    def metric_samples(self) -> Iterator[telemetry.Sample]:
        """The learner's state metrics (none before it is built)."""
        if self._learner is not None and not self._learner.stopping.is_set():
            yield from telemetry.learner_samples(self._learner)


class LearnTargets:
    """The learn services of one loaded entry module: one per target, made on first use from the environment."""

    def __init__(self) -> None:
        self.services: dict[str, LearnService] = {}
        LIFECYCLE.install()

    async def respond(self, target: str, request: Request) -> Response:
        """Answer one request to `target`."""
        service = self.services.get(target)
        if service is None:
            service = self.services[target] = LearnService(target, Settings.from_env())
        return await service.respond(request)
