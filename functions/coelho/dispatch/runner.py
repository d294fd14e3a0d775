"""`coelho dispatch` and `coelho dlq`: run the manifests' KafkaSources locally, inspect and re-drive dead letters."""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from confluent_kafka import Consumer, Producer, TopicPartition

from coelho.dispatch.delivery import DeadLetterWriter
from coelho.dispatch.dispatcher import KafkaDeadLetter, SourceDispatcher
from coelho.dispatch.manifest import Destination, KafkaSink, KafkaSource, ManifestError, load_manifests
from coelho.dispatch.records import Event, Record, from_kafka_headers, to_cloudevent, to_kafka_headers

__all__ = ["DeadLetter", "Dispatch", "find_source", "list_dead_letters", "replay_dead_letters"]

log = logging.getLogger(__name__)

ERROR_EXTENSIONS = ("knativeerrorcode", "knativeerrordest", "knativeerrordata")


class HttpDeadLetter:
    """A dead-letter sink given as a URI: the failed event is POSTed there in binary mode."""

    def __init__(self, url: str) -> None:
        self.url = url

    def write(self, event: Event, key: bytes | None) -> bool:
        try:
            return requests.post(self.url, headers=event.http_headers(), data=event.data or b"", timeout=30).ok
        except requests.RequestException:
            return False


@dataclass
class Dispatch:
    """Every KafkaSource of a manifest folder, wired to local URLs and a local broker."""

    sources: list[KafkaSource]
    kafka_sinks: Mapping[str, KafkaSink]
    sink_urls: Mapping[str, str]
    bootstrap_servers: str
    commit_interval: float = 5.0

    @classmethod
    def from_folder(cls, folder: Path, sink_urls: Mapping[str, str], bootstrap_servers: str,
                    only: list[str] | None = None, commit_interval: float = 5.0) -> Dispatch:
        """Load and check the manifests; every sink must resolve to a URL or a KafkaSink."""
        sources, kafka_sinks = load_manifests(folder)
        if only:
            unknown = set(only) - {s.name for s in sources}
            if unknown:
                raise ManifestError(f"no KafkaSource named {sorted(unknown)} in {folder}")
            sources = [s for s in sources if s.name in only]
        dispatch = cls(sources, kafka_sinks, sink_urls, bootstrap_servers, commit_interval)
        for source in sources:
            dispatch.sink_url(source.sink)
        return dispatch

    def sink_url(self, destination: Destination) -> str:
        """The local URL of a Destination (`uri`, or a `ref` resolved with --sink NAME=URL)."""
        if destination.name is not None and destination.name in self.sink_urls:
            return self.sink_urls[destination.name]
        if destination.uri:
            return destination.uri
        raise ManifestError(
            f"no local URL for {destination.kind} {destination.name!r}: pass --sink {destination.name}=URL"
        )

    def dead_letter(self, source: KafkaSource) -> DeadLetterWriter | None:
        """The writer for `source`'s dead-letter sink (KafkaSink → its topic on the local broker)."""
        dls = source.delivery.dead_letter_sink
        if dls is None:
            return None
        if dls.kind == "KafkaSink":
            if dls.name not in self.kafka_sinks:
                raise ManifestError(f"{source.name}: dead-letter KafkaSink {dls.name!r} has no manifest")
            return KafkaDeadLetter(self.bootstrap_servers, self.kafka_sinks[dls.name].topic)
        return HttpDeadLetter(self.sink_url(dls))

    def dispatchers(self) -> list[SourceDispatcher]:
        """One dispatcher per KafkaSource."""
        return [
            SourceDispatcher(source, self.bootstrap_servers, self.sink_url(source.sink), self.dead_letter(source),
                             commit_interval=self.commit_interval)
            for source in self.sources
        ]

    def run(self, stop: threading.Event) -> None:
        """Run every source in its own thread until `stop` is set."""
        threads = [threading.Thread(target=d.run, args=(stop,), name=f"source-{d.source.name}")
                   for d in self.dispatchers()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def find_source(folder: Path, name_or_key: str) -> tuple[KafkaSource, KafkaSink]:
    """The KafkaSource called `name_or_key` (or `<key>-events`) and its dead-letter KafkaSink."""
    sources, sinks = load_manifests(folder)
    for source in sources:
        if name_or_key in (source.name, f"{source.name.removesuffix('-events')}"):
            dls = source.delivery.dead_letter_sink
            if dls is None or dls.kind != "KafkaSink" or dls.name not in sinks:
                raise ManifestError(f"{source.name} has no dead-letter KafkaSink")
            return source, sinks[dls.name]
    raise ManifestError(f"no KafkaSource {name_or_key!r} in {folder}")


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered event, with why it failed."""

    partition: int
    offset: int
    attributes: dict[str, str]
    data: bytes | None

    @property
    def reason(self) -> str:
        raw = self.attributes.get("knativeerrordata", "")
        try:
            return base64.b64decode(raw).decode(errors="replace")
        except ValueError:
            return raw

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly view for `coelho dlq list`."""
        return {
            "partition": self.partition, "offset": self.offset, "id": self.attributes.get("id"),
            "type": self.attributes.get("type"), "code": self.attributes.get("knativeerrorcode"),
            "dest": self.attributes.get("knativeerrordest"), "reason": self.reason,
        }


def list_dead_letters(bootstrap_servers: str, topic: str, limit: int = 100, timeout: float = 5.0) -> list[DeadLetter]:
    """Read up to `limit` dead letters from the start of `topic` without committing anything."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"coelho-dlq-peek-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        ends = _end_offsets(consumer, topic, timeout)
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        letters: list[DeadLetter] = []
        remaining = {p for p, end in ends.items() if end > 0}
        while remaining and len(letters) < limit:
            message = consumer.poll(timeout)
            if message is None:
                break
            if message.error():
                continue
            letters.append(DeadLetter(message.partition(), message.offset(),
                                      from_kafka_headers(tuple(message.headers() or ())), message.value()))
            if message.offset() + 1 >= ends[message.partition()]:
                remaining.discard(message.partition())
        return sorted(letters, key=lambda d: (d.partition, d.offset))
    finally:
        consumer.close()


def replay_dead_letters(bootstrap_servers: str, source: KafkaSource, dead_letter_topic: str,
                        timeout: float = 5.0) -> int:
    """Re-produce the dead letters not replayed yet to the source's first topic, without error extensions.

    The consumer group `<consumerGroup>-dlq-replay` remembers what was replayed. Only letters present
    when the replay starts are taken, so an event that fails again is not replayed in a loop; events
    keep their `source` and `id`, so one the learner had already applied stays a no-op.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"{source.consumer_group}-dlq-replay",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    replayed = 0
    try:
        ends = _end_offsets(consumer, dead_letter_topic, timeout)
        starts = consumer.committed([TopicPartition(dead_letter_topic, p) for p in ends], timeout=timeout)
        todo = {tp.partition: max(tp.offset, 0) for tp in starts if max(tp.offset, 0) < ends[tp.partition]}
        consumer.assign([TopicPartition(dead_letter_topic, p, offset) for p, offset in todo.items()])
        while todo:
            message = consumer.poll(timeout)
            if message is None:
                raise RuntimeError(f"{dead_letter_topic}: no message within {timeout}s; replayed {replayed}")
            if message.error():
                continue
            record = Record(message.topic(), message.partition(), message.offset(), message.key(), message.value(),
                            tuple(message.headers() or ()), message.timestamp()[1])
            event = to_cloudevent(record, source.source_attribute)
            clean = Event({k: v for k, v in event.attributes.items() if k not in ERROR_EXTENSIONS}, event.data,
                          event.content_type)
            producer.produce(source.topics[0], value=clean.data, key=record.key, headers=to_kafka_headers(clean))
            if producer.flush(30) != 0:
                raise RuntimeError("the broker did not acknowledge a replayed event; nothing committed")
            consumer.commit(message=message, asynchronous=False)
            replayed += 1
            if message.offset() + 1 >= ends[message.partition()]:
                todo.pop(message.partition(), None)
    finally:
        consumer.close()
    return replayed


def _end_offsets(consumer: Consumer, topic: str, timeout: float) -> dict[int, int]:
    """High watermark of every partition of `topic` (empty when the topic does not exist)."""
    metadata = consumer.list_topics(topic, timeout=timeout)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        return {}
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in metadata.topics[topic].partitions}
