"""Prometheus metrics of the functions and one-line logging with CloudEvent context."""

from __future__ import annotations

import logging
import sys

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "EVENTS",
    "LEARN_SECONDS",
    "MODEL_VERSION",
    "PREDICTIONS",
    "PREDICT_SECONDS",
    "SQL_ERRORS",
    "SQL_ROWS",
    "SQL_SECONDS",
    "SINK_EVENTS",
    "configure_logging",
]

EVENTS = Counter(
    "coelho_learn_events_total",
    "CloudEvents received by a learn function, by outcome "
    "(accepted, duplicate, rejected, unavailable).",
    ["function", "outcome"],
)
LEARN_SECONDS = Histogram(
    "coelho_learn_seconds", "Time to accept and apply one event (WAL append + learn).",
    ["function"], buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)
PREDICTIONS = Counter(
    "coelho_predictions_total",
    "Predict requests, by outcome (ok, rejected, no_model, error).",
    ["function", "outcome"],
)
PREDICT_SECONDS = Histogram(
    "coelho_predict_seconds", "Time to answer one predict request.",
    ["function"], buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)
SINK_EVENTS = Counter(
    "coelho_sink_events_total",
    "CloudEvents received by delta-sink, by outcome (written, duplicate, rejected, unavailable).",
    ["function", "outcome"],
)
MODEL_VERSION = Gauge(
    "coelho_model_version", "WAL sequence number of the model a function serves or learns.",
    ["function"],
)

SQL_SECONDS = Histogram(
    "coelho_sql_query_duration_seconds", "Time to answer one SQL query (refresh, run, JSON rows).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SQL_ROWS = Histogram(
    "coelho_sql_rows_returned", "Rows returned by one SQL query.",
    buckets=(0, 1, 10, 100, 1000, 10_000, 100_000),
)
SQL_ERRORS = Counter(
    "coelho_sql_errors_total",
    "Refused or failed SQL requests, by type (validation, forbidden, timeout, memory, execution, no_data).",
    ["error_type"],
)


def configure_logging(level: str) -> None:
    """Log to stdout, one line per record; callers put the CloudEvent id and type in messages."""
    root = logging.getLogger()
    if any(getattr(h, "_coelho", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._coelho = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
