"""Deliver CloudEvents over HTTP in binary mode, at least once, with capped exponential backoff.

Outcomes per event: a 2xx answer means delivered; connection errors, timeouts, 5xx and
404/408/409/429 are retried (404 covers a Knative route that is not ready yet); any other
status means the sink refused the event: it is logged with the response body, counted as
rejected and never retried. When the attempts run out, `DeliveryError` is raised, so an
outage stops the producer loudly instead of silently losing events.

Examples
--------
>>> [is_retryable(status) for status in (200, 404, 422, 429, 503)]
[False, True, False, True, True]
>>> backoff_seconds(attempt=10, initial=0.2, cap=5.0)
5.0
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from coelho.producers.metrics import HTTP_EVENTS, HTTP_RETRIES

__all__ = ["DeliveryError", "DeliveryStats", "HttpSink", "backoff_seconds", "is_retryable"]

log = logging.getLogger(__name__)

RETRYABLE_CLIENT_ERRORS = frozenset({404, 408, 409, 429})
#: Seconds after which an idle keep-alive connection is closed instead of reused: below gunicorn's keep-alive
#: (2 s, the functions' server), so that a request never races the server closing the connection under it.
IDLE_RECONNECT_S = 1.0
_TRANSIENT_ERRORS = (
    requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
)


class DeliveryError(RuntimeError):
    """An event could not be delivered within the retry budget."""


@dataclass
class DeliveryStats:
    """Running counts of one sink: events sent and their fates, plus retry attempts."""

    sent: int = 0
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0


def is_retryable(status: int) -> bool:
    """True for answers worth another attempt: 5xx and 404/408/409/429."""
    return status >= 500 or status in RETRYABLE_CLIENT_ERRORS


def backoff_seconds(*, attempt: int, initial: float, cap: float) -> float:
    """Wait after failed attempt number `attempt` (1-based): initial * 2^(attempt-1), capped."""
    return min(cap, initial * 2.0 ** (attempt - 1))


class HttpSink:
    """POST binary-mode CloudEvents to `url` over one keep-alive session.

    Parameters
    ----------
    url
        The sink, e.g. the ``K_SINK`` a Knative SinkBinding injects.
    max_attempts
        Attempts per event, the first one included.
    initial_backoff, max_backoff
        Seconds before the first retry, and the cap of the doubling waits.
    timeout
        Seconds allowed per request.
    sleep
        Waiting function (tests pass a fake one).
    producer
        Label of this sink's ``coelho_producer_http_*`` metrics (the use case).
    """

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 8,
        initial_backoff: float = 0.2,
        max_backoff: float = 10.0,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        producer: str = "",
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.url = url
        self.stats = DeliveryStats()
        self._max_attempts = max_attempts
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._timeout = timeout
        self._sleep = sleep
        self._session = requests.Session()
        self._last_request = 0.0
        self._outcomes = {outcome: HTTP_EVENTS.labels(producer, outcome) for outcome in ("delivered", "rejected",
                                                                                       "failed")}
        self._retries = HTTP_RETRIES.labels(producer)

    def send(self, event: CloudEvent) -> bool:
        """Deliver one event: True if accepted, False if rejected; raise DeliveryError if the
        sink stayed unavailable for all attempts."""
        headers, body = to_binary(event)
        self.stats.sent += 1
        reason = ""
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                self.stats.retries += 1
                self._retries.inc()
                self._sleep(backoff_seconds(
                    attempt=attempt - 1, initial=self._initial_backoff, cap=self._max_backoff,
                ))
            if time.monotonic() - self._last_request > IDLE_RECONNECT_S:
                self._session.close()  # its connections only: the next request opens a fresh one
            try:
                response = self._session.post(
                    self.url, data=body, headers=headers, timeout=self._timeout,
                    allow_redirects=False,
                )
            except _TRANSIENT_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self.stats.delivered += 1
                    self._outcomes["delivered"].inc()
                    return True
                if not is_retryable(status):
                    self._reject(event, response)
                    return False
                reason = f"HTTP {status}"
            finally:
                self._last_request = time.monotonic()
            log.warning("event %s attempt %d/%d failed (%s)",
                        event["id"], attempt, self._max_attempts, reason)
        self.stats.failed += 1
        self._outcomes["failed"].inc()
        raise DeliveryError(
            f"event {event['id']} not delivered to {self.url} after "
            f"{self._max_attempts} attempts: {reason}"
        )

    def _reject(self, event: CloudEvent, response: requests.Response) -> None:
        self.stats.rejected += 1
        self._outcomes["rejected"].inc()
        try:
            detail: Any = response.json()
        except ValueError:
            detail = response.text[:500]
        log.error("event %s rejected by %s with HTTP %d: %s",
                  event["id"], self.url, response.status_code, detail)

    def close(self) -> None:
        """Close the keep-alive connections."""
        self._session.close()

    def __enter__(self) -> HttpSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
