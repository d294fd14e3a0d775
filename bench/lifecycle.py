"""lifecycle: how long a learner takes to stop, and how soon its successor leads, next to hello-event's.

Per use case and round, on a fresh key prefix, with MLflow on (a sqlite store in the run's data dir, so the
stop includes the final registration and the end of the run):

1. a fresh `<uc>-learn` gets `lifecycle_events` events, then SIGTERM to its master pid only, right after the
   last answer (as the kubelet sends it): `stop_seconds` is signal → process exit; `cleanup_seconds` is what
   the worker's stop line says its clean-up took (drain, final checkpoint, lease, MLflow);
2. a successor `<uc>-learn` is launched on the same state: `successor_lead_seconds` is Popen → the first
   `/status` that says `leader: true` (one event posted as soon as it answers);
3. the same for `hello-event`: `hello_stop_seconds` (same events, same signal) and `hello_ready_seconds`
   (Popen → first 2xx of the same CloudEvent).

Each figure is its best round; all rounds are stored.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import signal
import time
from typing import Any

from measure import Plan, post
from servers import FunctionProcess, Processes
from workload import Request, cloudevent_request, stream

from coelho.config import Settings

__all__ = ["lifecycle"]

log = logging.getLogger("bench")

STOP_LINE = re.compile(r"stopped \(SIGTERM\) in ([\d.]+) s: (.*)")


def lifecycle(processes: Processes, plan: Plan, keys: list[str], seed: int) -> dict[str, Any]:
    """The stop and successor figures of each learner, next to hello-event's, on an MLflow store made first."""
    from mlflow import MlflowClient

    settings = Settings(data_dir=processes.work_dir / "data")
    settings.artifact_root().mkdir(parents=True, exist_ok=True)
    MlflowClient(settings.tracking_uri()).search_experiments()  # the store's tables, created before any timing
    result: dict[str, Any] = {"events": plan.lifecycle_events, "lease_seconds": settings.lease_seconds}
    for key in keys:
        requests = [cloudevent_request(key, event) for event in stream(key, plan.lifecycle_events + 1, seed)]
        samples: dict[str, list[float]] = {name: [] for name in (
            "stop_seconds", "cleanup_seconds", "successor_lead_seconds", "hello_stop_seconds", "hello_ready_seconds")}
        summary = ""
        for round_no in range(plan.lifecycle_rounds):
            prefix = f"{processes.key_prefix}-life-{key}-{round_no}"
            learner = processes.launch(f"{key}-learn", key_prefix=prefix, COELHO_MLFLOW="on")
            learner.wait_ready()
            post(learner.port, requests[:-1])
            samples["stop_seconds"].append(_stop(processes, learner))
            cleanup, summary = _stop_line(learner)
            samples["cleanup_seconds"].append(cleanup)
            successor = processes.launch(f"{key}-learn", key_prefix=prefix, COELHO_MLFLOW="on")
            samples["successor_lead_seconds"].append(_lead_seconds(successor, requests[-1]))
            processes.stop(successor)

            hello = processes.launch("hello-event")
            hello.wait_ready()
            post(hello.port, requests[:-1])
            samples["hello_stop_seconds"].append(_stop(processes, hello))
            fresh = processes.launch("hello-event")
            samples["hello_ready_seconds"].append(_answered_seconds(fresh, requests[-1]))
            processes.stop(fresh)
            log.info("%s lifecycle round %d/%d: %s", key, round_no + 1, plan.lifecycle_rounds,
                     ", ".join(f"{name} {values[-1]:.2f}" for name, values in samples.items()))
        result[key] = {name: min(values) for name, values in samples.items()} | {
            "stop_line": summary, "rounds": samples}
    return result


def _stop(processes: Processes, server: FunctionProcess) -> float:
    """SIGTERM to the master pid only; seconds until the process exited."""
    assert server.process is not None
    began = time.perf_counter()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=120)
    elapsed = time.perf_counter() - began
    processes.stop(server)
    return elapsed


def _stop_line(server: FunctionProcess) -> tuple[float, str]:
    """The clean-up time and summary the worker logged on its way out."""
    found = STOP_LINE.findall(server.tail(20_000))
    if not found:
        raise RuntimeError(f"{server.name} logged no stop line\n{server.tail()}")
    seconds, summary = found[-1]
    return float(seconds), summary


def _answered_seconds(server: FunctionProcess, request: Request, timeout: float = 60.0) -> float:
    """POST `request` until a 2xx; seconds since the server's launch."""
    deadline = time.monotonic() + timeout
    while True:
        server.check_alive()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("POST", "/", request.body, request.headers)
            response = conn.getresponse()
            response.read()
            if response.status < 300:
                return time.perf_counter() - server.started_at
        except OSError:
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name}: no 2xx within {timeout:.0f} s\n{server.tail()}")
        time.sleep(0.005)


def _lead_seconds(server: FunctionProcess, request: Request, timeout: float = 60.0) -> float:
    """Post one event as soon as the successor answers; seconds from its launch to `/status` saying it leads."""
    _answered_seconds(server, request, timeout)
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("GET", "/status")
            status = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        if status.get("leader"):
            return time.perf_counter() - server.started_at
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not lead within {timeout:.0f} s: {status}")
        time.sleep(0.005)
