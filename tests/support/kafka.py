"""Kafka helpers for the tests: isolated copies of the manifests and a record producer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Producer

from coelho.dispatch.manifest import isolated_copy
from coelho.producers.cloudevent import to_cloudevent
from coelho.producers.kafka_sink import to_kafka_record
from support import ROOT

MANIFESTS = ROOT / "eventing" / "knative"


def isolated_manifests(folder: Path, key: str) -> tuple[Path, str, str]:
    """The repo's manifests for `key`, copied under unique topic and group names."""
    return isolated_copy(MANIFESTS, folder, key)


def produce_cloudevents(bootstrap: str, topic: str, key: str, payloads: Iterable[dict[str, Any]]) -> int:
    """Write payloads as binary-mode CloudEvents keyed by their partition key; returns the count."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    count = 0
    for payload in payloads:
        record = to_kafka_record(to_cloudevent(key, payload))
        producer.produce(topic, value=record.value, key=record.key, headers=record.headers)
        producer.poll(0)
        count += 1
    assert producer.flush(30) == 0
    return count


def accepted_ids(client: redis.Redis, prefix: str, key: str, id_field: str) -> list[str]:
    """Ids of the events in the learner's WAL, in acceptance order."""
    return [json.loads(fields[b"e"])[id_field] for _, fields in client.xrange(f"{prefix}:{key}:wal")]


def accepted_payloads(client: redis.Redis, prefix: str, key: str) -> list[dict[str, Any]]:
    """The learner's WAL payloads, in acceptance order."""
    return [json.loads(fields[b"e"]) for _, fields in client.xrange(f"{prefix}:{key}:wal")]
