"""Deliver over HTTP with several events in flight, in no particular order, as an unordered KafkaSource does.

An ordered sink (a learner: the WAL defines the learning order) gets one event at a time (`HttpSink`). A sink
that does not care about order and commits in groups (delta-sink) is faster with many requests outstanding:
each commit then answers several senders. `UnorderedSink` keeps up to `in_flight` deliveries running, each
on its own keep-alive connection with `HttpSink`'s retries; `send` returns once the event is handed over
and waits only while the window is full. A delivery that runs out of attempts makes the next `send` (or
`close`) raise its `DeliveryError`, so an outage still stops the producer loudly.

Examples
--------
>>> window = UnorderedSink("http://127.0.0.1:9/", in_flight=4, max_attempts=1)
>>> window.stats.sent, window.in_flight
(0, 4)
>>> window.close()
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from types import TracebackType
from typing import Any

from cloudevents.http import CloudEvent

from coelho.producers.sink import DeliveryError, DeliveryStats, HttpSink

__all__ = ["UnorderedSink"]


class UnorderedSink:
    """Up to `in_flight` concurrent deliveries to `url`; other keyword arguments go to each `HttpSink`."""

    def __init__(self, url: str, *, in_flight: int = 50, **options: Any) -> None:
        if in_flight < 1:
            raise ValueError(f"in_flight must be >= 1, got {in_flight}")
        self.url = url
        self.in_flight = in_flight
        self._options = options
        self._slots = threading.BoundedSemaphore(in_flight)
        self._pool = ThreadPoolExecutor(in_flight, thread_name_prefix="unordered-sink")
        self._local = threading.local()
        self._sinks: list[HttpSink] = []
        self._lock = threading.Lock()
        self._failure: DeliveryError | None = None

    @property
    def stats(self) -> DeliveryStats:
        """The counts of every connection, summed."""
        with self._lock:
            return DeliveryStats(**{f.name: sum(getattr(s.stats, f.name) for s in self._sinks)
                                    for f in fields(DeliveryStats)})

    def send(self, event: CloudEvent) -> None:
        """Hand `event` to a free connection (waiting while `in_flight` are outstanding)."""
        self._raise_failure()
        self._slots.acquire()
        self._pool.submit(self._deliver, event)

    def close(self) -> None:
        """Wait for the deliveries in flight, close the connections; raise the first failure, if any."""
        self._pool.shutdown(wait=True)
        with self._lock:
            for sink in self._sinks:
                sink.close()
        self._raise_failure()

    def _deliver(self, event: CloudEvent) -> None:
        try:
            self._sink().send(event)
        except DeliveryError as exc:
            self._failure = self._failure or exc
        finally:
            self._slots.release()

    def _sink(self) -> HttpSink:
        sink = getattr(self._local, "sink", None)
        if sink is None:
            sink = self._local.sink = HttpSink(self.url, **self._options)
            with self._lock:
                self._sinks.append(sink)
        return sink

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def __enter__(self) -> UnorderedSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
