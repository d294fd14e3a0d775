"""The local KafkaSource: consume a source's topics and deliver each record to its sink.

Behaves like eventing-kafka-broker's dispatcher for one KafkaSource:

- consumer group `spec.consumerGroup`, `initialOffset` when the group has no offsets,
  `read_committed`, auto-commit off;
- `ordered`: one event in flight per partition; `unordered`: up to `max_in_flight` events in
  flight per source, still committed in order;
- offsets committed every `commit_interval` seconds (Knative reuses auto.commit.interval.ms,
  5 s), on partition revocation and on shutdown — only the contiguous prefix of finished ones;
- each record is converted by `records.to_cloudevent` and delivered by `delivery.Sender`.

A crash therefore redelivers at most the uncommitted tail; the learners deduplicate it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from coelho.dispatch.delivery import DeadLetterWriter, Sender
from coelho.dispatch.manifest import KafkaSource
from coelho.dispatch.offsets import PartitionOffsets
from coelho.dispatch.records import Event, Record, to_cloudevent, to_kafka_headers

__all__ = ["KafkaDeadLetter", "SourceDispatcher", "DispatchStats"]

log = logging.getLogger(__name__)

EVENTS = Counter("coelho_dispatch_events_total", "Records handled by the local KafkaSource dispatcher, by outcome.",
                 ["source", "outcome"])
LATENCY = Histogram("coelho_dispatch_latency_seconds", "Record timestamp to sink acknowledgement.", ["source"],
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
IN_FLIGHT = Gauge("coelho_dispatch_in_flight_events", "Records consumed and not finished yet (delivered or "
                  "dead-lettered), refreshed every commit interval.", ["source"])
LAG = Gauge("coelho_dispatch_consumer_lag_records", "Records of a partition not finished yet: its end offset minus the "
            "consumer's position, plus those in flight; refreshed every commit interval.",
            ["source", "topic", "partition"])

PAUSE_ABOVE = 1000
RESUME_BELOW = 200


class KafkaDeadLetter:
    """A KafkaSink: writes events in binary mode to a topic and waits for the broker's ack."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout: float = 30.0) -> None:
        self.topic = topic
        self.timeout = timeout
        self.producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True,
                                  "message.timeout.ms": int(timeout * 1000)})

    def write(self, event: Event, key: bytes | None) -> bool:
        outcome: list[KafkaError | None] = []
        self.producer.produce(self.topic, value=event.data, key=key, headers=to_kafka_headers(event),
                              on_delivery=lambda err, _msg: outcome.append(err))
        self.producer.flush(self.timeout)
        return bool(outcome) and outcome[0] is None


@dataclass
class DispatchStats:
    """Counters for tests, benchmarks and logs."""

    delivered: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)
    keep_latencies: bool = False


class SourceDispatcher:
    """Runs one KafkaSource until `stop` is set."""

    def __init__(self, source: KafkaSource, bootstrap_servers: str, sink_url: str,
                 dead_letter: DeadLetterWriter | None, *, commit_interval: float = 5.0, max_in_flight: int = 50,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.sender = Sender(sink_url, source.delivery, dead_letter, name=source.name)
        self.commit_interval = commit_interval
        self.max_in_flight = max_in_flight
        self.clock = clock
        self.stats = DispatchStats()
        for outcome in ("delivered", "dead-lettered", "dropped"):  # from 0, so that a first dead letter is an increase
            EVENTS.labels(source.name, outcome)
        self.offsets: dict[tuple[str, int], PartitionOffsets] = {}
        self.queues: dict[tuple[str, int], queue.Queue[Message | None]] = {}
        self.workers: dict[tuple[str, int], threading.Thread] = {}
        self.paused: set[tuple[str, int]] = set()
        self.pool = ThreadPoolExecutor(max_in_flight) if source.ordering == "unordered" else None
        self.in_flight = threading.BoundedSemaphore(max_in_flight)
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap_servers,
            "group.id": source.consumer_group,
            "enable.auto.commit": False,
            "auto.offset.reset": source.initial_offset,
            "isolation.level": "read_committed",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 3_000,
            "max.poll.interval.ms": 300_000,
        })

    # main loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Consume and deliver until `stop` is set; then drain in-flight events and commit."""
        self.consumer.subscribe(list(self.source.topics), on_assign=self._assigned, on_revoke=self._revoked)
        last_commit = time.monotonic()
        log.info("%s: consuming %s as group %s (%s)", self.source.name, ",".join(self.source.topics),
                 self.source.consumer_group, self.source.ordering)
        try:
            while not stop.is_set():
                message = self.consumer.poll(0.05)
                if message is not None:
                    self._route(message)
                self._apply_backpressure()
                if time.monotonic() - last_commit >= self.commit_interval:
                    self.commit()
                    self._measure_lag()
                    last_commit = time.monotonic()
        finally:
            self._drain()
            self.commit()
            self.consumer.close()
            self.sender.close()

    def _route(self, message: Message) -> None:
        if message.error():
            if message.error().code() != KafkaError._PARTITION_EOF:
                log.warning("%s: consumer error %s", self.source.name, message.error())
            return
        partition = (message.topic(), message.partition())
        self.offsets.setdefault(partition, PartitionOffsets()).begin(message.offset())
        if self.pool is not None:
            self.in_flight.acquire()
            self.pool.submit(self._handle, message).add_done_callback(lambda _f: self.in_flight.release())
            return
        if partition not in self.workers or not self.workers[partition].is_alive():
            self.queues[partition] = queue.Queue()
            worker = threading.Thread(target=self._partition_loop, args=(self.queues[partition],),
                                      name=f"dispatch-{partition[0]}-{partition[1]}", daemon=True)
            self.workers[partition] = worker
            worker.start()
        self.queues[partition].put(message)

    def _partition_loop(self, inbox: queue.Queue[Message | None]) -> None:
        while (message := inbox.get()) is not None:
            self._handle(message)

    def _handle(self, message: Message) -> None:
        record = Record(message.topic(), message.partition(), message.offset(), message.key(), message.value(),
                        tuple(message.headers() or ()), message.timestamp()[1])
        event = to_cloudevent(record, self.source.source_attribute, self.source.key_type, self.source.ce_overrides)
        outcome = self.sender.deliver(event, record.key)
        EVENTS.labels(self.source.name, outcome).inc()
        if outcome == "delivered":
            self.stats.delivered += 1
            if record.timestamp_ms:
                latency = max(0.0, self.clock() - record.timestamp_ms / 1000)
                LATENCY.labels(self.source.name).observe(latency)
                if self.stats.keep_latencies:
                    self.stats.latencies.append(latency)
        elif outcome == "dead-lettered":
            self.stats.dead_lettered += 1
        else:
            self.stats.dropped += 1
        tracker = self.offsets.get((record.topic, record.partition))
        if tracker is not None:  # None: the partition was revoked meanwhile; its new owner redelivers
            tracker.done(record.offset)

    # offsets and flow control --------------------------------------------------------------
    def commit(self, partitions: list[TopicPartition] | None = None) -> None:
        """Commit the finished prefix of every (or the given) partition."""
        wanted = {(p.topic, p.partition) for p in partitions} if partitions is not None else None
        commits = []
        for (topic, partition), tracker in list(self.offsets.items()):
            offset = tracker.committable()
            if offset is not None and (wanted is None or (topic, partition) in wanted):
                commits.append((tracker, TopicPartition(topic, partition, offset)))
        if not commits:
            return
        try:
            self.consumer.commit(offsets=[tp for _, tp in commits], asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - a failed commit only means more redelivery
            log.warning("%s: commit failed (%s); events may be redelivered", self.source.name, exc)
            return
        for tracker, tp in commits:
            tracker.mark_committed(tp.offset)

    def _measure_lag(self) -> None:
        """Set the lag and in-flight gauges from the consumer's cached end offsets (no broker round trip)."""
        in_flight = 0
        for (topic, partition), tracker in list(self.offsets.items()):
            tp = TopicPartition(topic, partition)
            try:
                _, end = self.consumer.get_watermark_offsets(tp, cached=True)
                position = self.consumer.position([tp])[0].offset
            except Exception as exc:  # noqa: BLE001 - a gauge not refreshed this round is no reason to stop
                log.debug("%s: no offsets for %s/%d: %s", self.source.name, topic, partition, exc)
                continue
            waiting = tracker.in_flight
            in_flight += waiting
            if end >= 0 and position >= 0:
                LAG.labels(self.source.name, topic, str(partition)).set(max(0, end - position) + waiting)
        IN_FLIGHT.labels(self.source.name).set(in_flight)

    def _apply_backpressure(self) -> None:
        for partition, tracker in list(self.offsets.items()):
            waiting = tracker.in_flight
            tp = [TopicPartition(*partition)]
            if waiting > PAUSE_ABOVE and partition not in self.paused:
                self.consumer.pause(tp)
                self.paused.add(partition)
            elif waiting < RESUME_BELOW and partition in self.paused:
                self.consumer.resume(tp)
                self.paused.discard(partition)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("%s: assigned %s", self.source.name, [(p.topic, p.partition) for p in partitions])

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.commit(partitions)
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if key in self.queues:
                _stop(self.queues.pop(key))
            self.offsets.pop(key, None)
            self.workers.pop(key, None)
            self.paused.discard(key)
            with contextlib.suppress(KeyError):  # not measured yet
                LAG.remove(self.source.name, tp.topic, str(tp.partition))

    def _drain(self, timeout: float = 30.0) -> None:
        """Let in-flight deliveries finish; queued, unstarted ones are redelivered after a restart."""
        for inbox in self.queues.values():
            _stop(inbox)
        deadline = time.monotonic() + timeout
        for worker in self.workers.values():
            worker.join(max(0.0, deadline - time.monotonic()))
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _stop(inbox: queue.Queue[Message | None]) -> None:
    """Drop what a partition worker has not started yet and tell it to exit."""
    try:
        while True:
            inbox.get_nowait()
    except queue.Empty:
        inbox.put(None)
