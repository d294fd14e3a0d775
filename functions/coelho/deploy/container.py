"""A function's container run as Knative runs it, on this machine: the image, the environment its Service manifest
defines (literal values, the settings ConfigMap, Secret values given here), plus the variables Knative injects
(PORT, K_SERVICE, K_REVISION). Used by the container tests and the benchmark (podman; host network).

>>> env = service_environment("tfd-predict", secrets={"REDIS_URL": "redis://x", "COELHO_SIGNING_KEY": "k"},
...                           settings={"COELHO_LOG_LEVEL": "INFO"}, port=9000)
>>> env["FUNCTION_TARGET"], env["PORT"], env["K_SERVICE"], env["REDIS_URL"], env["THREADS"]
('tfd_predict', '9000', 'tfd-predict', 'redis://x', '8')
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import yaml

from coelho.deploy.knative import SETTINGS_CONFIGMAP, deployed, service_manifest

__all__ = ["Container", "podman", "podman_flags", "service_environment", "settings_configmap"]


def podman() -> str:
    """The podman binary; RuntimeError with the install hint when missing."""
    found = shutil.which("podman")
    if found is None:
        raise RuntimeError("podman is not installed (apt-get install podman runc)")
    return found


@functools.cache
def podman_flags() -> tuple[list[str], list[str]]:
    """(global, `run`) flags this host needs: where cgroups v1 (hybrid) stop crun, runc and lowered rlimits
    (raising them needs CAP_SYS_RESOURCE)."""
    version = subprocess.run([podman(), "info", "--format", "{{.Host.CgroupsVersion}}"], capture_output=True,
                             text=True, check=True).stdout.strip()
    if version != "v1":
        return [], []
    return ["--runtime", "runc"], ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def settings_configmap(path: Path) -> dict[str, str]:
    """The data of the settings ConfigMap in `path` (infra/knative/settings.yaml)."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == SETTINGS_CONFIGMAP:
            return {key: str(value) for key, value in doc["data"].items()}
    raise KeyError(f"no ConfigMap {SETTINGS_CONFIGMAP} in {path}")


def service_environment(name: str, secrets: Mapping[str, str], settings: Mapping[str, str], port: int,
                        revision: str = "00001") -> dict[str, str]:
    """The environment Knative gives function `name`'s container: its Service's env and envFrom, then PORT,
    K_SERVICE, K_CONFIGURATION and K_REVISION. Secret references resolve in `secrets`; a missing one raises."""
    container: dict[str, Any] = service_manifest(deployed()[name])["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(settings)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            key = var["valueFrom"]["secretKeyRef"]["key"]
            env[var["name"]] = secrets[key]
    return {**env, "PORT": str(port), "K_SERVICE": name, "K_CONFIGURATION": name,
            "K_REVISION": f"{name}-{revision}"}


class Container:
    """One detached container on the host network, removed (by id) on stop."""

    def __init__(self, image: str, env: Mapping[str, str], port: int, volumes: Mapping[Path, str] | None = None,
                 command: list[str] | None = None, entrypoint: str | None = None, workdir: str | None = None) -> None:
        self.image = image
        self.env = dict(env)
        self.port = port
        self.volumes = dict(volumes or {})
        self.command = command or []
        self.entrypoint = entrypoint  # instead of the image's (a Deployment's `command`)
        self.workdir = workdir
        self.id: str | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Container:
        """`podman run -d` with a read-only root file system and /tmp in memory, as the Services mount it."""
        global_flags, run_flags = podman_flags()
        args = [podman(), *global_flags, "run", *run_flags, "-d", "--net", "host", "--read-only", "--tmpfs", "/tmp"]
        for key, value in self.env.items():
            args += ["-e", f"{key}={value}"]
        for host, inside in self.volumes.items():
            args += ["-v", f"{host}:{inside}:ro"]
        args += ["--entrypoint", self.entrypoint] if self.entrypoint else []
        args += ["--workdir", self.workdir] if self.workdir else []
        self.started_at = time.perf_counter()
        done = subprocess.run([*args, self.image, *self.command], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"podman run failed: {done.stderr.strip()}")
        self.id = done.stdout.strip()
        return self

    def wait_healthy(self, timeout: float = 120.0) -> float:
        """Wait until GET /healthz answers 200; seconds since start."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return time.perf_counter() - self.started_at
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or not self.running():
                raise RuntimeError(f"container {self.id} not healthy; logs:\n{self.logs()}")
            time.sleep(0.05)

    def running(self) -> bool:
        done = subprocess.run([podman(), "inspect", "--format", "{{.State.Running}}", str(self.id)],
                              capture_output=True, text=True)
        return done.stdout.strip() == "true"

    def exec(self, *command: str) -> str:
        """Run `command` inside the container; its stdout."""
        return subprocess.run([podman(), "exec", str(self.id), *command], capture_output=True, text=True,
                              check=True).stdout

    def logs(self) -> str:
        """The end of the container's output (stdout and stderr)."""
        done = subprocess.run([podman(), "logs", str(self.id)], capture_output=True, text=True)
        return (done.stdout + done.stderr)[-4000:]

    def stop(self) -> None:
        """Remove the container (SIGTERM, then SIGKILL after 10 s)."""
        if self.id is not None:
            subprocess.run([podman(), "rm", "-f", "-t", "10", self.id], capture_output=True)
            self.id = None
