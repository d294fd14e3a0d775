"""Build the observability manifests from one description: Grafana dashboards, their ConfigMaps, PodMonitors.

    .venv/bin/python infra/observability/build.py          # write dashboards/*.json, grafana-dashboards.yaml,
                                                            # podmonitors.yaml
    .venv/bin/python infra/observability/build.py --check  # exit 1 when a committed file differs (tests run this)

Dashboards are data (`DASHBOARDS`: rows of panels, each a title, what it answers, PromQL and a unit), laid
out on Grafana's 24-column grid. Each dashboard is provisioned by a ConfigMap carrying the Grafana sidecar's
label (`grafana_dashboard: "1"`, as kube-prometheus-stack's Grafana watches). The PodMonitor scrapes every
function of `coelho.runtime.catalog` on its user port and labels it like the local Prometheus does
(`service`, `role`), so the alert rules and dashboards read the same labels in both places.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coelho.runtime.catalog import FUNCTIONS

HERE = Path(__file__).resolve().parent
DASHBOARD_DIR = HERE / "dashboards"
CONFIGMAPS = HERE / "grafana-dashboards.yaml"
PODMONITORS = HERE / "podmonitors.yaml"
NAMESPACE = "coelho"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
USE_CASE = '{use_case="$use_case"}'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    """One Grafana panel: `queries` are (PromQL, legend) pairs; `buckets`: they are cumulative histogram buckets."""

    title: str
    description: str
    queries: Sequence[tuple[str, str]]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    height: int = 8
    buckets: bool = False


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: rows of panels, optional use-case variable and drift annotations."""

    uid: str
    title: str
    description: str
    rows: Sequence[tuple[str, Sequence[Panel]]]
    per_use_case: bool = False
    drift_marks: bool = False
    tags: Sequence[str] = field(default=("coelho",))


def p99(metric: str, by: str = "", selector: str = "") -> str:
    """PromQL of the 99th percentile of histogram `metric` (`by`: extra grouping labels)."""
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile(0.99, sum by ({group}) (rate({metric}_bucket{selector}[{RATE}])))"


def rate(metric: str, by: str, selector: str = "") -> str:
    """PromQL of per-second `rate` summed by `by`."""
    return f"sum by ({by}) (rate({metric}{selector}[{RATE}]))"


DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard("coelho-overview", "COELHO / Platform overview",
              "Is the platform up, learning and serving? One line per use case; alerts firing now.", [
        ("Health", [
            Panel("Firing alerts", "Alerts of the platform firing now, by name.",
                  [('sum by (alertname) (ALERTS{alertstate="firing", alertname=~"Coelho.+"})', "{{alertname}}")],
                  kind="stat", width=6),
            Panel("Functions up", "Function processes answering their scrape, by role (0 while scaled to zero).",
                  [("sum by (role) (up{role!=\"\"})", "{{role}}")], kind="stat", width=6),
            Panel("Learner leading", "1 when a learner process of the use case holds the model's lease.",
                  [("max by (use_case) (coelho_learn_leader)", "{{use_case}}")], kind="stat", width=6),
            Panel("Drift detections (24 h)", "Concept-drift detections on each model's error stream, last 24 h.",
                  [("sum by (use_case) (increase(coelho_drift_detections_total[24h]))", "{{use_case}}")],
                  kind="stat", width=6),
        ]),
        ("Traffic", [
            Panel("Events learned / s", "Events each model learned per second (from the model's own count).",
                  [(rate("coelho_model_events_applied_total", "use_case"), "{{use_case}}")], unit="ops"),
            Panel("Predictions / s", "Predict requests answered, by function and outcome.",
                  [(rate("coelho_predictions_total", "function, outcome"), "{{function}} {{outcome}}")], unit="ops"),
            Panel("5xx share", "Share of each function's requests answered with a 5xx.",
                  [(rate("coelho_http_requests_total", "function", selector='{code=~"5.."}') + " / "
                    + rate("coelho_http_requests_total", "function"), "{{function}}")], unit="percentunit"),
        ]),
        ("Freshness", [
            Panel("Event → learned, p99", "From an event's own timestamp to the moment the leader learned it.",
                  [(p99("coelho_learn_event_lag_seconds", "use_case"), "{{use_case}}")], unit="s"),
            Panel("Acknowledged → visible to predict, p99",
                  "Upper bound: time since the predictor last caught up with the WAL when it answered.",
                  [(p99("coelho_predict_model_staleness_seconds", "function"), "{{function}}")], unit="s"),
            Panel("Dead letters (1 h)", "Events that went to a dead-letter topic in the last hour.",
                  [('sum by (source) (increase(coelho_dispatch_events_total{outcome="dead-lettered"}[1h]))',
                    "{{source}}"),
                   ('sum by (topic) (delta(kafka_topic_partition_current_offset{topic=~".+\\\\.dead-letter"}[1h]))',
                    "{{topic}}")], kind="stat"),
        ]),
    ]),
    Dashboard("coelho-online-learning", "COELHO / Online learning",
              "One use case's model: prequential quality, events per second, freshness, drift (red marks).", [
        ("Quality", [
            Panel("Champion metric", "The metric that ranks models (TFD FBeta, ETA MAE, ECCI Silhouette), overall "
                  "and over the last 1000 events.",
                  [('coelho_model_metric{use_case="$use_case", metric=~"FBeta|RollingFBeta|MAE|RollingMAE|'
                    'Silhouette|RollingSilhouette"}', "{{metric}}")], width=12),
            Panel("All quality metrics", "Every scalar of the model's metric suite (as in /status).",
                  [('coelho_model_metric{use_case="$use_case", metric!~"ConfusionMatrix.+|samples_per_cluster.+"}',
                    "{{metric}}")], width=12),
        ]),
        ("Flow", [
            Panel("Events learned / s", "From the model's own count: continues across restarts.",
                  [(f"sum(rate(coelho_model_events_applied_total{USE_CASE}[{RATE}]))", "learned")], unit="ops"),
            Panel("Event → learned", "p50 and p99 of the time from an event's timestamp to its learning.",
                  [(f"histogram_quantile(0.5, sum by (le) (rate(coelho_learn_event_lag_seconds_bucket{USE_CASE}"
                    f"[{RATE}])))", "p50"), (p99("coelho_learn_event_lag_seconds", selector=USE_CASE), "p99")],
                  unit="s"),
            Panel("WAL backlog", "Events accepted and not learned yet by the leader.",
                  [(f"max(coelho_learn_wal_backlog_events{USE_CASE})", "backlog")]),
        ]),
        ("Drift", [
            Panel("Error stream (detector window mean)", "The mean the drift detector compares: a detection is a "
                  "significant rise of it.", [(f"max(coelho_drift_error_mean{USE_CASE})", "error mean")], width=12),
            Panel("Drift detections", "Cumulative detections, from the model's state (replays give the same).",
                  [(f"max(coelho_drift_detections_total{USE_CASE})", "detections")], width=12),
        ]),
        ("Predictions", [
            Panel("Fraud probability (tfd)", "Distribution of the fraud probabilities tfd-predict answered.",
                  [("sum by (le) (increase(coelho_predict_fraud_probability_bucket[$__range]))", "{{le}}")],
                  kind="bargauge", buckets=True),
            Panel("ETA seconds (eta)", "Distribution of the travel times eta-predict answered.",
                  [("sum by (le) (increase(coelho_predict_eta_seconds_bucket[$__range]))", "{{le}}")],
                  kind="bargauge", buckets=True),
            Panel("Clusters (ecci)", "How often ecci-predict answered each cluster.",
                  [("sum by (cluster) (increase(coelho_predict_clusters_total[$__range]))", "{{cluster}}")],
                  kind="bargauge"),
        ]),
    ], per_use_case=True, drift_marks=True),
    Dashboard("coelho-functions", "COELHO / Functions",
              "RED per function (rate, errors, duration), Knative replicas, cold starts and queue-proxy latency.", [
        ("Requests", [
            Panel("Requests / s", "Per function and status code.",
                  [(rate("coelho_http_requests_total", "function, code"), "{{function}} {{code}}")], unit="reqps"),
            Panel("Errors / s", "4xx and 5xx answers per function.",
                  [(rate("coelho_http_requests_total", "function, code", selector='{code=~"[45].."}'),
                    "{{function}} {{code}}")], unit="reqps"),
            Panel("Duration p99", "Time the function took to answer, per route.",
                  [(p99("coelho_http_request_duration_seconds", "function, route"), "{{function}} {{route}}")],
                  unit="s"),
        ]),
        ("Work", [
            Panel("Learn: events by outcome", "Accepted, duplicate (redeliveries) and rejected events.",
                  [(rate("coelho_learn_events_total", "function, outcome"), "{{function}} {{outcome}}")], unit="ops"),
            Panel("Learn: accept p99", "Validation and the durable WAL append.",
                  [(p99("coelho_learn_duration_seconds", "function"), "{{function}}")], unit="s"),
            Panel("Predict p99", "Time to answer one prediction.",
                  [(p99("coelho_predict_duration_seconds", "function"), "{{function}}")], unit="s"),
        ]),
        ("Knative", [
            Panel("Replicas", "Pods per revision (autoscaler) and how many it wants.",
                  [('sum by (kn_service_name) (kn_revision_pods_count{k8s_namespace_name="coelho"})',
                    "{{kn_service_name}}"),
                   ('sum by (kn_service_name) (kn_revision_pods_desired{k8s_namespace_name="coelho"})',
                    "{{kn_service_name}} desired")]),
            Panel("Process starts (1 h)", "Function processes started in the last hour: cold starts and restarts.",
                  [('count by (service) (max_over_time(process_start_time_seconds{role!=""}[1h]) > time() - 3600)',
                    "{{service}}")], kind="stat"),
            Panel("Queue-proxy p99", "Request duration seen by Knative's queue-proxy (includes queueing).",
                  [("histogram_quantile(0.99, sum by (kn_service_name, le) (rate("
                    f'kn_serving_invocation_duration_seconds_bucket{{k8s_namespace_name="coelho"}}[{RATE}])))',
                    "{{kn_service_name}}")], unit="s"),
            Panel("Queue depth", "Requests waiting in queue-proxy.",
                  [('sum by (kn_service_name) (kn_serving_queue_depth{k8s_namespace_name="coelho"})',
                    "{{kn_service_name}}")]),
            Panel("Activator concurrency", "Requests held by the activator (a function scaled to zero waking up).",
                  [('sum by (kn_service_name) (kn_revision_request_concurrency{k8s_namespace_name="coelho"})',
                    "{{kn_service_name}}")]),
            Panel("Container restarts (1 h)", "Restarts of the namespace's containers (kube-state-metrics).",
                  [('sum by (pod) (increase(kube_pod_container_status_restarts_total{namespace="coelho"}[1h]))',
                    "{{pod}}")], kind="stat"),
        ]),
    ]),
    Dashboard("coelho-kafka", "COELHO / Kafka path",
              "Producers → topics → KafkaSources → functions: produce rate, consumer lag, retries, dead letters.", [
        ("Produce", [
            Panel("Produced / s", "Events acknowledged by the broker, per topic (Kafka), or delivered over HTTP.",
                  [(rate("kafka_producer_messages_sent_total", "topic"), "{{topic}}"),
                   (rate("coelho_producer_http_events_total", "producer, outcome"), "http {{producer}} {{outcome}}")],
                  unit="ops"),
            Panel("Producer errors / s", "Kafka errors by type; HTTP retries.",
                  [(rate("kafka_producer_errors_total", "producer, error_type"), "{{producer}} {{error_type}}"),
                   (rate("coelho_producer_http_retries_total", "producer"), "http retries {{producer}}")], unit="ops"),
            Panel("Send p99", "produce() to the broker's acknowledgement.",
                  [(p99("kafka_producer_send_duration_seconds", "topic"), "{{topic}}")], unit="s"),
        ]),
        ("Consume", [
            Panel("Consumer lag", "Records not delivered yet: local dispatcher per source, Kafka exporter per group.",
                  [("sum by (source) (coelho_dispatch_consumer_lag_records)", "{{source}}"),
                   ('sum by (consumergroup) (kafka_consumergroup_lag{consumergroup=~"coelho-.+"})',
                    "{{consumergroup}}")]),
            Panel("Delivered / s", "Deliveries by outcome (delivered, dead-lettered, dropped).",
                  [(rate("coelho_dispatch_events_total", "source, outcome"), "{{source}} {{outcome}}")], unit="ops"),
            Panel("Record → acknowledged p99", "Record timestamp to the function's 2xx.",
                  [(p99("coelho_dispatch_latency_seconds", "source"), "{{source}}")], unit="s"),
            Panel("Retries / s", "Delivery attempts after the first.",
                  [(rate("coelho_dispatch_retries_total", "source"), "{{source}}")], unit="ops"),
            Panel("In flight", "Records handed to a function and not finished.",
                  [("sum by (source) (coelho_dispatch_in_flight_events)", "{{source}}")]),
            Panel("Dead letters", "Events sent to the dead-letter topics (local and cluster).",
                  [('sum by (source) (increase(coelho_dispatch_events_total{outcome="dead-lettered"}[1h]))',
                    "{{source}}"),
                   ('sum by (topic) (delta(kafka_topic_partition_current_offset{topic=~".+\\\\.dead-letter"}[1h]))',
                    "{{topic}}")], kind="stat"),
        ]),
    ]),
    Dashboard("coelho-state-storage", "COELHO / State and storage",
              "Redis (model state), checkpoints and recoveries, MLflow outbox, Delta commits, Spark, SQL.", [
        ("Redis / Valkey", [
            Panel("Up", "Valkey answering its exporter.", [("max(redis_up)", "up")], kind="stat", width=6),
            Panel("Memory", "Memory used by Valkey.", [("max(redis_memory_used_bytes)", "used")], unit="bytes",
                  width=6),
            Panel("Commands / s", "Commands processed.",
                  [(f"sum(rate(redis_commands_processed_total[{RATE}]))", "commands")], unit="ops", width=6),
            Panel("Clients", "Connected clients.", [("sum(redis_connected_clients)", "clients")], width=6),
        ]),
        ("Checkpoints and leadership", [
            Panel("Checkpoint age", "Seconds since the leader's last checkpoint.",
                  [("time() - max by (use_case) (coelho_learn_checkpoint_timestamp_seconds)", "{{use_case}}")],
                  unit="s"),
            Panel("Checkpoint size", "Size of the last signed checkpoint.",
                  [("max by (use_case) (coelho_learn_checkpoint_size_bytes)", "{{use_case}}")], unit="bytes"),
            Panel("Checkpoint p99", "Serialise, sign and store.",
                  [(p99("coelho_learn_checkpoint_duration_seconds", "use_case"), "{{use_case}}")], unit="s"),
            Panel("Lease changes (1 h)", "Leadership acquired and lost by learner processes.",
                  [("sum by (use_case, change) (increase(coelho_learn_leadership_changes_total[1h]))",
                    "{{use_case}} {{change}}")], kind="stat"),
            Panel("Recovery duration p99", "Checkpoint load + WAL replay of a new leader.",
                  [(p99("coelho_learn_recovery_duration_seconds", "use_case"), "{{use_case}}")], unit="s"),
            Panel("MLflow outbox", "Jobs waiting for MLflow, and metric logs dropped.",
                  [("max by (use_case) (coelho_mlflow_outbox_pending_jobs)", "{{use_case}} pending"),
                   ("sum by (use_case) (increase(coelho_mlflow_outbox_dropped_total[1h]))", "{{use_case}} dropped")]),
        ]),
        ("Delta Lake and SQL", [
            Panel("Delta commits / s", "Micro-batches delta-sink committed, and rows per second.",
                  [(rate("coelho_sink_commits_total", "use_case"), "{{use_case}} commits"),
                   (rate("coelho_sink_rows_total", "use_case"), "{{use_case}} rows")], unit="ops"),
            Panel("Delta commit p99", "Time to commit one micro-batch.",
                  [(p99("coelho_sink_commit_duration_seconds", "use_case"), "{{use_case}}")], unit="s"),
            Panel("Spark rows / s", "Rows the Spark job appended, and quarantined records.",
                  [(rate("coelho_spark_rows_total", "use_case"), "{{use_case}}"),
                   (rate("coelho_spark_quarantined_total", "use_case"), "{{use_case}} quarantined")], unit="ops"),
            Panel("SQL queries p99", "Time to answer one query.",
                  [(p99("coelho_sql_query_duration_seconds"), "p99")], unit="s"),
            Panel("SQL errors / s", "Refused or failed queries, by type.",
                  [(rate("coelho_sql_errors_total", "error_type"), "{{error_type}}")], unit="ops"),
            Panel("SQL rows returned p99", "Rows per answer.",
                  [(p99("coelho_sql_rows_returned"), "p99")]),
        ]),
    ]),
    Dashboard("coelho-batch-training", "COELHO / Batch training",
              "Batch retraining (CatBoost, scikit-learn) per use case: runs, progress, duration, last success.", [
        ("Runs", [
            Panel("Runs (24 h)", "Training runs by outcome.",
                  [("sum by (use_case, outcome) (increase(coelho_training_runs_total[24h]))",
                    "{{use_case}} {{outcome}}")], kind="stat"),
            Panel("Progress", "0..1 while a run is going.",
                  [("max by (use_case) (coelho_training_progress_ratio)", "{{use_case}}")], unit="percentunit"),
            Panel("Since last success", "Time since the last finished run.",
                  [("time() - max by (use_case) (coelho_training_last_success_timestamp_seconds)", "{{use_case}}")],
                  unit="s"),
            Panel("Run duration p50", "Median duration of whole runs.",
                  [("histogram_quantile(0.5, sum by (use_case, le) (rate(coelho_training_duration_seconds_bucket"
                    "[1d])))", "{{use_case}}")], unit="s"),
        ]),
    ]),
)


def _grafana_panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if panel.kind == "timeseries" else {},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
                     **({"format": "heatmap"} if panel.buckets else {})}  # Grafana turns cumulative into per-bucket
                    for i, (expr, legend) in enumerate(panel.queries)],
    }


def grafana_json(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard model (schema 39) of `dashboard`, panels laid out left to right, row by row."""
    panels: list[dict[str, Any]] = []
    y = 0
    for title, row in dashboard.rows:
        panels.append({"id": len(panels) + 1, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        y += 1
        x = 0
        for panel in row:
            if x + panel.width > 24:
                x, y = 0, y + panel.height
            panels.append(_grafana_panel(panel, len(panels) + 1, x, y))
            x += panel.width
        y += max(p.height for p in row)
    variables: list[dict[str, Any]] = [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                        "query": "prometheus", "current": {}, "hide": 0}]
    if dashboard.per_use_case:
        variables.append({"name": "use_case", "label": "Use case", "type": "custom", "query": "tfd,eta,ecci",
                          "current": {"text": "tfd", "value": "tfd"}, "hide": 0,
                          "options": [{"text": key, "value": key, "selected": key == "tfd"}
                                      for key in ("tfd", "eta", "ecci")]})
    annotations: list[dict[str, Any]] = [{"builtIn": 1, "name": "Annotations & Alerts", "type": "dashboard",
                                          "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                          "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)"}]
    if dashboard.drift_marks:
        annotations.append({"name": "Drift detected", "datasource": DATASOURCE, "enable": True,
                            "iconColor": "red", "step": "30s", "titleFormat": "Drift detected ({{use_case}})",
                            "tagKeys": "use_case",
                            "expr": "changes(max by (use_case) (coelho_drift_detections_total"
                                    f"{USE_CASE})[1m:15s]) > 0"})
    return {
        "uid": dashboard.uid, "title": dashboard.title, "description": dashboard.description,
        "tags": list(dashboard.tags), "timezone": "browser", "schemaVersion": 39, "version": 1,
        "editable": True, "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables}, "annotations": {"list": annotations}, "panels": panels,
    }


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a Grafana dashboard model (panel targets and annotations)."""
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return exprs + [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]


def configmaps(models: Sequence[dict[str, Any]]) -> str:
    """One ConfigMap per dashboard, labelled for the Grafana sidecar, as a multi-document YAML."""
    documents = [{
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"grafana-dashboard-{model['uid']}", "namespace": NAMESPACE,
                     "labels": {"grafana_dashboard": "1", "app.kubernetes.io/part-of": "coelho-realtime"},
                     "annotations": {"grafana_folder": "COELHO"}},
        "data": {f"{model['uid']}.json": _dumps(model)},
    } for model in models]
    header = "# Generated by infra/observability/build.py from its DASHBOARDS: edit there, then run it.\n"
    return header + yaml.safe_dump_all(documents, sort_keys=False, width=120)


def podmonitors() -> str:
    """The PodMonitors: functions (labels `service` and `role` from the catalog), producers, Kafka Exporter."""
    served = [spec for spec in FUNCTIONS if spec.role != "baseline"]
    service_label = "__meta_kubernetes_pod_label_serving_knative_dev_service"
    relabelings: list[dict[str, Any]] = [{"sourceLabels": [service_label], "targetLabel": "service"}]
    relabelings += [{"sourceLabels": [service_label], "regex": spec.name, "targetLabel": "role",
                     "replacement": spec.role} for spec in served]
    functions = _podmonitor("coelho-functions", NAMESPACE, {"matchExpressions": [
        {"key": "serving.knative.dev/service", "operator": "In", "values": [spec.name for spec in served]}]}, [
        # The function's own /metrics on the pod IP: a scrape neither counts as traffic nor keeps a pod alive.
        {"port": "user-port", "path": "/metrics", "interval": "15s", "relabelings": relabelings},
        # Knative's request metrics from the queue-proxy (config-observability: request-metrics-protocol prometheus).
        {"port": "http-usermetric", "path": "/metrics", "interval": "15s", "relabelings": relabelings},
    ])
    producers = _podmonitor("coelho-producers", NAMESPACE, {"matchLabels": {
        "app.kubernetes.io/component": "producer"}}, [{"port": "metrics", "path": "/metrics", "interval": "15s",
        "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                         "targetLabel": "service"},
                        {"targetLabel": "role", "replacement": "producer"}]}])
    # Consumer lag per group and topic: pending work, visible while the functions are scaled to zero.
    lag = _podmonitor("kafka-exporter", "kafka", {"matchLabels": {
        "strimzi.io/kind": "Kafka", "strimzi.io/name": "coelho-kafka-exporter"}},
        [{"port": "tcp-prometheus", "path": "/metrics", "interval": "30s"}])
    header = "# Generated by infra/observability/build.py (functions from coelho.runtime.catalog): edit there.\n"
    return header + yaml.safe_dump_all([functions, producers, lag], sort_keys=False, width=120)


def _podmonitor(name: str, namespace: str, selector: dict[str, Any], endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "coelho-realtime", "release": "kube-prometheus-stack"}},
        "spec": {"selector": selector, "podMetricsEndpoints": endpoints},
    }


def _dumps(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    models = [grafana_json(d) for d in DASHBOARDS]
    files = {DASHBOARD_DIR / f"{m['uid']}.json": _dumps(m) for m in models}
    files[CONFIGMAPS] = configmaps(models)
    files[PODMONITORS] = podmonitors()
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed file is not up to date")
    args = parser.parse_args(argv)
    stale = [path for path, text in outputs().items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(HERE)} is not up to date: run infra/observability/build.py", file=sys.stderr)
        return 1 if stale else 0
    DASHBOARD_DIR.mkdir(exist_ok=True)
    for path, text in outputs().items():
        path.write_text(text)
    print(f"wrote {len(outputs())} files under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
