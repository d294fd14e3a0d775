"""Kafka → Delta in bulk, exactly once, in one Python process: `coelho ingest kafka`, the volume path.

A KafkaSource delivers one event per HTTP request, so delta-sink (the Knative path, answered once committed)
is bound by the function's request rate, a few thousand a second on two cores. This consumer reads a use
case's topic in bulk instead (thousands of records per `consume`), turns them into the delta-sink's rows
plus the Kafka partition and offset, and appends one Delta commit per batch (`COELHO_INGEST_BATCH_ROWS`
records, or what arrived in `COELHO_INGEST_BATCH_MS`).

Exactly once, as Spark's idempotent writes do it: each commit carries, for every partition it holds records
of, a Delta transaction identifier — app id `coelho-kafka:<topic>:<partition>`, version = the next offset to
read. The rows and their offsets are one atomic commit, so the table itself says where to resume: when
partitions are assigned, each starts at its version in the table (the beginning when there is none), never
at the consumer group's committed offset (committed after each Delta commit, for lag monitoring only). A
crash anywhere — before, during or after a commit — re-reads from the last committed offsets, and a
record is never written twice. Records that cannot become a row (not JSON, not the schema, a `ce_id` /
`ce_source` header missing) go to `<use case>_quarantine` with the reason, in a commit made first with
its own versions: a record replayed after a crash between the two commits is skipped there by offset.
One consumer per partition (a consumer group splits them; before its partitions are taken away a consumer
writes what it holds).

Every `COELHO_SINK_COMPACT_EVERY` commits the table is compacted and vacuumed like delta-sink's, and the
table properties (`table_properties`) checkpoint and trim its log.

>>> app_id("transaction_fraud_detection", 2)
'coelho-kafka:transaction_fraud_detection:2'
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from deltalake import DeltaTable

from coelho.adapters.delta_snapshot import DeltaSnapshot
from coelho.adapters.delta_store import append, arrow_schema, compact, ensure_table, storage_options, table_properties
from coelho.config import Settings
from coelho.core.table import TableLayout, layout_for
from coelho.core.usecase import UseCase
from coelho.ingest.spark_job import QUARANTINE, quarantine_name

__all__ = ["KafkaDeltaIngest", "app_id", "arrow_table", "run"]

log = logging.getLogger(__name__)

#: Records asked of the client per `consume` call.
CONSUME_RECORDS = 10_000


def app_id(topic: str, partition: int) -> str:
    """The Delta transaction app id that records how far `partition` of `topic` is written."""
    return f"coelho-kafka:{topic}:{partition}"


class _Target:
    """One table written by the consumer, and per partition the next offset it holds."""

    def __init__(self, uri: str, schema: pa.Schema, settings: Settings) -> None:
        options = storage_options(settings)
        ensure_table(uri, schema, options, table_properties(settings))
        self.schema = schema
        self.settings = settings
        self.snapshot = DeltaSnapshot(uri, options, settings.delta_checkpoint_every)
        self.next: dict[int, int] = {}

    def resume(self, topic: str, partition: int) -> int | None:
        """The next offset of `partition` this table holds (None: nothing written yet)."""
        version = self.snapshot.table().transaction_version(app_id(topic, partition))
        if version is not None:
            self.next[partition] = version
        return version

    def append(self, topic: str, rows: list[dict[str, Any]], ends: dict[int, int]) -> int:
        """Commit the rows this table does not hold yet, with `ends` (partition → next offset); how many."""
        fresh = [row for row in rows if row["kafka_offset"] >= self.next.get(row["kafka_partition"], 0)]
        moved = {partition: end for partition, end in ends.items() if end > self.next.get(partition, 0)}
        if not moved:
            return 0
        table: DeltaTable = self.snapshot.table()
        append(table, arrow_table(fresh, self.schema), self.settings,
               {app_id(topic, partition): end for partition, end in sorted(moved.items())})
        self.next.update(moved)
        return len(fresh)

    def compact(self) -> bool:
        """Compact and vacuum the table (`compact`); whether it was done."""
        return compact(self.snapshot.table(), self.settings) is not None


class KafkaDeltaIngest:
    """Consumes one use case's topic and appends it to the use case's Delta table, exactly once."""

    def __init__(self, use_case: UseCase, settings: Settings, topic: str, *, group: str | None = None,
                 batch_rows: int | None = None, batch_ms: int | None = None) -> None:
        self.use_case = use_case
        self.topic = topic
        self.layout = layout_for(use_case)
        self.batch_rows = batch_rows or settings.ingest_batch_rows
        self.batch_seconds = (batch_ms or settings.ingest_batch_ms) / 1000
        self.compact_every = settings.sink_compact_every
        self.stats = {"rows": 0, "quarantined": 0, "commits": 0, "compactions": 0}
        self.table = _Target(settings.delta_uri(use_case.key), arrow_schema(self.layout), settings)
        quarantine = TableLayout(use_case.key, quarantine_name(use_case.key), QUARANTINE)
        self.quarantine = _Target(settings.delta_uri(quarantine_name(use_case.key)), arrow_schema(quarantine),
                                  settings)
        self._held: list[Message] = []
        self._consumer = Consumer({
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": group or f"coelho-ingest-{use_case.key}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        })
        self._consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def run(self, stopping: Callable[[], bool], idle_stop: bool = False) -> None:
        """Ingest until `stopping()` (or, with `idle_stop`, until the table holds every record of the partitions
        assigned to this consumer)."""
        try:
            while not stopping():
                if not self.step() and idle_stop and self.drained():
                    return
        finally:
            self.close()

    def drained(self) -> bool:
        """Partitions are assigned and the table holds each up to its end (high watermark)."""
        assigned = self._consumer.assignment()
        return bool(assigned) and all(
            self.table.next.get(p.partition, 0) >= self._consumer.get_watermark_offsets(p, timeout=10)[1]
            for p in assigned)

    def step(self) -> int:
        """Read one batch (up to `batch_rows` records or `batch_seconds`) and commit it; the records read."""
        deadline = time.monotonic() + self.batch_seconds
        while len(self._held) < self.batch_rows and (left := deadline - time.monotonic()) > 0:
            wanted = min(CONSUME_RECORDS, self.batch_rows - len(self._held))
            for message in self._consumer.consume(wanted, timeout=left):
                if message.error() is not None:
                    if message.error().fatal():
                        raise KafkaException(message.error())
                    log.warning("%s: %s", self.topic, message.error())
                else:
                    self._held.append(message)
        return self._write()

    def close(self) -> None:
        """Write what is held, then leave the group."""
        self._write()
        self._consumer.close()

    def _write(self) -> int:
        messages, self._held = self._held, []
        if not messages:
            return 0
        now = datetime.now(UTC)
        rows, bad = self._rows(messages, now)
        ends: dict[int, int] = {}
        for message in messages:
            ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)
        quarantined = self.quarantine.append(self.topic, bad, ends) if bad else 0
        written = self.table.append(self.topic, rows, ends)
        self.stats["rows"] += written
        self.stats["quarantined"] += quarantined
        self.stats["commits"] += 1
        if quarantined:
            log.warning("%s: %d records quarantined in %s", self.topic, quarantined, self.quarantine.snapshot.uri)
        self._consumer.commit(offsets=[TopicPartition(self.topic, p, end) for p, end in ends.items()],
                              asynchronous=True)
        if self.stats["commits"] % self.compact_every == 0 and self.table.compact():
            self.stats["compactions"] += 1
        return len(messages)

    def _rows(self, messages: Sequence[Message], now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The table rows of `messages` and the quarantine rows of those that cannot be one."""
        rows, bad = [], []
        for message in messages:
            headers = {key: value.decode("utf-8", "replace") for key, value in message.headers() or [] if value}
            reason, payload = _problem(message.value(), headers, self.use_case)
            if reason is None:
                rows.append(self.layout.row(payload, ce_id=headers["ce_id"], ce_source=headers["ce_source"],
                                            ingested_at=now, kafka_partition=message.partition(),
                                            kafka_offset=message.offset()))
            else:
                key = message.key()
                bad.append({"topic": message.topic(), "kafka_partition": message.partition(),
                            "kafka_offset": message.offset(), "key": None if key is None else key.decode(
                                "utf-8", "replace"), "value": (message.value() or b"").decode("utf-8", "replace"),
                            "headers": json.dumps(headers), "reason": reason, "ingested_at": now})
        return rows, bad

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in partitions:
            self.quarantine.resume(self.topic, partition.partition)
            start = self.table.resume(self.topic, partition.partition)
            partition.offset = OFFSET_BEGINNING if start is None else start
        log.info("%s: partitions assigned, resuming at %s", self.topic,
                 {p.partition: p.offset for p in partitions})
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._write()  # what is held is written before another consumer may take its partitions


def arrow_table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """`rows` (column name → value) as an Arrow table, a column at a time (several times faster than
    `pa.Table.from_pylist`).

    >>> arrow_table([{"a": 1, "b": "x"}, {"a": 2, "b": None}], pa.schema([("a", pa.int64()), ("b", pa.string())]))["b"]
    <pyarrow.lib.ChunkedArray object at ...>
    [
      [
        "x",
        null
      ]
    ]
    """
    return pa.table({field.name: pa.array([row[field.name] for row in rows], type=field.type) for field in schema},
                    schema=schema)


def _problem(value: bytes | None, headers: dict[str, str], use_case: UseCase) -> tuple[str | None, Any]:
    """Why a record cannot be a row of `use_case`'s table (None: it can), and its payload."""
    try:
        payload = json.loads(value or b"")
    except ValueError:
        return "value is not JSON", None
    missing = [name for name in ("ce_id", "ce_source") if name not in headers]
    if missing:
        return f"header {missing[0]} is missing", None
    problems = use_case.schema.validate(payload)
    if problems:
        return "; ".join(f"{p.field} {p.message}" for p in problems), None
    return None, payload


def run(settings: Settings, use_cases: Sequence[str], *, topics: dict[str, str] | None = None, once: bool = False,
        group: str | None = None, batch_rows: int | None = None, workers: int = 1) -> int:
    """Ingest each use case's topic until SIGTERM/SIGINT (with `once`: until drained); with `workers` > 1, as
    many processes in one consumer group per use case (the partitions are split between them)."""
    if workers > 1:
        return _run_workers(settings, use_cases, workers, topics=topics, once=once, group=group,
                            batch_rows=batch_rows)
    from coelho.core import USE_CASES
    from coelho.producers.kafka_sink import TOPICS

    topics = {**TOPICS, **(topics or {})}
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    failures: list[str] = []

    def ingest(key: str) -> None:
        try:
            consumer = KafkaDeltaIngest(USE_CASES[key], settings, topics[key], batch_rows=batch_rows,
                                        group=group and f"{group}-{key}")
            log.info("ingesting %s from Kafka topic %s into %s", key, topics[key], settings.delta_uri(key))
            consumer.run(stop.is_set, idle_stop=once)
            log.info("%s: %s", key, consumer.stats)
        except Exception:
            log.exception("ingestion of %s failed", key)
            failures.append(key)
            stop.set()  # one failed: stop all, so that the supervisor restarts the job

    threads = [threading.Thread(target=ingest, args=(key,), name=f"ingest-{key}") for key in use_cases]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("ingestion stopped")
    return 1 if failures else 0


def _worker(settings: Settings, use_cases: Sequence[str], options: dict[str, Any]) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run(settings, use_cases, **options))


def _run_workers(settings: Settings, use_cases: Sequence[str], workers: int, **options: Any) -> int:
    """`run` in `workers` child processes; SIGTERM/SIGINT are passed on to them."""
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_worker, args=(settings, use_cases, options), name=f"ingest-worker-{i}")
                for i in range(workers)]

    def forward(signum: int, frame: Any) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for child in children:
            child.start()
        for child in children:
            child.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max(child.exitcode or 0 for child in children)
