"""Prometheus metrics of the functions and one-line logging with CloudEvent context.

Names follow Prometheus conventions (base units: `_seconds`, `_bytes`; `_total` on counters) and every label
is bounded: a function's target name, a use case, an outcome, a route of the fixed `ROUTES` list, a status
code. Two kinds of metrics:

* **instrumented** where the work happens: RED per function (`RequestMetrics`), learn, predict, SQL,
  delta-sink commits, learner recoveries, checkpoints and leadership changes;
* **read at scrape time** from live state (`watch` + the registry's `StateCollector`): what a learner knows
  (leadership, WAL backlog, last checkpoint, the model's events, quality metrics and drift detections, the
  MLflow outbox) and what delta-sink's writers counted. What comes from the model's state (events applied,
  drift detections, quality) lives in Redis, so it continues across restarts and scale-to-zero instead of
  resetting with the process; only the leader exports it, so a sum over pods counts it once.

Every metric a dashboard or alert rule of `infra/observability/` uses is exported here (or by the dispatcher,
the producers, the Spark job), which tests/integration/test_observability.py checks by scraping real
processes, or is listed with its source in `infra/observability/external-metrics.yaml`.
"""

from __future__ import annotations

import logging
import sys
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from coelho.runtime.learner import Learner

__all__ = [
    "CHECKPOINT_SECONDS",
    "EVENTS",
    "LEADERSHIP",
    "LEARN_SECONDS",
    "MODEL_VERSION",
    "PREDICTIONS",
    "PREDICT_SECONDS",
    "RECOVERY_SECONDS",
    "SINK_COMMIT_SECONDS",
    "SINK_EVENTS",
    "SQL_ERRORS",
    "SQL_ROWS",
    "SQL_SECONDS",
    "PredictionMetrics",
    "RequestMetrics",
    "Sample",
    "configure_logging",
    "learner_samples",
    "observe_learned",
    "watch",
]

FAST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

# RED per function ------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "coelho_http_requests_total", "HTTP requests answered by a function, by route, method and status code.",
    ["function", "route", "method", "code"],
)
HTTP_SECONDS = Histogram(
    "coelho_http_request_duration_seconds", "Time a function took to answer one HTTP request (the network excluded).",
    ["function", "route"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                    10.0, 30.0),
)
#: Paths counted under their own name (every function's routes, the batch functions' included); others are "other".
ROUTES = frozenset({"/", "/status", "/metrics", "/healthz", "/query", "/schema", "/count", "/templates", "/versions",
                    "/runs", "/stop", "/diagnostics", "/comparison"})

# learn -------------------------------------------------------------------------------------------
EVENTS = Counter(
    "coelho_learn_events_total",
    "CloudEvents received by a learn function, by outcome "
    "(accepted, duplicate, rejected, unavailable).",
    ["function", "outcome"],
)
LEARN_SECONDS = Histogram(
    "coelho_learn_duration_seconds", "Time to accept one event (validation and the durable WAL append).",
    ["function"], buckets=FAST_BUCKETS,
)
LEARN_LAG = Histogram(
    "coelho_learn_event_lag_seconds",
    "From an event's own timestamp to the moment the leader learned it (sampled: at most every 10 ms).",
    ["use_case"], buckets=LAG_BUCKETS,
)
#: `observe_learned` samples at most this often (it parses a timestamp: not on every event at 1000+ events/s).
LAG_SAMPLE_S = 0.01
CHECKPOINT_SECONDS = Histogram(
    "coelho_learn_checkpoint_duration_seconds", "Time to serialise, sign and store one checkpoint.",
    ["use_case"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
RECOVERY_SECONDS = Histogram(
    "coelho_learn_recovery_duration_seconds",
    "Time a new lease holder took to rebuild the model (checkpoint load, WAL replay, or the MLflow champion).",
    ["use_case"], buckets=SLOW_BUCKETS,
)
REPLAYED = Counter(
    "coelho_learn_replayed_events_total", "WAL entries replayed by a new lease holder while recovering.", ["use_case"],
)
LEADERSHIP = Counter(
    "coelho_learn_leadership_changes_total",
    "Times this process took the model's lease (acquired) or lost it (lost).", ["use_case", "change"],
)
MODEL_VERSION = Gauge(
    "coelho_model_version", "WAL sequence number of the model a function serves or learns.",
    ["function"],
)

# predict -----------------------------------------------------------------------------------------
PREDICTIONS = Counter(
    "coelho_predictions_total",
    "Predict requests, by outcome (ok, rejected, no_model, error).",
    ["function", "outcome"],
)
PREDICT_SECONDS = Histogram(
    "coelho_predict_duration_seconds", "Time to answer one predict request.", ["function"], buckets=FAST_BUCKETS,
)
PREDICT_STALENESS = Histogram(
    "coelho_predict_model_staleness_seconds",
    "When answering: time since the predictor last caught up with the WAL (every event acknowledged before "
    "then is in the answer), an upper bound of acknowledged → visible.",
    ["function"], buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FRAUD_PROBABILITY = Histogram(
    "coelho_predict_fraud_probability", "Fraud probabilities answered by tfd-predict.", ["source"],
    buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)
ETA_SECONDS = Histogram(
    "coelho_predict_eta_seconds", "Travel times answered by eta-predict.", ["source"],
    buckets=(60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800),
)
CLUSTERS = Counter(
    "coelho_predict_clusters_total", "Clusters answered by ecci-predict, by cluster id (ids from 32 on: '32+').",
    ["source", "cluster"],
)
MAX_CLUSTER_LABEL = 32

# delta-sink and SQL -----------------------------------------------------------------------------------
SINK_EVENTS = Counter(
    "coelho_sink_events_total",
    "CloudEvents received by delta-sink, by outcome (written, duplicate, rejected, unavailable).",
    ["function", "outcome"],
)
SINK_COMMIT_SECONDS = Histogram(
    "coelho_sink_commit_duration_seconds", "Time to commit one micro-batch to a Delta table (retries included).",
    ["use_case"], buckets=SLOW_BUCKETS,
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


class RequestMetrics:
    """RED metrics of one function: `observe(path, method, status, seconds)` once per answered request."""

    def __init__(self, function: str) -> None:
        self.function = function
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its duration (label children are cached: this is on every request's path)."""
        route = path.rstrip("/") or "/"
        route = route if route in ROUTES else "other"
        method = method if method in ("GET", "POST") else "other"
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = HTTP_REQUESTS.labels(self.function, route, method, str(status))
        counter.inc()
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._histograms[route] = HTTP_SECONDS.labels(self.function, route)
        histogram.observe(seconds)


class PredictionMetrics:
    """What a predict function answered: score distributions and how fresh its model was."""

    def __init__(self, function: str, use_case: str) -> None:
        self.use_case = use_case
        self.staleness = PREDICT_STALENESS.labels(function)

    def observe(self, answer: dict[str, Any], staleness_seconds: float) -> None:
        """Account for one answer of the use case's predictor."""
        source = answer.get("model_source", "live")
        if source == "live":
            self.staleness.observe(staleness_seconds)
        if self.use_case == "tfd":
            FRAUD_PROBABILITY.labels(source).observe(answer["fraud_probability"])
        elif self.use_case == "eta":
            ETA_SECONDS.labels(source).observe(answer["eta_seconds"])
        else:
            cluster = answer["cluster"]
            CLUSTERS.labels(source, str(cluster) if cluster < MAX_CLUSTER_LABEL else f"{MAX_CLUSTER_LABEL}+").inc()


_lag: dict[str, Any] = {}
_lag_at: dict[str, float] = {}


def observe_learned(use_case: str, event_time: str | None) -> None:
    """The lag from the newest learned event's timestamp to now (called after the leader learned events)."""
    now = time.monotonic()
    if event_time is None or now - _lag_at.get(use_case, -LAG_SAMPLE_S) < LAG_SAMPLE_S:
        return
    _lag_at[use_case] = now
    histogram = _lag.get(use_case) or _lag.setdefault(use_case, LEARN_LAG.labels(use_case))
    histogram.observe(max(0.0, time.time() - datetime.fromisoformat(event_time).timestamp()))


# read at scrape time --------------------------------------------------------------------------------
Sample = tuple[str, tuple[str, ...], float]


@dataclass(frozen=True)
class StateMetric:
    """A metric whose value is read from live state when Prometheus scrapes."""

    name: str
    kind: Literal["counter", "gauge"]
    help: str
    labels: tuple[str, ...] = ("use_case",)


STATE_METRICS: tuple[StateMetric, ...] = (
    StateMetric("coelho_learn_leader", "gauge", "1 while this learner process holds its model's lease, else 0."),
    StateMetric("coelho_learn_wal_backlog_events", "gauge",
                "Events accepted into the WAL and not learned yet by the leader (accepted - learned)."),
    StateMetric("coelho_learn_checkpoint_timestamp_seconds", "gauge", "Unix time of the leader's last checkpoint."),
    StateMetric("coelho_learn_checkpoint_size_bytes", "gauge", "Size of the leader's last signed checkpoint."),
    StateMetric("coelho_learn_apply_errors_total", "counter",
                "Logged events the model failed on (skipped the same way on every replay), since the process started."),
    StateMetric("coelho_model_events_applied_total", "counter",
                "Events the model has learned, from its state (continues across restarts; exported by the leader)."),
    StateMetric("coelho_model_last_event_timestamp_seconds", "gauge",
                "Event time (the event's own timestamp) of the newest event the model learned."),
    StateMetric("coelho_model_metric", "gauge",
                "The model's prequential quality metrics (the /status `metrics`, scalars), by metric name.",
                ("use_case", "metric")),
    StateMetric("coelho_drift_detections_total", "counter",
                "Concept-drift detections on the model's error stream, from its state (replays give the same)."),
    StateMetric("coelho_drift_error_mean", "gauge",
                "Mean of the drift detector's current window of the error stream (what a detection compares)."),
    StateMetric("coelho_mlflow_outbox_pending_jobs", "gauge", "MLflow jobs queued by this learner, not delivered yet."),
    StateMetric("coelho_mlflow_outbox_dropped_total", "counter",
                "MLflow metric logs dropped because the outbox was full (MLflow unreachable for long)."),
    StateMetric("coelho_mlflow_outbox_delivered_total", "counter", "MLflow jobs this learner delivered."),
    StateMetric("coelho_mlflow_outbox_failing", "gauge", "1 while the oldest MLflow job keeps failing, else 0."),
    StateMetric("coelho_sink_rows_total", "counter", "Rows delta-sink committed to the use case's Delta table."),
    StateMetric("coelho_sink_commits_total", "counter", "Delta commits (micro-batches) of delta-sink."),
    StateMetric("coelho_sink_commit_failures_total", "counter",
                "Micro-batches delta-sink could not commit after its attempts (their senders got 503)."),
    StateMetric("coelho_sink_compactions_total", "counter", "Compactions (optimize + vacuum) of the Delta table."),
    StateMetric("coelho_sink_pending_events", "gauge", "Events waiting for delta-sink's next commit."),
)


class StateSource(Protocol):
    def metric_samples(self) -> Iterable[Sample]:
        """(metric name, label values, value) of every state metric this object knows."""


_sources: weakref.WeakSet[Any] = weakref.WeakSet()


def watch(source: StateSource) -> None:
    """Export `source`'s `metric_samples()` at every scrape, for as long as it lives."""
    _sources.add(source)


class StateCollector:
    """The registry's collector of `STATE_METRICS`, read from every watched source (one sample per label set)."""

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for source in list(_sources):
            for name, labels, value in source.metric_samples():
                if (name, labels) not in seen:
                    seen.add((name, labels))
                    families[name].add_metric(labels, value)
        yield from families.values()

    @staticmethod
    def _families() -> dict[str, Metric]:
        kinds = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
        return {m.name: kinds[m.kind](m.name, m.help, labels=m.labels) for m in STATE_METRICS}


REGISTRY.register(StateCollector())


def learner_samples(learner: Learner) -> Iterator[Sample]:
    """What one learner knows, as state-metric samples (the model's own figures only from the leader)."""
    from coelho.runtime.history import scalar_metrics

    uc = (learner.use_case.key,)
    leader = learner.token is not None and not learner.lost.is_set()
    yield "coelho_learn_leader", uc, float(leader)
    if learner.history is not None:
        outbox = learner.history.outbox.status()
        yield "coelho_mlflow_outbox_pending_jobs", uc, float(outbox["pending"])
        yield "coelho_mlflow_outbox_dropped_total", uc, float(outbox["dropped"])
        yield "coelho_mlflow_outbox_delivered_total", uc, float(outbox["delivered"])
        yield "coelho_mlflow_outbox_failing", uc, float(not outbox["ok"])
    if not leader or not learner.model_lock.acquire(timeout=0.2):
        return
    try:
        model, replica = learner.replica.model, learner.replica
        yield "coelho_learn_wal_backlog_events", uc, float(max(0, learner.accepted_seq - replica.seq))
        yield "coelho_learn_apply_errors_total", uc, float(replica.apply_errors)
        checkpoint = learner.last_checkpoint
        if checkpoint:
            yield "coelho_learn_checkpoint_timestamp_seconds", uc, datetime.fromisoformat(
                checkpoint["created_at"]).timestamp()
            yield "coelho_learn_checkpoint_size_bytes", uc, float(checkpoint["bytes"])
        if model is None:
            return
        yield "coelho_model_events_applied_total", uc, float(model.events_applied)
        if model.last_event_time is not None:
            yield "coelho_model_last_event_timestamp_seconds", uc, datetime.fromisoformat(
                model.last_event_time).timestamp()
        for name, value in scalar_metrics(model.metrics.report()).items():
            yield "coelho_model_metric", (*uc, name), value
        yield "coelho_drift_detections_total", uc, float(model.drift.detections)
        yield "coelho_drift_error_mean", uc, float(model.drift.detector.estimation)
    finally:
        learner.model_lock.release()


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
