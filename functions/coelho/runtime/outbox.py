"""A bounded, ordered outbox: slow or failing side work (MLflow logging) off the event path.

`submit` never blocks: it queues a job and returns. One background thread runs jobs in order; a
job that raises is retried with exponential back-off until it succeeds, so work queued while the
server was down arrives, in order, once it is back. When the buffer is full the oldest droppable
job (a metric batch) makes room; jobs that must not be lost (runs, registrations) are never
dropped, and `status()` reports pending work, drops and the last error.

Examples
--------
>>> done, attempts = [], []
>>> def flaky() -> None:
...     attempts.append(1)
...     if len(attempts) < 3:
...         raise ConnectionError("server down")
...     done.append("logged")
>>> box = Outbox("demo", capacity=10, backoff=(0.001, 0.01))
>>> box.submit(flaky)
>>> box.flush(5.0), done, len(attempts)
(True, ['logged'], 3)
>>> box.status()["ok"], box.status()["pending"]
(True, 0)
>>> box.close(1.0)
True
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Outbox"]

log = logging.getLogger(__name__)


@dataclass
class _Job:
    run: Callable[[], object]
    droppable: bool


class Outbox:
    """Runs submitted jobs in order on one daemon thread, retrying failures with back-off."""

    def __init__(self, name: str, capacity: int = 10_000, backoff: tuple[float, float] = (0.5, 15.0)) -> None:
        self.name = name
        self.capacity = capacity
        self.backoff = backoff
        self.jobs: collections.deque[_Job] = collections.deque()
        self.cond = threading.Condition()
        self.busy = False
        self.closed = False
        self.abandon = False
        self.dropped = 0
        self.failures = 0
        self.delivered = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.thread = threading.Thread(target=self._loop, name=f"{name}-outbox", daemon=True)
        self.thread.start()

    def submit(self, job: Callable[[], object], droppable: bool = False) -> None:
        """Queue `job`; drops the oldest droppable job when the buffer is full."""
        with self.cond:
            if len(self.jobs) >= self.capacity:
                victim = next((j for j in self.jobs if j.droppable), None)
                if victim is None and droppable:
                    self.dropped += 1
                    return
                if victim is not None:
                    self.jobs.remove(victim)
                    self.dropped += 1
            self.jobs.append(_Job(job, droppable))
            self.cond.notify_all()

    def _loop(self) -> None:
        delay = self.backoff[0]
        while True:
            with self.cond:
                while not self.jobs and not self.closed:
                    self.cond.wait()
                if not self.jobs:
                    return
                job = self.jobs[0]
                self.busy = True
            try:
                job.run()
            except Exception as exc:  # noqa: BLE001 - any failure is retried; the event path never sees it
                with self.cond:
                    self.busy = False
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    self.last_error_at = time.time()
                    self.cond.notify_all()
                    if self.failures == 1 or self.failures % 20 == 0:
                        log.warning("%s: %s (failure %d; will retry)", self.name, self.last_error, self.failures)
                    self.cond.wait(delay)
                    if self.closed and self.abandon:
                        return
                delay = min(delay * 2, self.backoff[1])
                continue
            delay = self.backoff[0]
            with self.cond:
                self.busy = False
                if self.jobs and self.jobs[0] is job:
                    self.jobs.popleft()
                self.delivered += 1
                self.failures = 0
                self.cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued job ran; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.jobs or self.busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
        return True

    def close(self, timeout: float) -> bool:
        """Deliver what is queued within `timeout`, then stop; False when jobs were left undelivered."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        delivered = self.flush(timeout)
        with self.cond:
            if not delivered:
                self.abandon = True
                log.warning("%s: %d job(s) not delivered at shutdown: %s", self.name, len(self.jobs), self.last_error)
            self.cond.notify_all()
        self.thread.join(timeout=1.0)
        return delivered

    def status(self) -> dict[str, Any]:
        """ok (no failing job), pending jobs, dropped jobs, last error."""
        with self.cond:
            return {
                "ok": self.failures == 0,
                "pending": len(self.jobs),
                "dropped": self.dropped,
                "delivered": self.delivered,
                "last_error": self.last_error,
            }
