"""`coelho up`: the whole platform on one machine, with embedded defaults and no Docker.

Starts (or reuses) the embedded Valkey, serves the functions (learn, predict and batch-predict per
use case, sql, delta-sink and train) with functions-framework exactly as their containers would, serves
the web UI (`coelho ui`, on the port below the first function's: 8080 by default) pointed at them, feeds
the learn functions and delta-sink (the Delta tables) from the three producers, prints where everything
is, and stops everything it started (by pid) on Ctrl-C. Unless MLFLOW_TRACKING_URI names a
server (or COELHO_MLFLOW=off), it also starts a lean MLflow server on the data dir's sqlite
store, on the port after the functions', and points every function at it: one writer process for
the sqlite file, and a UI to browse runs, versions and champions. With `kafka=True` the producers
write to a local Kafka broker instead, and `coelho dispatch` delivers from the topics to the learn
functions and delta-sink exactly as the KafkaSources in `eventing/knative/` would on Knative. With
`prometheus=True` a real Prometheus (Debian's binary, unpacked into the cache) scrapes every process it
started — functions, producers and the dispatcher, labelled `service` and `role` as the cluster's
PodMonitor labels them — and evaluates the repository's alert rules.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from coelho.adapters.embedded_redis import EmbeddedValkey
from coelho.adapters.kafka_broker import KafkaBroker, KafkaBrokerError
from coelho.adapters.mlflow_server import MlflowServer
from coelho.adapters.prometheus_server import PrometheusServer, ScrapeTarget
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.dispatch.manifest import load_manifests
from coelho.runtime.catalog import BASE_PORT, FUNCTIONS, FunctionSpec, local_port

__all__ = ["Platform", "function_target", "run_platform"]

log = logging.getLogger(__name__)

#: The KafkaSource manifests (relative to the repository root, where `make up` runs).
MANIFESTS = Path("eventing/knative")

#: Events per second per producer: the original system's rates (≈3.6, 1.8 and 7-10 events/s).
DEFAULT_RATES = {"tfd": 3.6, "eta": 1.8, "ecci": 8.0}

#: How long the children get to stop after SIGTERM before SIGKILL: gunicorn's own graceful timeout (30 s)
#: and then some; a learner's stop (drain, final checkpoint, COELHO_STOP_MLFLOW_SECONDS for MLflow) fits.
STOP_TIMEOUT_S = 40.0


def function_target(spec: FunctionSpec, port: int) -> ScrapeTarget:
    """How Prometheus scrapes a function on 127.0.0.1:`port`, labelled as the cluster's PodMonitor labels it."""
    return ScrapeTarget("coelho-functions", f"127.0.0.1:{port}", {"service": spec.name, "role": spec.role})


@dataclass
class Platform:
    """The processes of one local platform run."""

    settings: Settings
    base_port: int = BASE_PORT
    rate_scale: float = 1.0
    producers: bool = True
    steady: bool = False  # producers at the same rate in every hour (`coelho produce --steady`)
    kafka: bool = False
    prometheus: bool = False
    manifests: Path = MANIFESTS
    ui_port: int | None = None  # the web UI's port (None: the one below the first function's)
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    valkey: EmbeddedValkey | None = None
    broker: KafkaBroker | None = None
    mlflow_server: MlflowServer | None = None
    prometheus_server: PrometheusServer | None = None
    targets: list[ScrapeTarget] = field(default_factory=list)

    def url(self, spec: FunctionSpec) -> str:
        return f"http://127.0.0.1:{local_port(spec.name, self.base_port)}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port or self.base_port - 1}"

    def metrics_port(self, offset: int) -> int:
        """Ports after the functions' and MLflow's: the dispatcher's metrics (0), producers' (1-3), Prometheus (4)."""
        return self.base_port + len([f for f in FUNCTIONS if f.role != "baseline"]) + 1 + offset

    def _metrics_args(self, offset: int, job: str, service: str, role: str) -> list[str]:
        """`--metrics-port P` for a child when Prometheus runs (and its scrape target), else nothing."""
        if not self.prometheus:
            return []
        port = self.metrics_port(offset)
        self.targets.append(ScrapeTarget(job, f"127.0.0.1:{port}", {"service": service, "role": role}))
        return ["--metrics-port", str(port)]

    def start(self) -> None:
        """Start Redis (when needed), the functions and the producers (and Prometheus); wait until they answer."""
        data_dir = self.settings.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, COELHO_DATA_DIR=str(data_dir))
        env.pop("PORT", None)
        if not self.settings.redis_url:
            embedded = EmbeddedValkey(data_dir)
            url = embedded.running_url()
            if url is None:
                url = embedded.start()
                self.valkey = embedded
            env["REDIS_URL"] = url
        self.settings.resolved_signing_key()  # create the shared development key once
        logs = data_dir / "logs"
        logs.mkdir(exist_ok=True)
        served = [f for f in FUNCTIONS if f.role != "baseline"]
        if self.settings.mlflow and not self.settings.mlflow_tracking_uri:
            settings = self.settings
            server = MlflowServer(settings.tracking_uri(), settings.artifact_root(), self.base_port + len(served),
                                  logs / "mlflow.log")
            (data_dir / "mlflow").mkdir(exist_ok=True)
            self.mlflow_server = server.start(wait=None)
            env["MLFLOW_TRACKING_URI"] = server.url
        for spec in served:
            port = int(self.url(spec).rsplit(":", 1)[1])
            self._spawn(spec.name, spec.command(port), spec.environment() | env, logs)
            self.targets.append(function_target(spec, port))
        urls = ",".join(f"{spec.name}={self.url(spec)}" for spec in served)  # the UI finds each function here
        self._spawn("ui", [sys.executable, "-m", "coelho.cli", "ui", "--host", "127.0.0.1", "--port",
                           self.ui_url.rsplit(":", 1)[1]], env | {"COELHO_FUNCTION_URLS": urls}, logs)
        if self.kafka:
            env["KAFKA_BOOTSTRAP_SERVERS"] = self._start_kafka(data_dir)
        for spec in served:
            _wait_healthy(self.url(spec) + "/healthz")
        if self.mlflow_server is not None:  # before any event: a learner on an empty Redis asks for the champion
            self.mlflow_server.wait_healthy(180)
        learners = {key: self.url(next(f for f in served if f.use_case == key and f.role == "learn")) + "/"
                    for key in USE_CASES}
        delta_sink = self.url(next(f for f in served if f.role == "sink")) + "/"
        if self.kafka:
            sinks = [arg for key, url in learners.items() for arg in ("--sink", f"{key}-learn={url}")]
            self._spawn("dispatch", [sys.executable, "-m", "coelho.cli", "dispatch", "--manifests",
                                     str(self.manifests), *sinks, "--sink", f"delta-sink={delta_sink}",
                                     *self._metrics_args(0, "coelho-dispatch", "dispatch", "dispatch")], env, logs)
        if self.producers:
            for offset, (key, rate) in enumerate(DEFAULT_RATES.items(), start=1):
                # over HTTP each event goes to the learner in order, and to delta-sink with several in flight (as
                # the ordered and the unordered KafkaSource deliver them on Knative)
                target = ["--kafka"] if self.kafka else ["--sink", learners[key], "--unordered-sink", delta_sink]
                command = [sys.executable, "-m", "coelho.cli", "produce", key, "--rate", str(rate * self.rate_scale),
                           *(["--steady"] if self.steady else []), *target,
                           *self._metrics_args(offset, "coelho-producers", f"{key}-producer", "producer")]
                self._spawn(f"{key}-producer", command, env, logs)
        if self.prometheus:
            self.prometheus_server = PrometheusServer(data_dir / "prometheus", self.metrics_port(4), self.targets,
                                                      cache_dir=self.settings.cache_dir)
            self.prometheus_server.start()
        _wait_healthy(self.ui_url + "/")  # last: the UI is not on the events' path

    def _start_kafka(self, data_dir: Path) -> str:
        """Start (or reuse) the local broker and create every topic the manifests name."""
        broker = KafkaBroker(data_dir / "kafka")
        if broker.running_pid() is None:
            broker.start()
            self.broker = broker
        sources, sinks = load_manifests(self.manifests)
        broker.ensure_topics([t for s in sources for t in s.topics] + [s.topic for s in sinks.values()])
        return broker.bootstrap_servers

    def _spawn(self, name: str, command: list[str], env: dict[str, str], logs: Path) -> None:
        out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child's lifetime
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, child))
        log.info("started %s (pid %d), log in %s", name, child.pid, out.name)

    def banner(self) -> str:
        """Where everything is, with a curl example per predict function."""
        lines = ["", f"COELHO RealTime is up. Web UI: {self.ui_url}/", "", "Functions:"]
        for spec in FUNCTIONS:
            if spec.role != "baseline":
                lines.append(f"  {spec.name:<18} {self.url(spec)}/   (status: {self.url(spec)}/status)")
        lines.append("")
        lines.append("Try a prediction (predictions improve as the producers' events flow):")
        for key in USE_CASES:
            spec = next(f for f in FUNCTIONS if f.use_case == key and f.role == "predict")
            example = f"eventing/samples/{key}.json"
            lines.append(f"  curl -s -X POST {self.url(spec)}/ -H 'content-type: application/json' -d @{example}")
        sql = next(f for f in FUNCTIONS if f.role == "query")
        query = '{"use_case": "tfd", "query": "SELECT count(*) FROM data"}'
        lines.append("\nQuery a use case's Delta table (once a writer has committed rows):")
        lines.append(f"  curl -s -X POST {self.url(sql)}/ -H 'content-type: application/json' -d '{query}'")
        train = next(f for f in FUNCTIONS if f.role == "train")
        lines.append("\nTrain a batch model on a Delta table (it needs a few thousand rows: "
                     "`coelho produce tfd --count 20000 --delta` writes them at once):")
        lines.append(f"  curl -s -X POST {self.url(train)}/ -H 'content-type: application/json' -d '{{\"use_case\": "
                     f"\"tfd\"}}'   then GET {self.url(train)}/status?use_case=tfd")
        if self.kafka:
            servers = self.broker.bootstrap_servers if self.broker else "the running broker"
            lines.append(f"\nEvents go through Kafka at {servers}, delivered by `coelho dispatch` from "
                         f"{self.manifests}/. Dead letters:")
            lines.append(f"  KAFKA_BOOTSTRAP_SERVERS={servers} coelho dlq list tfd")
        if self.settings.mlflow:
            where = self.mlflow_server.url if self.mlflow_server else self.settings.tracking_uri()
            lines.append(f"\nMLflow: {where}  (one run per learner; registered models coelho-tfd, coelho-eta, "
                         "coelho-ecci; the `champion` alias is what predict serves when Redis has no model)")
        if self.prometheus_server is not None:
            url = self.prometheus_server.url
            lines.append(f"\nPrometheus: {url}  (scrapes every process above; alerts: {url}/alerts; rules: "
                         "infra/observability/rules/; Grafana dashboards to import: infra/observability/dashboards/)")
        lines.append(f"\nState and logs: {self.settings.data_dir.resolve()}   Stop with Ctrl-C.")
        return "\n".join(lines)

    def stop(self) -> None:
        """Terminate every child we started (by pid), then the embedded Valkey if we started it."""
        for _, child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, child in reversed(self.children):
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing pid %d", name, child.pid)
                child.kill()
                child.wait()
        if self.prometheus_server is not None:
            self.prometheus_server.stop()
        if self.mlflow_server is not None:
            self.mlflow_server.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.valkey is not None:
            self.valkey.stop()

    def watch(self) -> None:
        """Block until Ctrl-C, reporting children that die."""
        while True:
            for name, child in self.children:
                if child.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {child.returncode}; see its log")
            time.sleep(1)


def _wait_healthy(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.2)


def run_platform(settings: Settings, base_port: int, rate_scale: float, producers: bool, kafka: bool = False,
                 prometheus: bool = False, ui_port: int | None = None) -> int:
    """Run until interrupted; returns an exit code."""
    platform = Platform(settings, base_port=base_port, rate_scale=rate_scale, producers=producers, kafka=kafka,
                        prometheus=prometheus, ui_port=ui_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        platform.start()
        print(platform.banner(), flush=True)
        platform.watch()
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
    except (RuntimeError, TimeoutError, KafkaBrokerError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        platform.stop()
    return 0
