"""How each role of function runs on Knative: scaling, concurrency, timeouts, resources, visibility.

One row per role of `coelho.runtime.catalog`; the Knative Services in `infra/knative/services/` are
generated from the catalog and this table (`coelho manifests write`). A role mapped to None gets no
Service (the benchmark baselines).

>>> POLICIES["learn"].annotations()["autoscaling.knative.dev/max-scale"]
'1'
>>> POLICIES["predict"].container_concurrency(threads=8, server="flask")
8
>>> POLICIES["learn"].container_concurrency(threads=None, server="asgi")
0
>>> POLICIES["baseline"] is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["POLICIES", "RolePolicy", "Resources"]

Visibility = Literal["public", "cluster-local"]
#: Secret variables: model state (Redis URL with its password, the HMAC key of model blobs) and S3 credentials.
MODELS = ("REDIS_URL", "COELHO_SIGNING_KEY")
S3 = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class Resources:
    """Requests and the memory limit of the function's container (no CPU limit: no throttling of bursts)."""

    cpu: str
    memory: str
    memory_limit: str


@dataclass(frozen=True)
class RolePolicy:
    """The Knative settings of every function of one role, and why."""

    min_scale: int
    max_scale: int
    timeout_seconds: int
    threads: int | None  # gunicorn threads of Flask functions (THREADS); the catalog's own value wins
    resources: Resources
    visibility: Visibility
    secrets: tuple[str, ...]  # variables it reads from Secrets: only what it uses
    scale_down_delay: str | None = None
    why: str = ""

    def annotations(self) -> dict[str, str]:
        """The revision template's autoscaling annotations."""
        out = {
            "autoscaling.knative.dev/min-scale": str(self.min_scale),
            "autoscaling.knative.dev/max-scale": str(self.max_scale),
        }
        if self.scale_down_delay:
            out["autoscaling.knative.dev/scale-down-delay"] = self.scale_down_delay
        return out

    def container_concurrency(self, threads: int | None, server: str) -> int:
        """Requests one pod takes at once: WORKERS (1) × THREADS for Flask; 0 (no limit) for the ASGI event loop."""
        if server == "asgi":
            return 0
        return threads or self.threads or 0


#: Role → policy. Every role in the catalog must have an entry (a test checks it), including the ones
#: the batch functions bring (`train`, `batch-predict`), so regenerating after they land just works.
POLICIES: dict[str, RolePolicy | None] = {
    "learn": RolePolicy(
        min_scale=0, max_scale=1, timeout_seconds=60, threads=None,
        resources=Resources("250m", "512Mi", "1Gi"), visibility="cluster-local", secrets=MODELS,
        scale_down_delay="10m",
        why="One writer per model (the lease): more replicas would only append for the leader. Scales to zero "
        "safely (checkpoint + WAL; a cold learner is back within about a second), but stays up 10 min after the "
        "last event so a bursty stream does not pay a recovery per burst. ASGI: no concurrency limit, so "
        "concurrent events share WAL appends. timeoutSeconds is also the pod's termination grace period: 60 s "
        "covers a clean stop (drain, final checkpoint < 1 s, MLflow close <= COELHO_STOP_MLFLOW_SECONDS = 10 s) "
        "inside gunicorn's 30 s graceful timeout, with margin; fed only by KafkaSources: cluster-local.",
    ),
    "predict": RolePolicy(
        min_scale=0, max_scale=5, timeout_seconds=30, threads=8,
        resources=Resources("250m", "384Mi", "1Gi"), visibility="public", secrets=MODELS,
        why="Stateless replicas of the live model: scale to zero, out to 5 pods. containerConcurrency = WORKERS x "
        "THREADS (1 x 8) so the queue-proxy never queues inside a busy pod. Users and the UI call them: public.",
    ),
    "query": RolePolicy(
        min_scale=0, max_scale=3, timeout_seconds=30, threads=4,
        resources=Resources("500m", "1536Mi", "2Gi"), visibility="cluster-local", secrets=S3,
        why="Read-only SQL: scales to zero; 4 concurrent queries per pod share one DuckDB (COELHO_SQL_MEMORY_LIMIT "
        "1GB + the loaded tables fit the 2 GiB limit); a query is cut at 10 s, so 30 s is ample. The UI calls it "
        "inside the cluster: cluster-local (it exposes the raw data).",
    ),
    "sink": RolePolicy(
        min_scale=1, max_scale=1, timeout_seconds=60, threads=64,
        resources=Resources("500m", "512Mi", "1Gi"), visibility="cluster-local", secrets=S3,
        why="One writer per Delta table (its dedup memory is the process's): exactly one replica, always up. "
        "64 threads = 64 concurrent requests sharing group commits; a request waits for its commit (503 after "
        "30 s), so 60 s > the KafkaSource's 40 s per-attempt timeout.",
    ),
    "train": RolePolicy(
        min_scale=1, max_scale=1, timeout_seconds=60, threads=8,
        resources=Resources("1", "2Gi", "4Gi"), visibility="cluster-local", secrets=MODELS + S3,
        why="Answers 202 at once and trains in a child process of its pod, so the pod must outlive the request: "
        "one replica, always up (scale-to-zero would kill a running training; the JobSink is the scale-to-zero "
        "path for training). Progress lives in Redis. The UI calls it: cluster-local.",
    ),
    "batch-predict": RolePolicy(
        min_scale=0, max_scale=3, timeout_seconds=60, threads=8,
        resources=Resources("250m", "512Mi", "1536Mi"), visibility="public", secrets=MODELS,
        why="Stateless like predict (scale to zero, 1 x 8 threads); loading a batch model on the first call may "
        "take a few seconds, hence 60 s. Users and the UI call them: public.",
    ),
    "baseline": None,  # hello-event / hello-http: benchmark baselines, never deployed
}
