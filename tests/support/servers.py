"""Functions served for real: functions-framework subprocesses on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from coelho.runtime.catalog import find


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FunctionServer:
    """One function under functions-framework (gunicorn), exactly as `coelho fn serve` runs it."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, **extra_env: str) -> None:
        self.name = name
        self.env = {**find(name).environment(), **os.environ, **env, **extra_env}
        self.env.pop("PYTEST_CURRENT_TEST", None)
        self.log_path = log_dir / f"{name}.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> FunctionServer:
        """Start and wait until GET /healthz answers."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                find(self.name).command(self.port), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=0.5).ok:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; log:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the whole process group (gunicorn master and worker): a crash, no clean-up."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} had already exited ({self.process.returncode}); log:\n"
                               f"{self.log_path.read_text()[-3000:]}")
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the process group (e.g. SIGSTOP to freeze it)."""
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def terminate(self, sig: signal.Signals | None = None, group: bool = False, timeout: float = 120.0) -> int:
        """Send `sig` (SIGTERM) to the gunicorn master only (as the kubelet does) or to the whole group; wait for it."""
        assert self.process is not None
        sig = sig or signal.SIGTERM
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.name} ignored {sig.name} for {timeout:.0f} s; log:\n"
                               f"{self.log()[-3000:]}") from None

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text()

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> FunctionServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
