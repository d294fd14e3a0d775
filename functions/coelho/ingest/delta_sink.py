"""The embedded Delta writer behind the `delta-sink` function: group commits, acknowledged once durable.

`submit` queues one validated event and blocks until the micro-batch holding it is committed to the use
case's Delta table (so a 2xx means the row is in the table). A batch is written when it holds
`COELHO_SINK_BATCH_ROWS` events, when its oldest event waited `COELHO_SINK_BATCH_MS` (a second), or, with
at least `GROUP_ROWS` events queued, when no other request is on its way to the writer (`Arrivals`) and
either as many events are queued as the previous commit answered (those senders are back) or `LINGER_S`
passed since that commit. So many concurrent senders (an unordered KafkaSource's window) share a commit as
soon as they are all in, and a slow stream is committed about once a second whatever its senders do: every
commit costs the writer native memory and the table a log entry and a data file (each kept until the log
retention and the vacuum), so commits per hour, not events, are what must stay bounded. A lone sequential
sender gets one event per `COELHO_SINK_BATCH_MS`; producers send to delta-sink with several events in
flight (`coelho produce --unordered-sink`).

Idempotency:

* a batch whose commit raised is retried under the same Delta transaction identifier (app id of this
  writer, batch version): if the failed attempt did commit, `transaction_version` says so and it is not
  written again;
* an event delivered again — a retry after a crash between commit and answer, or a plain duplicate — is
  recognised by (ce_source, ce_id) among the rows committed in the last `COELHO_SINK_DEDUP_SECONDS`
  (rebuilt from the table at start) or queued in the current batch, and answered 2xx without a row.
  One writer per table (the function runs with one replica).

Every `COELHO_SINK_COMPACT_EVERY` commits the table is compacted (`optimize.compact`) and files removed
more than `COELHO_SINK_RETENTION_HOURS` ago (2 h by default) are vacuumed (`compact`). Each commit leaves a data file
on disk until then, so a lone sequential sender (one commit per event) makes about as many files per hour as
events: the retention is their bound. The log is checkpointed every `COELHO_DELTA_CHECKPOINT_EVERY`
commits and entries older than `COELHO_DELTA_LOG_RETENTION_HOURS` are removed (`table_properties`); the
writer's view of the table is reloaded from the latest checkpoint as often (`DeltaSnapshot`), so neither
the log nor the process's table state grows with the number of commits.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from coelho.adapters.delta_snapshot import DeltaSnapshot
from coelho.adapters.delta_store import append, arrow_schema, compact, ensure_table, storage_options, table_properties
from coelho.config import Settings
from coelho.core.table import layout_for
from coelho.core.usecase import UseCase
from coelho.runtime.telemetry import SINK_COMMIT_SECONDS

__all__ = ["Arrivals", "DeltaAppender", "DeltaWriter", "SinkUnavailable"]

log = logging.getLogger(__name__)

#: Attempts to commit one batch before its senders get a 503.
COMMIT_ATTEMPTS = 3
#: Longest a request waits for its batch before answering 503 (the sender retries; dedup keeps one row).
ACK_TIMEOUT_S = 30.0
#: After a commit, how long to wait for the senders it answered before writing a smaller batch.
LINGER_S = 0.005
#: Fewest queued events committed before their oldest waited `COELHO_SINK_BATCH_MS`.
GROUP_ROWS = 32


class SinkUnavailable(RuntimeError):
    """The batch holding an event could not be committed in time; the sender should retry."""


class Arrivals:
    """Counts requests on their way to a writer (being read and validated), shared by all writers.

    >>> arrivals = Arrivals()
    >>> with arrivals:
    ...     arrivals.count
    1
    >>> arrivals.count
    0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def __enter__(self) -> Arrivals:
        with self._lock:
            self._count += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._count -= 1

    @property
    def count(self) -> int:
        return self._count


@dataclass
class _Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


class DeltaWriter:
    """Buffers one use case's rows and appends them to its Delta table in micro-batches."""

    def __init__(self, use_case: UseCase, settings: Settings, arrivals: Arrivals | None = None) -> None:
        self.use_case = use_case
        self.layout = layout_for(use_case)
        self.schema = arrow_schema(self.layout)
        self.uri = settings.delta_uri(use_case.key)
        self.options = storage_options(settings)
        self.batch_rows = settings.sink_batch_rows
        self.batch_seconds = settings.sink_batch_ms / 1000
        self.compact_every = settings.sink_compact_every
        self.dedup_seconds = settings.sink_dedup_seconds
        self.app_id = f"coelho-delta-sink-{use_case.key}-{uuid.uuid4().hex}"
        self.arrivals = arrivals or Arrivals()
        self.stats = {"rows": 0, "commits": 0, "duplicates": 0, "retries": 0, "compactions": 0, "failures": 0}
        self.settings = settings
        ensure_table(self.uri, self.schema, self.options, table_properties(settings))
        self._snapshot = DeltaSnapshot(self.uri, self.options, settings.delta_checkpoint_every)
        self._version = 0
        self._committed: OrderedDict[tuple[str, str], float] = OrderedDict()  # key → commit time (monotonic)
        self._pending: dict[tuple[str, str], tuple[dict[str, Any], _Waiter]] = {}
        self._first_at = 0.0
        self._last_batch = (1, 0.0)  # rows of the previous commit, and when its senders were answered
        self._cond = threading.Condition()
        self._closed = False
        self._load_recent_keys()
        self._thread = threading.Thread(target=self._run, name=f"delta-writer-{use_case.key}", daemon=True)
        self._thread.start()

    def submit(self, source: str, event_id: str, payload: dict[str, Any]) -> Literal["written", "duplicate"]:
        """Queue one schema-valid payload and wait until it is committed (or recognised as a duplicate)."""
        key = (source, event_id)
        with self._cond:
            if key in self._committed:
                self.stats["duplicates"] += 1
                return "duplicate"
            if key in self._pending:
                waiter = self._pending[key][1]
                self.stats["duplicates"] += 1
            else:
                row = self.layout.row(payload, ce_id=event_id, ce_source=source, ingested_at=datetime.now(UTC))
                waiter = _Waiter()
                if not self._pending:
                    self._first_at = time.monotonic()
                self._pending[key] = (row, waiter)
            self._cond.notify()
        if not waiter.done.wait(ACK_TIMEOUT_S):
            raise SinkUnavailable(f"not committed within {ACK_TIMEOUT_S:.0f} s")
        if waiter.error is not None:
            raise SinkUnavailable(waiter.error)
        return "written"

    def status(self) -> dict[str, Any]:
        """Counters, the table location and what is queued now."""
        with self._cond:
            return {"table": self.uri, "pending": len(self._pending), "batch_version": self._version, **self.stats}

    @property
    def open(self) -> bool:
        """False once `close` was called."""
        return not self._closed

    def close(self) -> int:
        """Commit what is queued (its senders get their answer), stop the writer thread; returns how many events."""
        with self._cond:
            self._closed = True
            pending = len(self._pending)
            self._cond.notify()
        self._thread.join(ACK_TIMEOUT_S)
        return pending

    def _due(self, now: float) -> bool:
        if not self._pending:
            return False
        if self._closed or len(self._pending) >= self.batch_rows or now - self._first_at >= self.batch_seconds:
            return True
        if len(self._pending) < GROUP_ROWS or self.arrivals.count > 0:
            return False
        rows, answered_at = self._last_batch
        return len(self._pending) >= rows or now - answered_at >= LINGER_S

    def _wait_seconds(self, now: float) -> float:
        """How long the writer may sleep before a queued batch can be due without a new event."""
        if len(self._pending) < GROUP_ROWS:
            return max(0.0, self._first_at + self.batch_seconds - now)
        return LINGER_S

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due(time.monotonic()):
                    if self._closed and not self._pending:
                        return
                    self._cond.wait(self._wait_seconds(time.monotonic()) if self._pending else None)
                batch, self._pending = self._pending, {}
            self._flush(batch)

    def _flush(self, batch: dict[tuple[str, str], tuple[dict[str, Any], _Waiter]]) -> None:
        self._version += 1
        now = datetime.now(UTC)
        rows = [{**row, "ingested_at": now} for row, _ in batch.values()]
        error = None
        started = time.perf_counter()
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                self._commit(pa.Table.from_pylist(rows, schema=self.schema), self._version, retry=attempt > 1)
                error = None
                break
            except Exception as exc:  # noqa: BLE001 - any storage error: retry the same transaction
                error = f"commit of {len(rows)} rows to {self.uri} failed: {exc}"
                self.stats["retries"] += 1
                log.warning("%s (attempt %d/%d)", error, attempt, COMMIT_ATTEMPTS)
                time.sleep(0.1 * attempt)
        committed_at = time.monotonic()
        SINK_COMMIT_SECONDS.labels(self.use_case.key).observe(time.perf_counter() - started)
        with self._cond:
            if error is None:
                self.stats["rows"] += len(rows)
                self.stats["commits"] += 1
                for key in batch:
                    self._committed[key] = committed_at
                self._forget_old(committed_at)
            else:
                self.stats["failures"] += 1
        for _, waiter in batch.values():
            waiter.error = error
            waiter.done.set()
        self._last_batch = (len(batch), time.monotonic())
        if error is None and self._version % self.compact_every == 0:
            self._compact()

    def _commit(self, table: pa.Table, version: int, retry: bool) -> None:
        """Append `table` as batch `version` of this writer, unless a failed attempt did commit it already."""
        target = self._snapshot.table()
        if retry and (target.transaction_version(self.app_id) or 0) >= version:
            log.info("batch %d of %s was already committed: not written again", version, self.app_id)
            return
        append(target, table, self.settings, {self.app_id: version})

    def _forget_old(self, now: float) -> None:
        while self._committed:
            key, at = next(iter(self._committed.items()))
            if now - at < self.dedup_seconds:
                return
            del self._committed[key]

    def _load_recent_keys(self) -> None:
        """Remember the (ce_source, ce_id) of rows ingested within the dedup window, as if committed now."""
        cutoff = pa.scalar(datetime.now(UTC) - timedelta(seconds=self.dedup_seconds), pa.timestamp("us", tz="UTC"))
        recent = self._snapshot.table().to_pyarrow_dataset().to_table(
            columns=["ce_source", "ce_id"], filter=pc.field("ingested_at") >= cutoff)
        now = time.monotonic()
        for source, event_id in zip(recent["ce_source"].to_pylist(), recent["ce_id"].to_pylist(), strict=True):
            self._committed[(source, event_id)] = now
        if recent.num_rows:
            log.info("%s: %d recent events remembered for deduplication", self.use_case.key, recent.num_rows)

    def _compact(self) -> None:
        if compact(self._snapshot.table(), self.settings) is not None:
            self.stats["compactions"] += 1


class DeltaAppender:
    """Bulk appends of many events to a use case's table: `coelho produce --delta`.

    Rows have exactly the delta-sink's layout (`TableLayout.row`: flattened payload, event_time, ce_id,
    ce_source, no Kafka coordinates, ingested_at); they are gathered in columns and committed every
    `batch_rows` events by a background thread, so the Parquet encoding and the commit overlap the
    generation of the next batch. Each commit carries a Delta transaction identifier (this appender's app id,
    batch number). There is no deduplication: a producer emits each event once.

    >>> import tempfile
    >>> from coelho.core import tfd
    >>> settings = Settings(delta_root=tempfile.mkdtemp())
    >>> with DeltaAppender(tfd.USE_CASE, settings, "/coelho/producers/tfd", batch_rows=2) as appender:
    ...     for i in range(3):
    ...         appender.add({**tfd.EXAMPLE, "transaction_id": f"t{i}"})
    >>> appender.rows, appender.commits
    (3, 2)
    """

    def __init__(self, use_case: UseCase, settings: Settings, source: str, batch_rows: int = 100_000) -> None:
        self.use_case = use_case
        self.layout = layout_for(use_case)
        self.schema = arrow_schema(self.layout)
        self.source = source
        self.batch_rows = batch_rows
        self.app_id = f"coelho-produce-{use_case.key}-{uuid.uuid4().hex}"
        self.rows = 0
        self.commits = 0
        self._settings = settings
        self._table = ensure_table(settings.delta_uri(use_case.key), self.schema, storage_options(settings),
                                   table_properties(settings))
        self._columns: dict[str, list[Any]] = {c.name: [] for c in self.layout.columns}
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name=f"delta-append-{use_case.key}", daemon=True)
        self._thread.start()

    def add(self, payload: dict[str, Any]) -> None:
        """Buffer one schema-valid payload; commits in the background every `batch_rows`."""
        row = self.layout.row(payload, ce_id=str(payload[self.use_case.id_field]), ce_source=self.source,
                              ingested_at=datetime.now(UTC))
        for name, values in self._columns.items():
            values.append(row[name])
        if len(self._columns["ce_id"]) >= self.batch_rows:
            self._submit()

    def close(self) -> None:
        """Commit what is buffered and wait for every commit; raises if one failed."""
        if self._columns["ce_id"]:
            self._submit()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> DeltaAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self) -> None:
        if self._error is not None:
            raise self._error
        arrays = {name: pa.array(values, type=self.schema.field(name).type) for name, values in self._columns.items()}
        self._queue.put(pa.table(arrays, schema=self.schema))
        self._columns = {name: [] for name in self._columns}

    def _write(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                append(self._table, table, self._settings, {self.app_id: self.commits + 1})
                self.commits += 1
                self.rows += table.num_rows
            except Exception as exc:  # noqa: BLE001 - raised to the producer by the next add() or close()
                self._error = exc

