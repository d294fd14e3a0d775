"""Delivering one CloudEvent to a sink with Knative's retry rules, then to the dead-letter sink.

- 2xx: done. 5xx, 404, 408, 409, 429, timeouts and connection errors: retried `retry` times,
  waiting `backoff(n)` before retry n. Any other status (400, 422, ...): not retried.
- After the last attempt, or on a non-retryable status, the event goes to the dead-letter sink
  with `knativeerrorcode`, `knativeerrordest` and `knativeerrordata` (the response body, at
  most 1 KiB, base64-encoded as eventing-kafka-broker does). The offset is committed either way.
- A refused connection is treated as Knative's activator treats a service scaled to zero: the
  attempt waits (up to its timeout) for the sink to come up instead of failing at once.
"""

from __future__ import annotations

import base64
import http.client
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

from prometheus_client import Counter

from coelho.dispatch.manifest import DeliverySpec
from coelho.dispatch.records import Event

__all__ = ["Attempt", "DeadLetterWriter", "Outcome", "Sender", "is_retryable"]

log = logging.getLogger(__name__)

ERROR_DATA_MAX_BYTES = 1024
RETRIES = Counter("coelho_dispatch_retries_total", "Delivery attempts after the first, by KafkaSource.", ["source"])
Outcome = Literal["delivered", "dead-lettered", "dropped"]


def is_retryable(status: int | None) -> bool:
    """Whether KafkaSource retries this outcome (None = no response: timeout or connection error)."""
    return status is None or status >= 500 or status in (404, 408, 409, 429)


@dataclass(frozen=True)
class Attempt:
    """What one POST produced."""

    status: int | None
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class DeadLetterWriter(Protocol):
    """Where failed events go (a KafkaSink's topic)."""

    def write(self, event: Event, key: bytes | None) -> bool:
        """Persist `event`; False when it could not be written."""


class Sender:
    """Posts events to one sink URL in binary mode; one HTTP session per thread; retries counted under `name`."""

    def __init__(self, url: str, delivery: DeliverySpec, dead_letter: DeadLetterWriter | None,
                 sleep: Callable[[float], None] = time.sleep, name: str = "") -> None:
        self.url = url
        self.retries = RETRIES.labels(name)
        self.delivery = delivery
        self.dead_letter = dead_letter
        self.sleep = sleep
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._opened_lock = threading.Lock()
        parts = urlsplit(url)
        self._scheme, self._host, self._port = parts.scheme, parts.hostname or "localhost", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def deliver(self, event: Event, key: bytes | None = None) -> Outcome:
        """Send with retries; dead-letter on failure. Never raises for delivery problems."""
        attempt = self._attempt(event)
        retries = 0
        while not attempt.ok and is_retryable(attempt.status) and retries < self.delivery.retry:
            retries += 1
            self.retries.inc()
            self.sleep(self.delivery.backoff(retries))
            attempt = self._attempt(event)
        if attempt.ok:
            return "delivered"
        return self._dead_letter(event, key, attempt)

    def _dead_letter(self, event: Event, key: bytes | None, attempt: Attempt) -> Outcome:
        context = f"ce-id={event.attributes.get('id')} ce-type={event.attributes.get('type')}"
        if self.dead_letter is None:
            log.error("%s dropped after %s: no dead-letter sink", context, attempt.status)
            return "dropped"
        extensions = {
            "knativeerrordest": self.url,
            "knativeerrordata": base64.b64encode(attempt.body[:ERROR_DATA_MAX_BYTES]).decode(),
        }
        if attempt.status is not None:
            extensions["knativeerrorcode"] = str(attempt.status)
        if self.dead_letter.write(event.with_extensions(extensions), key):
            log.warning("%s dead-lettered (status %s)", context, attempt.status)
            return "dead-lettered"
        log.error("%s dropped: the dead-letter sink failed too", context)
        return "dropped"

    def _attempt(self, event: Event) -> Attempt:
        deadline = time.monotonic() + self.delivery.timeout
        headers = event.http_headers()
        wait = 0.05
        while True:
            connection = self._connection()
            connection.timeout = max(0.001, deadline - time.monotonic())
            try:
                if connection.sock is not None:
                    connection.sock.settimeout(connection.timeout)
                connection.request("POST", self._path, body=event.data or b"", headers=headers)
                response = connection.getresponse()
                return Attempt(response.status, response.read())
            except TimeoutError as exc:
                connection.close()
                return Attempt(None, f"dispatch error: timeout after {self.delivery.timeout}s ({exc})".encode())
            except (OSError, http.client.HTTPException) as exc:
                connection.close()  # refused, reset, or a keep-alive connection the sink closed: reconnect
                if time.monotonic() + wait >= deadline:
                    return Attempt(None, f"dispatch error: {exc!r}".encode())
                self.sleep(wait)  # the sink is not up (yet): wait for it, as the activator would
                wait = min(wait * 2, 1.0)

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's keep-alive connection to the sink (http.client: a fraction of requests' CPU)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            connection = self._local.connection = kind(self._host, self._port)
            with self._opened_lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        """Close every thread's connection (call when no delivery is running any more)."""
        with self._opened_lock:
            for connection in self._opened:
                connection.close()
            self._opened.clear()
