"""A real Prometheus scraping real processes: every name the dashboards and rules use exists, and the alerts work.

One platform for the whole module (it takes a while to start on two shared cores): learn, predict, sql and
delta-sink functions, the KafkaSource dispatcher on a real broker, a producer, and Prometheus (Debian's
binary) with the repository's rules evaluated every second. Then, in order:

1. every metric name used by a dashboard or a rule is exported by one of these processes (their /metrics,
   scraped here) or listed in infra/observability/external-metrics.yaml, and every expression evaluates;
2. poison events through the dispatcher → `CoelhoDeadLetters` fires;
3. a drifting stream (`coelho produce ecci --drift-at`) → a detection in /status, in the metric, in the MLflow
   run, and `CoelhoDriftDetected` fires; after a SIGKILL and a replay from the WAL the detection is the same;
4. the tfd learner stopped → `CoelhoLearnerDown` goes pending.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from coelho.adapters.prometheus_server import PrometheusServer, ScrapeTarget
from coelho.producers.cloudevent import to_cloudevent
from coelho.producers.run import make_generator
from coelho.runtime.catalog import find
from coelho.runtime.launcher import function_target
from support import binary, stream, wait_for
from support.kafka import isolated_manifests, produce_cloudevents
from support.observability import external_metrics, tool, used_expressions
from support.promql import metric_names
from support.servers import FunctionServer, free_port

pytestmark = pytest.mark.slow

SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",), "unknown": ("",)}
#: The drifting stream: deterministic (seed, start), a change after 1500 events, detected at event 1601.
DRIFT = {"seed": "2", "start": "2026-03-02T18:00:00+00:00", "count": 2500, "drift_at": "1500", "detected_at": 1601}


def exported_names(url: str) -> set[str]:
    """Every sample name a process's /metrics exposes, also for families without samples yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(requests.get(url + "/metrics", timeout=10).text):
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
        names |= {sample.name for sample in family.samples}
    return names


class Child:
    """A `coelho` command as a child process group, stopped by pid."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "coelho.cli", *args], env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def alert(prometheus: PrometheusServer, name: str, state: str, **labels: str) -> dict[str, Any] | None:
    """The active alert `name` in `state` whose labels include `labels`, if any."""
    for active in prometheus.alerts():
        if active["labels"]["alertname"] == name and active["state"] == state and \
                labels.items() <= active["labels"].items():
            return active
    return None


def value(prometheus: PrometheusServer, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def platform(kafka_broker, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("observability")
    env = {"REDIS_URL": redis_url, "COELHO_KEY_PREFIX": f"obs{os.getpid()}", "COELHO_DATA_DIR": str(tmp),
           "COELHO_SIGNING_KEY": "observability-test-key", "COELHO_MLFLOW": "off", "COELHO_LEASE_SECONDS": "2",
           "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
    child_env = {**os.environ, **env}
    child_env.pop("PYTEST_CURRENT_TEST", None)
    folder, topic, dead_letter_topic = isolated_manifests(tmp / "manifests", "tfd")
    kafka_broker.ensure_topics([topic, dead_letter_topic], partitions=3)
    mlflow_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    servers = {
        "tfd-learn": FunctionServer("tfd-learn", env, tmp),
        "ecci-learn": FunctionServer("ecci-learn", env, tmp, COELHO_MLFLOW="on", MLFLOW_TRACKING_URI=mlflow_uri,
                                     COELHO_MLFLOW_LOG_EVERY="500", COELHO_REGISTER_EVERY="1000",
                                     COELHO_CHECKPOINT_EVERY="100000", COELHO_CHECKPOINT_SECONDS="3600"),
        "tfd-predict": FunctionServer("tfd-predict", env, tmp),
        "sql": FunctionServer("sql", env, tmp),
        "delta-sink": FunctionServer("delta-sink", env, tmp),
    }
    children: list[Child] = []
    prometheus = PrometheusServer(tmp / "prometheus", free_port(), [], scrape_interval="1s",
                                  evaluation_interval="1s", rule_interval="1s")
    try:
        for server in servers.values():
            server.start(timeout=120)
        dispatch_port, producer_port = free_port(), free_port()
        children.append(Child(["dispatch", "--manifests", str(folder), "--sink",
                               f"tfd-learn={servers['tfd-learn'].url}/", "--commit-interval", "1",
                               "--metrics-port", str(dispatch_port)], child_env, tmp / "dispatch.log"))
        children.append(Child(["produce", "tfd", "--rate", "2", "--sink", f"{servers['tfd-learn'].url}/",
                               "--metrics-port", str(producer_port)], child_env, tmp / "producer.log"))
        prometheus.targets = [
            *(function_target(find(name), server.port) for name, server in servers.items()),
            ScrapeTarget("coelho-dispatch", f"127.0.0.1:{dispatch_port}", {"service": "dispatch", "role": "dispatch"}),
            ScrapeTarget("coelho-producers", f"127.0.0.1:{producer_port}",
                         {"service": "tfd-producer", "role": "producer"}),
        ]
        prometheus.start()
        wait_for(lambda: len([r for r in prometheus.query("up == 1")]) == len(prometheus.targets), timeout=120,
                 what="every target up in Prometheus")
        yield {"prometheus": prometheus, "servers": servers, "env": env, "topic": topic, "tmp": tmp,
               "mlflow_uri": mlflow_uri, "metrics_urls": [s.url for s in servers.values()] + [
                   f"http://127.0.0.1:{dispatch_port}", f"http://127.0.0.1:{producer_port}"]}
    finally:
        prometheus.stop()
        for child in children:
            child.stop()
        for server in servers.values():
            server.stop()


def test_every_used_metric_is_exported_by_a_real_process_or_listed_as_external(platform):
    exported = set().union(*(exported_names(url) for url in platform["metrics_urls"]))
    exprs = used_expressions()
    missing = {name for expr in exprs for name in metric_names(expr)} - exported - external_metrics()
    assert not missing, f"used by a dashboard or rule, but no process exports it and it is not external: {missing}"
    prometheus = platform["prometheus"]
    for expr in exprs:  # raises with Prometheus' message when one does not evaluate
        prometheus.query(expr)


def test_poison_events_through_the_dispatcher_fire_the_dead_letter_alert(platform):
    prometheus = platform["prometheus"]
    wait_for(lambda: value(prometheus, 'coelho_dispatch_events_total{outcome="dead-lettered"}') == 0,
             what="the dead-letter counter scraped at 0")
    poison = [dict(event, transaction_id=f"poison-{i}", amount=float("nan"))
              for i, event in enumerate(stream("tfd", 3, seed=41))]
    produce_cloudevents(platform["env"]["KAFKA_BOOTSTRAP_SERVERS"], platform["topic"], "tfd", poison)
    wait_for(lambda: alert(prometheus, "CoelhoDeadLetters", "firing", source="tfd-events") is not None,
             timeout=90, what="CoelhoDeadLetters firing")


def test_drift_is_detected_surfaced_everywhere_and_unchanged_after_sigkill_and_replay(platform):
    prometheus, learner = platform["prometheus"], platform["servers"]["ecci-learn"]
    env = {**os.environ, **platform["env"]}
    env.pop("PYTEST_CURRENT_TEST", None)
    produced = subprocess.run(
        [sys.executable, "-m", "coelho.cli", "produce", "ecci", "--rate", "0", "--count", str(DRIFT["count"]),
         "--seed", DRIFT["seed"], "--start", DRIFT["start"], "--drift-at", DRIFT["drift_at"],
         "--sink", learner.url + "/"], env=env, capture_output=True, text=True, timeout=600)
    assert produced.returncode == 0, produced.stderr[-2000:]

    def status() -> dict[str, Any]:
        return requests.get(learner.url + "/status", timeout=30).json()

    wait_for(lambda: status()["events_applied"] == DRIFT["count"], what="the drifting stream learned")
    drift = status()["drift"]
    assert drift["detections"] == 1 and drift["last_detected_event"] == DRIFT["detected_at"], drift
    assert drift["recent"][0]["error_after"] > drift["recent"][0]["error_before"]
    wait_for(lambda: value(prometheus, 'coelho_drift_detections_total{use_case="ecci"}') == 1,
             what="the detection in Prometheus")
    wait_for(lambda: alert(prometheus, "CoelhoDriftDetected", "firing", use_case="ecci") is not None,
             what="CoelhoDriftDetected firing")
    first_run = _drift_run(platform["mlflow_uri"], set())
    holder = status()["holder"]

    learner.kill()  # the only checkpoint is the one at seq 0: the restart replays the whole stream
    learner.start(timeout=120)
    first = next(make_generator("ecci", seed=int(DRIFT["seed"]), start=datetime.fromisoformat(DRIFT["start"]),
                                drift_at=int(DRIFT["drift_at"])))
    headers, body = binary(to_cloudevent("ecci", first))

    def redelivered() -> bool:  # as a KafkaSource does until a 2xx: the new process takes the lease once the
        requests.post(learner.url + "/", headers=headers, data=body, timeout=120)  # killed one's expired,
        current = status()  # replays the stream and learns nothing new
        return bool(current["leader"]) and current["holder"] != holder

    wait_for(redelivered, timeout=120, every=0.5, what="the restarted learner leading")
    after = status()
    assert after["events_applied"] == DRIFT["count"], after
    assert after["drift"] == drift
    second_run = _drift_run(platform["mlflow_uri"], {first_run})
    assert second_run != first_run


def _drift_run(tracking_uri: str, other_than: set[str]) -> str:
    """The id of the ecci learner run (not in `other_than`) tagged with the detection and its metric point."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found: list[str] = []

    def tagged() -> bool:
        experiment = client.get_experiment_by_name("E-Commerce Customer Interactions")
        if experiment is None:
            return False
        for run in client.search_runs([experiment.experiment_id]):
            tags = run.data.tags
            if run.info.run_id not in other_than and tags.get("coelho.drift.detections") == "1":
                history = client.get_metric_history(run.info.run_id, "drift_detection")
                if tags["coelho.drift.last_detected_event"] == str(DRIFT["detected_at"]) and \
                        [(m.step, m.value) for m in history] == [(DRIFT["detected_at"], 1.0)]:
                    found.append(run.info.run_id)
                    return True
        return False

    wait_for(tagged, timeout=120, every=1.0, what="the MLflow run with the drift tags and metric")
    return found[0]


def test_a_stopped_learner_makes_its_down_alert_pending(platform):
    prometheus = platform["prometheus"]
    platform["servers"]["tfd-learn"].stop()
    wait_for(lambda: alert(prometheus, "CoelhoLearnerDown", "pending", service="tfd-learn") is not None,
             timeout=60, what="CoelhoLearnerDown pending")


def test_every_dashboard_renders_a_preview_from_the_real_prometheus(platform, tmp_path):
    preview = tool("preview")
    for dashboard in preview.build.DASHBOARDS:
        path = preview.render(dashboard, platform["prometheus"].url, tmp_path, use_case="ecci", minutes=5)
        assert path.stat().st_size > 10_000, path
