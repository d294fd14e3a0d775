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

import asyncio
import contextlib
import hashlib
import json
import socket
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
import redis.connection

__all__ = ["AppendResult", "AsyncAppender", "Checkpoint", "Record", "RedisState", "WalEntry"]

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
        commands = self.append_commands(token, records, ttl_s)
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
            self.reload_append_script()
            return self.append(token, records, ttl_s)
        except redis.RedisError:
            connection.disconnect()
            raise
        return [AppendResult(int(reply)) for reply in replies]

    def append_commands(self, token: str | None, records: Sequence[Record], ttl_s: int) -> list[tuple[Any, ...]]:
        """The append script's calls for `records` (one EVALSHA each), as `append` sends them."""
        commands = []
        for record in records:
            digest = hashlib.blake2b(f"{record.source}\x00{record.event_id}".encode(), digest_size=16).hexdigest()
            keys = (self.key("fence"), self.key("seen:" + digest), self.key("seq"), self.key("wal"))
            commands.append(("EVALSHA", self._append.sha, 4, *keys, token or "", record.body, ttl_s))
        return commands

    def reload_append_script(self) -> None:
        """Load the append script again (Redis lost its script cache: restarted or flushed)."""
        self._append.sha = self.client.script_load(_APPEND)

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


class AsyncAppender:
    """`RedisState.append` for an event loop: the loop sends and goes on; the replies arrive as a callback.

    One non-blocking socket (connected, and authenticated when the URL says so, once per event loop), read
    by `loop.add_reader` and parsed by hiredis; no task, thread or transport per call. Callers serialise
    appends (one batch in flight), so the order of the log is the order of the calls. A batch that gets no
    answer within `timeout` seconds, or a broken connection, raises `redis.ConnectionError` /
    `redis.TimeoutError` (the socket is closed; the next call reconnects).
    """

    def __init__(self, state: RedisState, timeout: float = 5.0) -> None:
        self.state = state
        self.timeout = timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sock: socket.socket | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[tuple[asyncio.Future[list[Any]], list[Any], int]] = deque()

    async def append(self, token: str | None, records: Sequence[Record], ttl_s: int) -> list[AppendResult]:
        """Log `records` as `RedisState.append` does, awaiting the round trip instead of blocking on it."""
        replies = await self.call(self.state.append_commands(token, records, ttl_s))
        if any(isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT") for reply in replies):
            self.state.reload_append_script()  # every command failed the same way: none ran
            replies = await self.call(self.state.append_commands(token, records, ttl_s))
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise redis.ResponseError(str(reply))
        return [AppendResult(int(reply)) for reply in replies]

    async def last_seq(self) -> int:
        """`RedisState.last_seq`, awaited."""
        [reply] = await self.call([("GET", self.state.key("seq"))])
        return int(reply or 0)

    async def call(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send `commands` in one write and await all their replies (errors are returned, not raised)."""
        loop = asyncio.get_running_loop()
        if self.sock is None or self.loop is not loop:
            self._open(loop)
        assert self.sock is not None
        future: asyncio.Future[list[Any]] = loop.create_future()
        self.waiting.append((future, [], len(commands)))
        data = b"".join(hiredis.pack_command(command) for command in commands)
        sock = self.sock
        try:
            try:
                sent = sock.send(data)
            except BlockingIOError:  # the socket's buffer is full: the loop sends it when it can
                sent = 0
            if sent < len(data):
                await loop.sock_sendall(sock, data[sent:])
        except OSError as exc:
            self.close(redis.ConnectionError(f"writing to Redis failed: {exc}"))
        timer = loop.call_later(self.timeout, self._timed_out, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        self.close(redis.ConnectionError("the event loop changed"))
        options = self.state.client.connection_pool.connection_kwargs
        try:
            if options.get("path"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(options["path"])
            else:
                sock = socket.create_connection((options.get("host", "localhost"), options.get("port", 6379)),
                                                self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _handshake(sock, options)
        except OSError as exc:
            raise redis.ConnectionError(f"connecting to Redis failed: {exc}") from exc
        sock.setblocking(False)
        self.sock, self.loop, self.reader = sock, loop, hiredis.Reader()
        loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close(redis.ConnectionError(f"reading from Redis failed: {exc}"))
            return
        if not data:
            self.close(redis.ConnectionError("Redis closed the connection"))
            return
        self.reader.feed(data)
        while self.waiting and (reply := self.reader.gets()) is not False:
            future, replies, count = self.waiting[0]
            replies.append(reply)
            if len(replies) == count:
                self.waiting.popleft()
                if not future.done():
                    future.set_result(replies)

    def _timed_out(self, future: asyncio.Future[list[Any]]) -> None:
        if not future.done():
            self.close(redis.TimeoutError(f"no answer from Redis within {self.timeout} s"))

    def close(self, error: Exception | None = None) -> None:
        """Close the socket; every batch still waiting fails with `error` (from another thread: on its loop)."""
        loop = self.loop
        if loop is not None and loop.is_running() and not _running(loop):
            loop.call_soon_threadsafe(self.close, error)
            return
        sock, self.sock = self.sock, None
        if sock is not None:
            if loop is not None:
                with contextlib.suppress(RuntimeError, ValueError):  # that loop is closed already
                    loop.remove_reader(sock.fileno())
            sock.close()
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done() and not future.get_loop().is_closed():
                future.set_exception(error or redis.ConnectionError("closed"))


def _running(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` is the event loop of the calling thread."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _handshake(sock: socket.socket, options: Mapping[str, Any]) -> None:
    """AUTH and SELECT on a fresh blocking socket, as the URL asks."""
    commands: list[tuple[Any, ...]] = []
    if options.get("password"):
        commands.append(("AUTH", *filter(None, [options.get("username")]), options["password"]))
    if options.get("db"):
        commands.append(("SELECT", options["db"]))
    if not commands:
        return
    sock.sendall(b"".join(hiredis.pack_command(command) for command in commands))
    reader, replies = hiredis.Reader(), []
    while len(replies) < len(commands):
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise OSError("Redis closed the connection during the handshake")
        reader.feed(chunk)
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    if errors := [str(reply) for reply in replies if isinstance(reply, hiredis.ReplyError)]:
        raise OSError(f"handshake refused: {'; '.join(errors)}")
