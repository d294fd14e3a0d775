"""A lean local MLflow tracking server: one worker, job execution off, stopped by process group.

`coelho up` runs one on the data dir's sqlite store so that people can browse runs, versions
and the champion alias while the functions log to it; tests run it on sqlite or Postgres.
The default `mlflow server` takes about 3.7 GiB (4 workers, a job runner, huey consumers); these
settings keep it near 600 MiB. Its children outlive a plain kill of the parent, so `stop` kills
the whole process group.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

__all__ = ["MlflowServer"]

log = logging.getLogger(__name__)


class MlflowServer:
    """`mlflow server` on 127.0.0.1:`port` with a backend store and a local artifact directory."""

    def __init__(self, backend_uri: str, artifacts: Path, port: int, log_path: Path | None = None) -> None:
        self.backend_uri = backend_uri
        self.artifacts = artifacts
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
            "--artifacts-destination", self.artifacts.resolve().as_uri(), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]

    def start(self, wait: float | None = 120.0) -> MlflowServer:
        """Start the server; with `wait`, block until GET /health answers."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115 - the child's
        self.process = subprocess.Popen(self.command(), env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        if out is not subprocess.DEVNULL:
            out.close()
        log.info("started mlflow server (pid %d) on %s", self.process.pid, self.url)
        if wait is not None:
            self.wait_healthy(wait)
        return self

    def healthy(self) -> bool:
        """True when the server answers /health."""
        try:
            return requests.get(self.url + "/health", timeout=1.0).ok
        except requests.RequestException:
            return False

    def wait_healthy(self, timeout: float) -> None:
        """Block until /health answers; raise if the server died or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not healthy after {timeout:.0f}s; see {self.log_path}")
            time.sleep(0.25)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group, then SIGKILL whatever of it is left after `timeout`."""
        process, self.process = self.process, None
        if process is None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _signal_group(process.pid, 0) and time.monotonic() < deadline:
            process.poll()  # reaps the leader once it exits, so only live members keep the group
            time.sleep(0.1)
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True
