"""Model state in Redis: single-writer lease with fencing, write-ahead log, dedup, checkpoints.

Keys of one use case live under `<prefix>:<use case>:`:

- `lease` the holder's id (expires unless renewed), `fence` the fencing-token counter;
- `seq` the last WAL sequence number and `wal` the log itself (a stream with ids `<seq>-1`);
- `seen:<digest>` one dedup marker per accepted CloudEvent (`source`, `id`), with a TTL;
- `ckpt` the signed checkpoint blob and `ckpt:meta` its sequence number and sizes;
- `status` a small hash the learner refreshes for dashboards and predictors.

Every model write a learner makes (checkpoint, status) runs in a Lua script that first checks its
fencing token, so a learner that lost its lease can never write the model again. An event's dedup
marker, sequence number and WAL entry are created atomically by one script; the leader's appends
are fenced too (so it learns at once that it was deposed), while any other process may append
unfenced: the log is the single order, and only the lease holder learns from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.connection

__all__ = ["AppendResult", "Checkpoint", "Record", "RedisState", "WalEntry"]

_APPEND = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], seq .. '-1', 'e', ARGV[2])
return seq
"""

_CHECKPOINT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], unpack(cjson.decode(ARGV[3])))
if tonumber(ARGV[4]) > 0 then redis.call('XTRIM', KEYS[4], 'MINID', ARGV[4] .. '-0') end
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

_STATUS = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], unpack(cjson.decode(ARGV[2])))
return 1
"""

FENCED = -1
DUPLICATE = 0


@dataclass(frozen=True)
class AppendResult:
    """Outcome of a WAL append: `seq` > 0 when accepted."""

    seq: int

    @property
    def accepted(self) -> bool:
        return self.seq > 0

    @property
    def duplicate(self) -> bool:
        return self.seq == DUPLICATE

    @property
    def fenced(self) -> bool:
        return self.seq == FENCED


@dataclass(frozen=True)
class Record:
    """An event to append: its CloudEvent `source` and `id` (the dedup key) and its JSON payload."""

    source: str
    event_id: str
    body: bytes


@dataclass(frozen=True)
class WalEntry:
    """One accepted event, in acceptance order."""

    seq: int
    payload: dict[str, Any]


@dataclass(frozen=True)
class Checkpoint:
    """A signed model blob and the WAL sequence number it includes."""

    seq: int
    blob: bytes
    meta: dict[str, str]


class RedisState:
    """The state of one use case's model in one Redis database."""

    def __init__(self, client: redis.Redis, prefix: str, use_case: str) -> None:
        self.client = client
        self.base = f"{prefix}:{use_case}:"
        self._append = client.register_script(_APPEND)
        self._append_connection: redis.connection.AbstractConnection | None = None
        self._checkpoint = client.register_script(_CHECKPOINT)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._status = client.register_script(_STATUS)

    @classmethod
    def from_url(cls, url: str, prefix: str, use_case: str) -> RedisState:
        """Connect with redis-py (hiredis is used when installed)."""
        return cls(redis.Redis.from_url(url, socket_timeout=5.0), prefix, use_case)

    def key(self, name: str) -> str:
        """Full key of `name` for this use case."""
        return self.base + name

    # lease -------------------------------------------------------------------------------
    def try_acquire(self, holder: str, ttl_ms: int) -> str | None:
        """Take the lease if it is free; returns the new fencing token, else None."""
        if not self.client.set(self.key("lease"), holder, nx=True, px=ttl_ms):
            return None
        return str(self.client.incr(self.key("fence")))

    def renew(self, holder: str, ttl_ms: int) -> bool:
        """Extend the lease; False when `holder` no longer owns it."""
        return bool(self._renew(keys=[self.key("lease")], args=[holder, ttl_ms]))

    def release(self, holder: str) -> None:
        """Give the lease back (no-op when someone else holds it)."""
        self._release(keys=[self.key("lease")], args=[holder])

    def lease_holder(self) -> str | None:
        """Who holds the lease now."""
        value = self.client.get(self.key("lease"))
        return value.decode() if value else None

    # write-ahead log -----------------------------------------------------------------------
    def append(self, token: str | None, records: Sequence[Record], ttl_s: int,
               while_waiting: Callable[[], object] | None = None) -> list[AppendResult]:
        """Atomically dedup each record on (`source`, `id`), number it and log it, fenced unless `token` is None.

        This is the per-event hot path: all `records` (the appends that queued up while the previous
        batch was in flight) go out in one write on one dedicated connection (callers serialise
        appends), and `while_waiting` runs between sending and reading the replies, so local work
        overlaps the round trip. Each record is still its own atomic script, executed in order, so
        the results (one per record) carry increasing sequence numbers. A connection error is
        raised, never retried here: the sender's redelivery is safe, since a dedup marker and its
        WAL entry are written together.
        """
        commands = []
        for record in records:
            digest = hashlib.blake2b(f"{record.source}\x00{record.event_id}".encode(), digest_size=16).hexdigest()
            keys = (self.key("fence"), self.key("seen:" + digest), self.key("seq"), self.key("wal"))
            commands.append(("EVALSHA", self._append.sha, 4, *keys, token or "", record.body, ttl_s))
        if self._append_connection is None:
            self._append_connection = self.client.connection_pool.make_connection()
        connection = self._append_connection
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            if while_waiting is not None:
                while_waiting()
            replies = [connection.read_response() for _ in commands]
        except redis.exceptions.NoScriptError:  # every command failed the same way: none ran
            connection.disconnect()
            self._append.sha = self.client.script_load(_APPEND)
            return self.append(token, records, ttl_s)
        except redis.RedisError:
            connection.disconnect()
            raise
        return [AppendResult(int(reply)) for reply in replies]

    def read_wal(self, after: int, count: int = 10_000) -> list[WalEntry]:
        """Entries with seq > `after`, oldest first."""
        rows = self.client.xrange(self.key("wal"), min=f"({after}-1", max="+", count=count)
        return [WalEntry(int(rid.split(b"-")[0]), json.loads(fields[b"e"])) for rid, fields in rows]

    def last_seq(self) -> int:
        """Sequence number of the newest accepted event (0 when none)."""
        return int(self.client.get(self.key("seq")) or 0)

    # checkpoints ---------------------------------------------------------------------------
    def write_checkpoint(
        self, token: str, seq: int, blob: bytes, meta: Mapping[str, Any], trim_below: int
    ) -> bool:
        """Store a checkpoint including events up to `seq` and trim WAL ids below `trim_below`."""
        flat: list[str] = []
        for name, value in {**meta, "seq": seq, "bytes": len(blob)}.items():
            flat += [name, str(value)]
        keys = [self.key("fence"), self.key("ckpt"), self.key("ckpt:meta"), self.key("wal")]
        return bool(self._checkpoint(keys=keys, args=[token, blob, json.dumps(flat), trim_below]))

    def heads(self) -> tuple[int | None, int]:
        """The stored checkpoint's sequence number (None: no checkpoint) and the last accepted one: one round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.key("ckpt:meta"), "seq")
        pipe.get(self.key("seq"))
        checkpoint, last = pipe.execute()
        return (int(checkpoint) if checkpoint is not None else None), int(last or 0)

    def read_checkpoint(self) -> Checkpoint | None:
        """The stored checkpoint with its metadata, read consistently."""
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.key("ckpt"))
        pipe.hgetall(self.key("ckpt:meta"))
        blob, meta = pipe.execute()
        if blob is None:
            return None
        decoded = {k.decode(): v.decode() for k, v in meta.items()}
        return Checkpoint(int(decoded["seq"]), blob, decoded)

    # status ------------------------------------------------------------------------------
    def write_status(self, token: str, status: Mapping[str, Any]) -> bool:
        """Publish the learner's status (fenced)."""
        flat: list[str] = []
        for name, value in status.items():
            flat += [name, json.dumps(value)]
        return bool(self._status(keys=[self.key("fence"), self.key("status")], args=[token, json.dumps(flat)]))

    def read_status(self) -> dict[str, Any]:
        """The last published learner status."""
        return {k.decode(): json.loads(v) for k, v in self.client.hgetall(self.key("status")).items()}
