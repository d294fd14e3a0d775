"""Prometheus metrics of the producers, named as the original system's (``kafka_producer_*``).

`KafkaSink` records the delivery metrics; `HttpSink` its own (``coelho_producer_http_*``: over HTTP there
is no Kafka); `StreamGauges` the two stream gauges (TFD fraud ratio, ECCI open sessions); `serve_metrics`
exposes them all on ``http://<host>:<port>/metrics``. They live
in their own `REGISTRY`, apart from the functions' metrics in the default one.

Examples
--------
>>> from prometheus_client import generate_latest
>>> "kafka_producer_fraud_ratio" in generate_latest(REGISTRY).decode()
True
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from coelho.producers.base import EventGenerator
from coelho.producers.ecci import EcciGenerator
from coelho.producers.tfd import TfdGenerator

__all__ = [
    "ACTIVE_SESSIONS", "CONNECTED", "CONNECTION_RETRIES", "ERRORS", "FRAUD_RATIO", "HTTP_EVENTS", "HTTP_RETRIES",
    "LAST_MESSAGE", "MESSAGES_SENT", "MESSAGE_BYTES", "REGISTRY", "SEND_SECONDS", "StreamGauges", "serve_metrics",
]

log = logging.getLogger(__name__)

#: The TFD fraud ratio is refreshed every this many TFD events, the ECCI open sessions every that many.
FRAUD_RATIO_EVERY = 100
ACTIVE_SESSIONS_EVERY = 50

REGISTRY = CollectorRegistry()

MESSAGES_SENT = Counter(
    "kafka_producer_messages_sent_total", "Events acknowledged by the Kafka broker (acks=all).",
    ["topic", "producer"], registry=REGISTRY,
)
ERRORS = Counter(
    "kafka_producer_errors_total",
    "Events that failed: refused by the client or not delivered within message.timeout.ms; "
    "error_type is the Kafka error name, lower case (e.g. msg_timed_out).",
    ["topic", "producer", "error_type"], registry=REGISTRY,
)
SEND_SECONDS = Histogram(
    "kafka_producer_send_duration_seconds", "Time from produce() to the broker's acknowledgement.",
    ["topic"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=REGISTRY,
)
MESSAGE_BYTES = Histogram(
    "kafka_producer_message_size_bytes", "Size of the record value (the event's JSON data).",
    ["topic"], buckets=(100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000), registry=REGISTRY,
)
CONNECTED = Gauge(
    "kafka_producer_connected", "1 while the producer's last contact with the broker succeeded, else 0.",
    ["producer"], registry=REGISTRY,
)
CONNECTION_RETRIES = Counter(
    "kafka_producer_connection_retries_total",
    "Failed connection attempts: readiness checks at start, and losses of every broker connection.",
    ["producer"], registry=REGISTRY,
)
LAST_MESSAGE = Gauge(
    "kafka_producer_last_message_timestamp", "Unix time of the last acknowledged event.",
    ["producer"], registry=REGISTRY,
)
FRAUD_RATIO = Gauge(
    "kafka_producer_fraud_ratio", f"Share of fraudulent TFD events so far, refreshed every {FRAUD_RATIO_EVERY}.",
    registry=REGISTRY,
)
HTTP_EVENTS = Counter(
    "coelho_producer_http_events_total",
    "Events a producer posted over HTTP, by outcome: delivered (2xx), rejected (a 4xx that is not retried), "
    "failed (attempts exhausted: the producer stops).",
    ["producer", "outcome"], registry=REGISTRY,
)
HTTP_RETRIES = Counter(
    "coelho_producer_http_retries_total", "HTTP attempts after the first (connection errors, 5xx, 404/408/409/429).",
    ["producer"], registry=REGISTRY,
)
ACTIVE_SESSIONS = Gauge(
    "kafka_producer_active_sessions", f"Open ECCI sessions, refreshed every {ACTIVE_SESSIONS_EVERY} events.",
    registry=REGISTRY,
)

class StreamGauges:
    """Keep the stream gauges of one producer run up to date, one payload at a time."""

    def __init__(self, generator: EventGenerator) -> None:
        self._generator = generator
        self._count = 0
        self._frauds = 0

    def observe(self, payload: Mapping[str, Any]) -> None:
        """Count `payload`; refresh the fraud ratio (TFD) or open sessions (ECCI) when due."""
        self._count += 1
        if isinstance(self._generator, TfdGenerator):
            self._frauds += int(payload["is_fraud"])
            if self._count % FRAUD_RATIO_EVERY == 0:
                FRAUD_RATIO.set(self._frauds / self._count)
        elif isinstance(self._generator, EcciGenerator) and self._count % ACTIVE_SESSIONS_EVERY == 0:
            ACTIVE_SESSIONS.set(self._generator.open_sessions)


@contextmanager
def serve_metrics(port: int | None, addr: str = "0.0.0.0") -> Iterator[int | None]:
    """Serve the metrics on ``:<port>/metrics`` while the block runs (port 0: any free port).

    Yields the port actually bound, or None when `port` is None (serving is off). Raises
    ValueError when the port cannot be bound.
    """
    if port is None:
        yield None
        return
    try:
        server, thread = start_http_server(port, addr=addr, registry=REGISTRY)
    except (OSError, OverflowError) as exc:  # in use, or not a port number
        raise ValueError(f"cannot serve metrics on port {port}: {exc}") from None
    bound = server.server_address[1]
    log.info("serving Prometheus metrics on http://%s:%d/metrics", addr, bound)
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
