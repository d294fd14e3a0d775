"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp cluster, 127.0.0.1, stopped by pid.

Postgres refuses to run as root, so the cluster belongs to the `postgres` system user the Debian
package creates, and every server command runs through `runuser -u postgres --`. The package is
apt-get installed when `initdb` is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresServer"]


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdout=subprocess.DEVNULL)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent


class PostgresServer:
    """`postgres` on 127.0.0.1:`port` with trust auth for the `postgres` user, in a temp data dir."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="coelho-pg-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        """SQLAlchemy URL of `database` (psycopg2 named: SQLAlchemy 2.1 defaults to psycopg 3)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def _as_postgres(self, *command: str | Path) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *map(str, command)]

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """initdb, start, wait until it accepts connections."""
        data = self.root / "data"
        shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(self._as_postgres(self.bin / "initdb", "-D", data, "-U", "postgres", "--auth=trust",
                                         "-E", "UTF8"), check=True, stdout=subprocess.DEVNULL)
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - closed right after the child holds it
        self.process = subprocess.Popen(
            self._as_postgres(self.bin / "postgres", "-D", data, "-p", str(self.port), "-k", self.root,
                              "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while subprocess.run([self.bin / "pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                             stdout=subprocess.DEVNULL).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.root / "postgres.log").read_text()[-2000:])
            time.sleep(0.2)
        return self

    def create_database(self, name: str) -> str:
        """Create `name`; returns its URL."""
        subprocess.run([self.bin / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                       check=True)
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown of our server (SIGINT to its process group), then remove the cluster."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
