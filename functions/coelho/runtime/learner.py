"""The stateful learner: one writer per model, exactly-once application of accepted events.

An event is *accepted* when a Lua script has, atomically, marked its (`source`, `id`) as seen,
given it the next sequence number and appended it to the write-ahead log. The request is
acknowledged right then: the WAL, not memory, is the source of truth. Any process may accept
(a follower appends and is done), but only the holder of the model's lease learns: accepted
events are learned in sequence order by `drain()`, which runs while the next append's round trip
is in flight (and, when events stop coming, from the background loop within a fraction of a
second, which also picks up what followers logged). So two pods, or two workers of one pod,
both accept, while exactly one model learns. A crash after the append loses nothing (recovery
replays the log), a redelivery is a no-op (the dedup marker exists), and checkpoints every N
events or T seconds bound the replay. While Redis is unreachable nothing can be accepted: `handle`
raises `Unavailable` (the sender retries), `status()` says so, and the learner goes on once it is back.

An event loop never waits on Redis: `accept` awaits the append (what is submitted while one is in flight
goes in the next round trip: group commit), and the loop learns what it logged, in sequence order, in short
slices between its I/O; the lease thread writes the checkpoints and the status and learns what other
processes logged. `handle` is the same for a caller that may block (a thread).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import os
import queue
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from coelho.adapters.redis_state import AppendResult, AsyncAppender, Record, RedisState
from coelho.config import Settings
from coelho.core.online import OnlineModel
from coelho.core.signing import dumps_signed
from coelho.core.usecase import UseCase
from coelho.runtime import telemetry
from coelho.runtime.drift_events import DriftNotifier
from coelho.runtime.history import History
from coelho.runtime.recovery import Replica

__all__ = ["Learner", "NotLeader", "Unavailable"]

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0
#: `status()` waits this long for the model; meanwhile (a recovery) it answers with the published status.
STATUS_WAIT_S = 0.5
#: When no event arrives, queued events are learned within this many seconds.
IDLE_DRAIN_S = 0.1
#: While events flow, the lease thread learns them at most every LEARN_TICK_S (a thread wake-up costs
#: more CPU than learning one event; they are acknowledged already, and predictors refresh every 200 ms).
LEARN_TICK_S = 0.005
#: The event loop learns what it logged in slices of at most this long, between its I/O: a request that
#: arrives meanwhile waits at most one slice (a thread learning instead would contend for the GIL).
LOOP_LEARN_SLICE_S = 0.002
#: How long `close` waits for queued drift CloudEvents.
DRIFT_EVENTS_CLOSE_S = 2.0


@dataclass
class _Ticket:
    """One event waiting to be logged, and then its outcome (`done` resolves for an event loop's caller)."""

    record: Record
    payload: dict[str, Any]
    result: AppendResult | None = None
    error: Exception | None = None
    done: asyncio.Future[None] | None = None


@dataclass
class Parts:
    """CPU seconds (of the thread doing it) and counts per part of the event path, in this process.

    Some parts are wall time: `loop_lag` (how late the event loop's probe timer fired), `append_wait`
    (an event loop's wait for its WAL append's round trip, counted per event of the batch) and `gc0`..`gc2`
    (the interpreter's garbage collections of each generation, which stop every thread).

    `status()` reports them as `timings`, so a benchmark can tell where an event's time goes.

    >>> parts = Parts()
    >>> parts.add("learn", 0.002, 4)
    >>> parts.add("learn", 0.001)
    >>> parts.report()
    {'learn': {'seconds': 0.003, 'count': 5, 'max_seconds': 0.002}}
    """

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peaks: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def add(self, part: str, seconds: float, count: int = 1) -> None:
        """Count `count` occurrences of `part` that took `seconds` in all."""
        self.seconds[part] += seconds
        self.counts[part] += count
        if seconds > self.peaks[part]:
            self.peaks[part] = seconds

    def report(self) -> dict[str, dict[str, float]]:
        """Per part: seconds, count and the longest single addition, rounded to microseconds."""
        return {part: {"seconds": round(self.seconds[part], 6), "count": self.counts[part],
                       "max_seconds": round(self.peaks[part], 6)} for part in sorted(self.seconds)}


class NotLeader(RuntimeError):
    """This learner does not hold the model's lease (it cannot checkpoint)."""


class Unavailable(RuntimeError):
    """Redis is unreachable: the event was not accepted (the sender retries)."""


class Learner:
    """Owns one use case's model while it holds the lease.

    Two locks: `lock` serialises accepting (WAL appends) and leadership changes; `model_lock`
    guards the in-memory replica, checkpoints and status. A leadership change bumps
    `generation`, so queued events of an earlier leadership are never applied on top of a
    freshly recovered model (recovery has replayed them from the WAL already). Without the
    lease it is a follower: it accepts events, tries to take the lease every `lease_seconds / 3`
    (so it takes over within about a lease period when the leader dies) and reports the
    leader's published status.
    """

    def __init__(self, use_case: UseCase, state: RedisState, settings: Settings) -> None:
        self.use_case = use_case
        self.state = state
        self.settings = settings
        self.signing_key = settings.resolved_signing_key()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.replica = Replica(state, self.signing_key)
        self.lock = threading.RLock()
        self.queue_lock = threading.Lock()
        self.queued: list[_Ticket] = []
        self.model_lock = threading.RLock()
        self.inbox: queue.SimpleQueue[tuple[int, int, dict[str, Any] | None]] = queue.SimpleQueue()
        self.generation = 0
        self.accepted_seq = 0
        self.token: str | None = None
        self.lost = threading.Event()
        self.recovering = False  # while taking the lease and recovering the model
        self.stopping = threading.Event()
        self.checkpoint_seq = 0
        self.checkpoint_at = time.monotonic()
        self.last_checkpoint: dict[str, Any] = {}
        self.status_at = 0.0
        self.renewer: threading.Thread | None = None
        self.lead_retry_at = 0.0
        self.published_seq = -1
        self.accepted_at = 0.0
        self.redis_error: str | None = None  # why the last Redis call failed, while it is unreachable
        self.history = History(use_case, settings, self.holder) if settings.mlflow else None
        self.drift_events = DriftNotifier(use_case.key, state, settings.drift_sink) if settings.drift_sink else None
        self.parts = Parts()
        self.gc_started = 0.0
        gc.callbacks.append(self._time_gc)
        self.wal = AsyncAppender(state)  # the event loop's appends
        self.loop_queue: list[_Ticket] = []  # events an event loop submitted while its append is in flight
        self.flushing = False  # an append of the event loop's is in flight
        self.flusher: asyncio.Task[None] | None = None  # held: an event loop keeps only weak references to tasks
        self.learn_wanted = threading.Event()  # wakes the lease thread: events to learn, or a checkpoint/status due
        self.learning_loop: asyncio.AbstractEventLoop | None = None  # where the next learning slice is scheduled

    @property
    def ttl_ms(self) -> int:
        return int(self.settings.lease_seconds * 1000)

    @property
    def quick(self) -> bool:
        """Whether logging an event now costs one Redis round trip: no lease to take, no model to recover.

        `accept` appends on the event loop when this holds, and from a thread otherwise.
        """
        if self.recovering:
            return False
        if self.token is not None:
            return not self.lost.is_set()
        return time.monotonic() < self.lead_retry_at

    # accepting events ----------------------------------------------------------------------
    def handle(self, source: str, event_id: str, payload: dict[str, Any], body: bytes | None = None) -> AppendResult:
        """Accept one validated event (logged durably before this returns), or recognise a duplicate.

        `body` is the payload's JSON text when the caller has it already (the request body).
        Concurrent calls are group-committed: whoever gets the append lock logs every event queued
        so far in one Redis round trip, and the others find their result ready.
        """
        ticket = self._ticket(source, event_id, payload, body)
        with self.queue_lock:
            self.queued.append(ticket)
        with self.lock:
            if ticket.result is None and ticket.error is None:
                with self.queue_lock:
                    batch, self.queued = self.queued, []
                self._commit_all(batch, while_waiting=self.drain)
        return self._outcome(ticket)

    async def accept(self, source: str, event_id: str, payload: dict[str, Any],
                     body: bytes | None = None) -> AppendResult:
        """`handle` for an event loop, which never blocks on Redis here: the append is awaited, learning is
        the lease thread's.

        One append is in flight at a time: the events submitted meanwhile go together in the next one (group
        commit). While the learner may have to take the lease or recover the model (not `quick`), the batch
        goes to a thread instead.
        """
        ticket = self._ticket(source, event_id, payload, body)
        ticket.done = asyncio.get_running_loop().create_future()
        self.loop_queue.append(ticket)
        if self.flushing:
            await ticket.done
        else:
            await self._flush()
        return self._outcome(ticket)

    async def _flush(self) -> None:
        """Log what the event loop queued in one round trip; what arrives meanwhile goes in a next flush."""
        self.flushing = True
        batch, self.loop_queue = self.loop_queue, []
        try:
            await self._commit_on_loop(batch)
        finally:
            for ticket in batch:
                if ticket.result is None and ticket.error is None:
                    ticket.error = RuntimeError("the append was cancelled")  # its sender retries
                if ticket.done is not None and not ticket.done.done():
                    ticket.done.set_result(None)
            if self.loop_queue:
                self.flusher = asyncio.get_running_loop().create_task(self._flush())
            else:
                self.flushing = False

    async def _commit_on_loop(self, batch: list[_Ticket]) -> None:
        """`_commit` without blocking the loop, when it costs one round trip; else `_commit` in a thread."""
        if not (self.quick and self.lock.acquire(blocking=False)):
            await asyncio.to_thread(self._commit_in_thread, batch)
            return
        try:
            records, ttl = [t.record for t in batch], self.settings.dedup_ttl_seconds
            self.accepted_at = time.monotonic()
            token = self.token if not self.lost.is_set() else None
            sent = time.perf_counter()
            results = await self.wal.append(token, records, ttl)
            self.parts.add("append_wait", time.perf_counter() - sent, len(records))
            if token is not None and results[0].fenced:
                self._step_down("fenced out by a newer lease holder")
                results = await self.wal.append(None, records, ttl)
            elif token is not None:
                last = await self.wal.last_seq() if any(r.duplicate for r in results) else None
                self._enqueue(batch, results, last)
                self._learn_on_loop()
            for ticket, result in zip(batch, results, strict=True):
                ticket.result = result
            self._redis_ok()
        except Exception as exc:  # every event of the batch fails alike; each caller raises in _outcome
            for ticket in batch:
                ticket.error = exc
        finally:
            self.lock.release()

    def _learn_on_loop(self) -> None:
        """Learn the queued events on this event loop, slice by slice, as soon as it has no I/O to do."""
        loop = asyncio.get_running_loop()
        if self.learning_loop is not loop:  # none scheduled here (one on a closed loop never runs)
            self.learning_loop = loop
            loop.call_soon(self._learn_slice)

    def _learn_slice(self) -> None:
        self.learning_loop = None
        if self.stopping.is_set():
            return
        learned = self.drain(slice_s=LOOP_LEARN_SLICE_S)
        if not self.inbox.empty():  # the slice ran out, or the lease thread holds the model: later
            loop = self.learning_loop = asyncio.get_running_loop()
            if learned:
                loop.call_soon(self._learn_slice)
            else:
                loop.call_later(LEARN_TICK_S, self._learn_slice)

    def _commit_in_thread(self, batch: list[_Ticket]) -> None:
        with self.lock:
            self._commit_all(batch, while_waiting=None)
        self.learn_wanted.set()

    def _ticket(self, source: str, event_id: str, payload: dict[str, Any], body: bytes | None) -> _Ticket:
        if body is None:
            body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        return _Ticket(Record(source, event_id, body), payload)

    def _commit_all(self, batch: list[_Ticket], while_waiting: Callable[[], object] | None) -> None:
        """Log `batch` (under `lock`); a failure is every ticket's error."""
        try:
            self._commit(batch, while_waiting)
            self._redis_ok()
        except Exception as exc:  # every event of the batch fails alike; each caller raises in _outcome
            for other in batch:
                other.error = exc

    def _outcome(self, ticket: _Ticket) -> AppendResult:
        """The logged ticket's result, or the error its caller raises (`Unavailable` when Redis is away)."""
        if isinstance(ticket.error, redis.RedisError):
            self._redis_failed(ticket.error)
            unreachable = isinstance(ticket.error, redis.ConnectionError | redis.TimeoutError)
            raise Unavailable(f"Redis is {'unreachable' if unreachable else 'failing'}: {ticket.error}") \
                from ticket.error
        if ticket.error is not None:
            raise RuntimeError(f"logging the event failed: {ticket.error}") from ticket.error
        assert ticket.result is not None
        return ticket.result

    def _redis_failed(self, exc: redis.RedisError) -> None:
        if self.redis_error is None:
            log.warning("%s learner: Redis fails: %s", self.use_case.key, exc)
        self.redis_error = f"{type(exc).__name__}: {exc}"[:300]

    def _redis_ok(self) -> None:
        if self.redis_error is not None:
            log.info("%s learner: Redis answers again", self.use_case.key)
            self.redis_error = None

    def _commit(self, batch: list[_Ticket], while_waiting: Callable[[], object] | None) -> None:
        """Log `batch` (under `lock`): fenced as the leader, which queues the events for learning."""
        records, ttl = [t.record for t in batch], self.settings.dedup_ttl_seconds
        self.accepted_at = time.monotonic()
        if not self._lead():
            results = self.state.append(None, records, ttl)  # a follower: the leader learns them from the log
        else:
            assert self.token is not None
            # Learning the events accepted so far (`drain`) may overlap the round trip of these appends.
            results = self.state.append(self.token, records, ttl, while_waiting=while_waiting)
            if results[0].fenced:
                self._step_down("fenced out by a newer lease holder")
                results = self.state.append(None, records, ttl)
            else:
                self._enqueue(batch, results, self.state.last_seq() if any(r.duplicate for r in results) else None)
        for ticket, result in zip(batch, results, strict=True):
            ticket.result = result

    def _enqueue(self, batch: list[_Ticket], results: list[AppendResult], last: int | None) -> None:
        """Queue the accepted events for learning; `last` is the log's last seq when some were duplicates."""
        if any(r.accepted and r.seq <= self.accepted_seq for r in results):
            # Redis went back (a machine crash lost its last acknowledged writes): the model is ahead of the
            # log it learned from. Give the lease back; the next event takes it again and recovers from Redis.
            log.error("%s learner: Redis lost acknowledged events (sequence back from %d to %d); recovering "
                      "from what it holds", self.use_case.key, self.accepted_seq, min(r.seq for r in results))
            self.lost.set()
            self.state.release(self.holder)
            self.lead_retry_at = 0.0
            return
        for ticket, result in zip(batch, results, strict=True):
            if result.accepted:
                contiguous = result.seq == self.accepted_seq + 1  # else a follower logged some: read the WAL
                self.accepted_seq = result.seq
                self.inbox.put((self.generation, result.seq, ticket.payload if contiguous else None))
        if last is not None and last > self.accepted_seq:
            # A redelivery of an event whose first append succeeded but whose reply was lost:
            # it is in the WAL, so learn it (and anything else) from there.
            self.accepted_seq = last
            self.inbox.put((self.generation, last, None))

    def drain(self, slice_s: float | None = None) -> int:
        """Learn every accepted event not learned yet, in sequence order; returns how many.

        An event loop runs it in slices as soon as it has logged events (`slice_s`: stop once that much time
        is spent; nothing when another thread holds the model; a checkpoint or status that falls due is left to
        the lease thread, off the loop). The lease thread runs it every `IDLE_DRAIN_S` and when woken, `handle`
        while the next append is in flight, and it runs before status, checkpoints and shutdown.
        """
        on_loop = slice_s is not None
        if not self.model_lock.acquire(blocking=not on_loop):
            return 0
        inbox, replica, clock = self.inbox, self.replica, time.thread_time
        applied = steps = 0
        learn_s = observe_s = 0.0
        deadline = time.perf_counter() + slice_s if slice_s is not None else math.inf
        try:
            step_at = clock()  # CPU clock readings are chained: two per event
            while not inbox.empty() and time.perf_counter() < deadline:
                generation, seq, payload = inbox.get_nowait()
                if generation != self.generation or replica.model is None or seq <= replica.seq:
                    continue  # from an earlier leadership, or already replayed from the WAL
                try:
                    applied += replica.catch_up() if payload is None else replica.apply_one(seq, payload)
                    learned_at = clock()
                    self._observe()
                    observed_at = clock()
                    learn_s, observe_s = learn_s + learned_at - step_at, observe_s + observed_at - learned_at
                    step_at, steps = observed_at, steps + 1
                    if not on_loop:  # a checkpoint falls due at an exact seq: look after every event
                        self._housekeeping(on_loop)
                        step_at = clock()
                except (NotLeader, redis.RedisError, LookupError) as exc:
                    self._lost_model(exc)
                    step_at = clock()
            if steps:
                self.parts.add("learn", learn_s, applied)
                self.parts.add("observe", observe_s, steps)
            if on_loop:
                if steps:
                    self._housekeeping(on_loop)  # once per slice: wakes the lease thread for what falls due
            elif not applied and self.token is not None and self.replica.model is not None:
                # woken by an event loop that learned the events: the checkpoint or status it left
                try:
                    self._housekeeping(on_loop)
                except (NotLeader, redis.RedisError) as exc:
                    self._lost_model(exc)
        finally:
            self.model_lock.release()
        return applied

    def _lost_model(self, exc: Exception) -> None:
        log.warning("%s learner: %s; the next event triggers recovery", self.use_case.key, exc)
        self.lost.set()

    def _housekeeping(self, on_loop: bool) -> None:
        """Checkpoint and publish status when due (under `model_lock`); on an event loop, wake the lease thread
        for them instead."""
        now = time.monotonic()
        pending = self.replica.seq - self.checkpoint_seq
        checkpoint_due = pending >= self.settings.checkpoint_every or (
            pending and now - self.checkpoint_at >= self.settings.checkpoint_seconds
        )
        status_due = now - self.status_at >= STATUS_INTERVAL_S
        if on_loop:
            if checkpoint_due or status_due:
                self.learn_wanted.set()
            return
        if checkpoint_due:
            self.checkpoint()
        if status_due:
            self.publish_status()

    def _observe(self) -> None:
        """Feed the learned model's telemetry, MLflow history and drift watch (`drain` times it)."""
        if (model := self.replica.model) is not None:
            telemetry.observe_learned(self.use_case.key, model.last_event_time)
            if self.history is not None:
                self.history.observe(model)
            if self.drift_events is not None:
                self.drift_events.observe(model)

    # leadership ----------------------------------------------------------------------------
    def _lead(self) -> bool:
        """True when this learner holds the lease (taking it when free, at most every lease/3 s)."""
        if self.token is not None and not self.lost.is_set():
            return True
        if self.token is not None:
            self._step_down("lease lost or applier failed")
        self._start_renewer()
        now = time.monotonic()
        if now < self.lead_retry_at:
            return False
        if self.stopping.is_set():
            return False  # closed: never lead again (the renewer may still be finishing its last round)
        self.recovering = True  # first: `quick` must not see the new retry time before the attempt is over
        try:
            self.lead_retry_at = now + self.settings.lease_seconds / 3
            token = self.state.try_acquire(self.holder, self.ttl_ms)
            if token is None:
                return False
            self.token = token
            self.lost.clear()
            try:
                self._recover()
            except Exception:
                log.exception("%s learner %s could not recover the model", self.use_case.key, self.holder)
                self._step_down("recovery failed")
                self.state.release(self.holder)
                return False
            return True
        finally:
            self.recovering = False

    def _recover(self) -> None:
        started = time.perf_counter()
        with self.model_lock:
            self.generation += 1
            replica = self.replica
            replica.model, replica.seq = None, 0
            if not replica.load_checkpoint():
                replica.model = self._initial_model()
                self.checkpoint()  # seq 0: predictors start from the same model and preset
            self.checkpoint_seq = replica.seq
            replayed = replica.catch_up()  # what followers log from now on is read at the next gap
            self.accepted_seq = replica.seq
            telemetry.RECOVERY_SECONDS.labels(self.use_case.key).observe(time.perf_counter() - started)
            telemetry.REPLAYED.labels(self.use_case.key).inc(replayed)
            telemetry.LEADERSHIP.labels(self.use_case.key, "acquired").inc()
            log.info("%s learner %s leads with fence %s: checkpoint seq %d + %d replayed in %.3fs",
                     self.use_case.key, self.holder, self.token, self.checkpoint_seq, replayed,
                     time.perf_counter() - started)
            if self.history is not None:
                self.history.started(replica.model)
            self.publish_status()

    def _initial_model(self) -> OnlineModel:
        """With no checkpoint in Redis: the MLflow champion to continue from, else a fresh model."""
        restored = self.history.restore() if self.history is not None else None
        return restored or OnlineModel(self.use_case, self.settings.model_preset)

    def _step_down(self, reason: str) -> None:
        log.warning("%s learner %s steps down: %s", self.use_case.key, self.holder, reason)
        telemetry.LEADERSHIP.labels(self.use_case.key, "lost").inc()
        with self.model_lock:
            self.generation += 1
            self.token = None
            self.replica.model, self.replica.seq = None, 0

    def _start_renewer(self) -> None:
        if self.renewer is not None and self.renewer.is_alive():
            return
        self.renewer = threading.Thread(target=self._renew_loop, name=f"{self.use_case.key}-lease", daemon=True)
        self.renewer.start()

    def _renew_loop(self) -> None:
        """The lease thread: learns what the event loop logged at once; every `IDLE_DRAIN_S` the idle work
        (taking a free lease, learning what followers logged, the status), and renews the lease."""
        period = self.settings.lease_seconds / 3
        renew_at = time.monotonic() + period
        idle_at = time.monotonic() + IDLE_DRAIN_S
        while not self.stopping.is_set():
            if self.learn_wanted.wait(max(0.0, idle_at - time.monotonic())):
                self.learn_wanted.clear()
                if self.token is not None and not self.stopping.is_set():
                    self.drain()
                    self.stopping.wait(LEARN_TICK_S)  # learn in batches: at most one wake-up per tick
                if time.monotonic() < idle_at:
                    continue
            idle_at = time.monotonic() + IDLE_DRAIN_S
            if self.stopping.is_set():
                break
            if self.token is None:
                self._idle_lead()
                continue
            self._idle_drain()
            if time.monotonic() < renew_at:
                continue
            try:
                renewed = self.state.renew(self.holder, self.ttl_ms)
            except redis.RedisError as exc:  # while Redis is away: try again every idle round
                self._redis_failed(exc)
                continue
            self._redis_ok()
            renew_at = time.monotonic() + period
            if not renewed:
                self.lost.set()
                continue
            self._idle_checkpoint()

    def _idle_lead(self) -> None:
        """A follower takes the lease when it is free, so a dead leader is replaced without new traffic."""
        if time.monotonic() < self.lead_retry_at or not self.lock.acquire(blocking=False):
            return
        try:
            self._lead()
        except redis.RedisError as exc:
            self._redis_failed(exc)
        finally:
            self.lock.release()

    def _idle_drain(self) -> None:
        if not self.lock.acquire(blocking=False):
            return  # an append is running (and drains while it waits)
        try:
            self._queue_logged()
            self.drain()
            quiet = time.monotonic() - self.accepted_at >= IDLE_DRAIN_S  # while events flow, _housekeeping publishes
            if quiet and self.replica.seq != self.published_seq:
                self.publish_status()
        except redis.RedisError as exc:
            self._redis_failed(exc)
        finally:
            self.lock.release()

    def _queue_logged(self) -> None:
        """Queue for learning what other processes (followers) logged after this learner's last append (under
        `lock`): `drain` reads it from the WAL."""
        if (last := self.state.last_seq()) > self.accepted_seq:
            self.accepted_seq = last
            self.inbox.put((self.generation, last, None))

    def _idle_checkpoint(self) -> None:
        if not self.model_lock.acquire(blocking=False):
            return
        try:  # queued events were learned by _idle_drain just before
            due = time.monotonic() - self.checkpoint_at >= self.settings.checkpoint_seconds
            if self.token and self.replica.model is not None and self.replica.seq > self.checkpoint_seq and due:
                self.checkpoint()
        except redis.RedisError as exc:
            self._redis_failed(exc)
        except NotLeader as exc:
            log.warning("%s idle checkpoint failed: %s", self.use_case.key, exc)
        finally:
            self.model_lock.release()

    # durability ----------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """Write a signed checkpoint of the model at the current seq (fenced)."""
        with self.model_lock:
            token, model = self.token, self.replica.model
            if token is None or model is None:
                raise NotLeader("not the writer: nothing to checkpoint")
            started, cpu_started = time.perf_counter(), time.thread_time()
            blob = dumps_signed(model, self.signing_key)
            serialize_ms = (time.perf_counter() - started) * 1000
            seq = self.replica.seq
            meta = {
                "created_at": datetime.now(UTC).isoformat(),
                "serialize_ms": round(serialize_ms, 3),
                "preset": model.preset,
                "holder": self.holder,
            }
            trim_below = seq - self.settings.checkpoint_every + 1
            if not self.state.write_checkpoint(token, seq, blob, meta, trim_below):
                self.lost.set()
                raise NotLeader("lost the lease while checkpointing")
            self.checkpoint_seq, self.checkpoint_at = seq, time.monotonic()
            self.last_checkpoint = {**meta, "seq": seq, "bytes": len(blob)}
            telemetry.CHECKPOINT_SECONDS.labels(self.use_case.key).observe(time.perf_counter() - started)
            self.parts.add("checkpoint", time.thread_time() - cpu_started)
            if self.history is not None:
                self.history.checkpointed(blob, model, seq)
            return self.last_checkpoint

    def publish_status(self) -> None:
        """Share status (version, counters, metrics) through Redis for predictors, followers and the UI."""
        self.status_at = time.monotonic()
        token = self.token
        if token is not None:
            started = time.thread_time()
            status = self.status()
            self.state.write_status(token, status)
            self.published_seq = status["model_version"]
            self.parts.add("status", time.thread_time() - started)

    def status(self) -> dict[str, Any]:
        """What the learner knows (every accepted event included); a follower relays the leader's status.

        While the model is being recovered (or checkpointed) for longer than `STATUS_WAIT_S`, the
        last published status, marked `busy`.
        """
        if not self.model_lock.acquire(timeout=STATUS_WAIT_S):
            return {**self._published_status(), "busy": True}
        try:
            self.drain()
            model = self.replica.model
            if self.token is None:
                return self._published_status()
            return {
                "use_case": self.use_case.key,
                "role": "learner",
                "leader": self.token is not None and not self.lost.is_set(),
                "holder": self.holder,
                "fence": self.token,
                "model_version": self.replica.seq,
                "accepted_version": self.accepted_seq,
                "apply_errors": self.replica.apply_errors,
                "last_checkpoint": self.last_checkpoint,
                "mlflow": self._history_status(),
                "drift_events": self.drift_events.status() if self.drift_events else {"enabled": False},
                "redis": self._redis_status(),
                "timings": self.parts.report(),
                "updated_at": datetime.now(UTC).isoformat(),
                **(model.status() if model is not None else {"events_applied": 0, "metrics": {}}),
            }
        finally:
            self.model_lock.release()

    def _published_status(self) -> dict[str, Any]:
        """The leader's status as last published, as this (non-leading) learner relays it."""
        try:
            published = self.state.read_status()
        except redis.RedisError as exc:
            self._redis_failed(exc)
            published = {}
        return {"use_case": self.use_case.key, "model_version": 0, "events_applied": 0, "metrics": {},
                **published, "role": "learner", "leader": False, "holder": self.holder,
                "leader_holder": published.get("holder"), "mlflow": self._history_status(),
                "redis": self._redis_status()}

    def _history_status(self) -> dict[str, Any]:
        return self.history.status() if self.history is not None else {"enabled": False}

    def _redis_status(self) -> dict[str, Any]:
        return {"ok": self.redis_error is None, "error": self.redis_error}

    def health(self) -> dict[str, Any]:
        """Ready while Redis answers: without it no event can be accepted (`ok`, and why not)."""
        try:
            self.state.client.ping()
            self._redis_ok()
        except redis.RedisError as exc:
            self._redis_failed(exc)
        return {"ok": self.redis_error is None, "redis": self._redis_status()}

    def _time_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.gc_started = time.perf_counter()
        else:
            self.parts.add(f"gc{info['generation']}", time.perf_counter() - self.gc_started)

    def close(self) -> str:
        """Learn what was accepted, write the final checkpoint, release the lease, end the MLflow run (bounded).

        Returns what it did, in a few words, for the stop's log line.
        """
        self.stopping.set()
        if self._time_gc in gc.callbacks:
            gc.callbacks.remove(self._time_gc)
        self.learn_wanted.set()
        self.wal.close()
        done: list[str] = []
        with self.lock:
            if self.token is not None:
                try:
                    self._queue_logged()  # the final checkpoint holds what the other workers logged too
                    learned = self.drain()
                    with self.model_lock:
                        seq = self.replica.seq
                        if seq > self.checkpoint_seq:
                            self.checkpoint()
                            learned_now = f" (the last {learned} events learned on the way)" if learned else ""
                            done.append(f"final checkpoint at seq {seq}{learned_now}")
                        else:
                            done.append(f"checkpoint at seq {seq} was current")
                        self.publish_status()  # predictors, followers and the UI see the final state
                    self.state.release(self.holder)
                    done.append("lease released")
                except (NotLeader, redis.RedisError) as exc:
                    log.warning("%s learner closed without a final checkpoint: %s", self.use_case.key, exc)
                    done.append(f"no final checkpoint ({exc}); the successor replays the log")
                self.token = None
            else:
                done.append("a follower: nothing to checkpoint")
            if self.history is not None:
                with self.model_lock:
                    done.append(self.history.close(self.replica.model, self.replica.seq, self.signing_key))
            if self.drift_events is not None:
                self.drift_events.close(DRIFT_EVENTS_CLOSE_S)
                done.append("drift events sent")
        return ", ".join(done)
