"""The image section: its size, and the cold start of tfd-predict in a container next to the same as a process.

Container start (`podman run`, the env its Knative Service defines, PORT/K_SERVICE/K_REVISION, read-only root, host
network) to the first correct prediction from a checkpoint of a model trained on 100k events (20k with --quick),
against the same function started as a process (Popen, same THREADS) on the same checkpoint; fresh each round,
alternating, best round of each. The image is built first when missing (infra/image/build.sh on a Debian base made
with mmdebstrap: no image registry is reachable here).
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import measure
from servers import SIGNING_KEY, Processes, free_port
from workload import predict_request, stream, without_label

from coelho.deploy.container import Container, podman, service_environment, settings_configmap
from coelho.deploy.knative import IMAGE

__all__ = ["image_bench"]

log = logging.getLogger("bench")

BASE = "localhost/coelho-base:bookworm-py311"
REPO_ROOT = Path(__file__).resolve().parents[1]


class _Server:
    """A container seen as the benchmark's FunctionProcess (port, start time, liveness, log tail)."""

    def __init__(self, name: str, container: Container) -> None:
        self.name, self.container = name, container
        self.port, self.started_at = container.port, container.started_at

    def check_alive(self) -> None:
        if not self.container.running():
            raise RuntimeError(f"{self.name} container exited:\n{self.tail()}")

    def tail(self) -> str:
        return self.container.logs()


def ensure_image() -> None:
    """Build the function image unless podman has it (a Debian base first, offline)."""
    present = subprocess.run([podman(), "image", "exists", IMAGE]).returncode == 0
    if not present:
        log.info("image: building %s (several minutes the first time)", IMAGE)
        subprocess.run([str(REPO_ROOT / "infra" / "image" / "base.sh"), BASE], check=True)
        subprocess.run([str(REPO_ROOT / "infra" / "image" / "build.sh"), "--base", BASE, "--target", "runtime",
                        IMAGE], check=True, stdout=subprocess.DEVNULL)


def image_bench(processes: Processes, plan: measure.Plan, seed: int, key: str = "tfd") -> dict[str, Any]:
    """image.{bytes, cold_start_seconds, process_seconds, ratio} for `key`-predict."""
    ensure_image()
    size = int(subprocess.run([podman(), "image", "inspect", "--format", "{{.Size}}", IMAGE], capture_output=True,
                              text=True, check=True).stdout)
    events = stream(key, plan.cold_events + 1, seed=seed)
    log.info("image: training the cold-start model on %s events in process", f"{plan.cold_events:,}")
    model = measure.train(key, events[: plan.cold_events])
    prefix = f"{processes.key_prefix}-image"
    measure.write_checkpoint(key, model, processes.redis_url, prefix)
    request = predict_request(key, events[-1])
    expected = model.predict(without_label(key, events[-1]))
    name = f"{key}-predict"
    settings = {**settings_configmap(REPO_ROOT / "infra" / "knative" / "settings.yaml"),
                "COELHO_KEY_PREFIX": prefix, "COELHO_MLFLOW": "off"}
    secrets = {"REDIS_URL": processes.redis_url, "COELHO_SIGNING_KEY": SIGNING_KEY}
    seconds: dict[str, list[float]] = {"container": [], "process": []}
    for repeat in range(plan.cold_repeats):
        env = service_environment(name, secrets, settings, free_port())
        container = Container(IMAGE, env, int(env["PORT"])).start()
        try:
            elapsed, answer = measure.first_answer(_Server(name, container), request)
        finally:
            container.stop()
        _check(name, answer, expected, model.events_applied)
        seconds["container"].append(elapsed)
        server = processes.launch(name, key_prefix=prefix, THREADS=env["THREADS"])
        try:
            elapsed, answer = measure.first_answer(server, request)
        finally:
            processes.stop(server)
        _check(name, answer, expected, model.events_applied)
        seconds["process"].append(elapsed)
        log.info("image cold start %d/%d: container %.2f s, process %.2f s", repeat + 1, plan.cold_repeats,
                 seconds["container"][-1], elapsed)
    best = {kind: min(values) for kind, values in seconds.items()}
    return {
        "bytes": size,
        "cold_start_seconds": best["container"],
        "process_seconds": best["process"],
        "ratio": best["container"] / best["process"],
        "events": model.events_applied,
        "use_case": key,
        "samples": seconds,
        "image": IMAGE,
    }


def _check(name: str, answer: dict[str, Any], expected: dict[str, Any], version: int) -> None:
    got = {field: answer.get(field) for field in expected}
    if got != expected or answer.get("model_version") != version:
        raise RuntimeError(f"{name} answered {answer}, expected {expected} at version {version}")
