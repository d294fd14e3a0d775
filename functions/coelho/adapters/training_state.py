"""Training state in Redis: one training per use case (a lock), its progress, stop requests and run counters.

Everything a training reports lives here rather than in process memory, so the `train` function's
`/status`, `/stop` and `/metrics` work the same for a training it started as a child process and for one
a Knative JobSink runs as a Kubernetes Job. Keys, under `<prefix>:<use case>:train:`:

- `lock`: `{"token", "run_id", "started_at"}`, set only if absent, with a TTL the training renews while it
  runs (a training that dies frees it within `LOCK_TTL_MS`); renewed and released only by its token;
- `status`: the JSON status document (state, run_id, stage, percent, message, log, times, error);
- `stop`: the run id a stop was requested for;
- `stats`: a hash of counters behind the `coelho_training_*` Prometheus metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import redis

from coelho.adapters.embedded_redis import resolve_redis_url
from coelho.config import Settings

__all__ = ["DURATION_BUCKETS", "LOCK_TTL_MS", "OUTCOMES", "TrainingState"]

#: A training renews its lock every second or so; one that died frees it after this long.
LOCK_TTL_MS = 30_000
OUTCOMES = ("finished", "failed", "killed")
#: Upper bounds (seconds) of the training-duration histogram.
DURATION_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)

_RENEW = """
local holder = redis.call('GET', KEYS[1])
if not holder or cjson.decode(holder)['token'] ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""
_RELEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and cjson.decode(holder)['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_FINISH = """
local holder = redis.call('GET', KEYS[1])
if holder and cjson.decode(holder)['token'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
if holder then redis.call('DEL', KEYS[1]) end
return 1
"""


class TrainingState:
    """One use case's training keys in one Redis database."""

    def __init__(self, client: redis.Redis, prefix: str, use_case: str) -> None:
        self.client = client
        self.use_case = use_case
        self.base = f"{prefix}:{use_case}:train:"
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._finish = client.register_script(_FINISH)

    @classmethod
    def open(cls, settings: Settings, use_case: str) -> TrainingState:
        """The state of `use_case` in the configured Redis (the embedded Valkey when REDIS_URL is unset)."""
        url = resolve_redis_url(settings.redis_url, settings.data_dir)
        return cls(redis.Redis.from_url(url, socket_timeout=5.0), settings.key_prefix, use_case)

    def key(self, name: str) -> str:
        return self.base + name

    # the lock: one training per use case ------------------------------------------------------------------
    def try_lock(self, token: str, run_id: str | None, started_at: str) -> dict[str, Any] | None:
        """Take the lock for `token`; None when taken, else the holder that has it."""
        holder = {"token": token, "run_id": run_id, "started_at": started_at}
        if self.client.set(self.key("lock"), json.dumps(holder), nx=True, px=LOCK_TTL_MS):
            return None
        return self.holder() or {"token": None, "run_id": None, "started_at": None}

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock (None: no training runs)."""
        raw = self.client.get(self.key("lock"))
        return None if raw is None else json.loads(raw)

    def renew(self, token: str, run_id: str | None = None) -> bool:
        """Extend the lock (and record the run id once known); False when `token` no longer holds it."""
        value = ""
        if run_id is not None:
            holder = self.holder()
            if holder is None or holder.get("token") != token:
                return False
            value = json.dumps({**holder, "run_id": run_id})
        return bool(self._renew(keys=[self.key("lock")], args=[token, LOCK_TTL_MS, value]))

    def unlock(self, token: str) -> bool:
        """Release the lock held by `token`."""
        return bool(self._release(keys=[self.key("lock")], args=[token]))

    def finish(self, token: str, status: Mapping[str, Any]) -> bool:
        """Publish a training's final `status` and release its lock in one step: whoever reads the status as
        ended can start the next training at once. False, and nothing written, when another training holds
        the lock now (this one lost it)."""
        return bool(self._finish(keys=[self.key("lock"), self.key("status")], args=[token, json.dumps(status)]))

    # progress and stop requests -----------------------------------------------------------------------------
    def write_status(self, status: Mapping[str, Any]) -> None:
        self.client.set(self.key("status"), json.dumps(status))

    def read_status(self) -> dict[str, Any] | None:
        raw = self.client.get(self.key("status"))
        return None if raw is None else json.loads(raw)

    def request_stop(self, run_id: str) -> None:
        """Ask the training of `run_id` to stop (it polls at least every second)."""
        self.client.set(self.key("stop"), run_id, ex=24 * 3600)

    def stop_requested(self, run_id: str) -> bool:
        raw = self.client.get(self.key("stop"))
        return raw is not None and raw.decode() == run_id

    # counters behind the Prometheus metrics -----------------------------------------------------------------
    def record_outcome(self, outcome: str, seconds: float, at: float | None = None) -> None:
        """Count one ended training and its duration; a finished one also sets the last-success time."""
        pipe = self.client.pipeline()
        pipe.hincrby(self.key("stats"), f"runs:{outcome}", 1)
        pipe.hincrbyfloat(self.key("stats"), "duration:sum", seconds)
        pipe.hincrby(self.key("stats"), "duration:count", 1)
        for bound in DURATION_BUCKETS:
            if seconds <= bound:
                pipe.hincrby(self.key("stats"), f"duration:le:{bound:g}", 1)
        if outcome == "finished":
            pipe.hset(self.key("stats"), "last_success", repr(time.time() if at is None else at))
        pipe.execute()

    def stats(self) -> dict[str, float]:
        """The counters: `runs:<outcome>`, `duration:sum`, `duration:count`, `duration:le:<bound>`, `last_success`."""
        return {key.decode(): float(value) for key, value in self.client.hgetall(self.key("stats")).items()}
