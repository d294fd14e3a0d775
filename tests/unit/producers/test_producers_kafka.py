"""Kafka delivery without a broker: the binary-mode record, the topics, the metrics, the options."""

from __future__ import annotations

import argparse
import json
import math
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from cloudevents.conversion import to_binary as to_http_binary
from cloudevents.http import CloudEvent
from cloudevents.kafka import KafkaMessage
from cloudevents.kafka import from_binary as sdk_from_binary
from cloudevents.kafka import to_binary as sdk_to_binary

from coelho.producers import (
    TOPICS,
    add_produce_arguments,
    make_generator,
    metrics,
    run_from_args,
    to_cloudevent,
    to_kafka_record,
)
from coelho.producers import run as run_module
from coelho.producers.metrics import FRAUD_RATIO_EVERY, REGISTRY, StreamGauges, serve_metrics

Events = Callable[..., list[dict[str, Any]]]
PARTITION_FIELDS = {"tfd": "user_id", "eta": "driver_id", "ecci": "session_id"}
METRICS = {  # exposed family name → (metric, type, label names), as the original producers had them
    "kafka_producer_messages_sent": (metrics.MESSAGES_SENT, "counter", ("topic", "producer")),
    "kafka_producer_errors": (metrics.ERRORS, "counter", ("topic", "producer", "error_type")),
    "kafka_producer_send_duration_seconds": (metrics.SEND_SECONDS, "histogram", ("topic",)),
    "kafka_producer_message_size_bytes": (metrics.MESSAGE_BYTES, "histogram", ("topic",)),
    "kafka_producer_connected": (metrics.CONNECTED, "gauge", ("producer",)),
    "kafka_producer_connection_retries": (metrics.CONNECTION_RETRIES, "counter", ("producer",)),
    "kafka_producer_last_message_timestamp": (metrics.LAST_MESSAGE, "gauge", ("producer",)),
    "kafka_producer_fraud_ratio": (metrics.FRAUD_RATIO, "gauge", ()),
    "kafka_producer_active_sessions": (metrics.ACTIVE_SESSIONS, "gauge", ()),
    # and, over HTTP (no Kafka), the HTTP sink's own
    "coelho_producer_http_events": (metrics.HTTP_EVENTS, "counter", ("producer", "outcome")),
    "coelho_producer_http_retries": (metrics.HTTP_RETRIES, "counter", ("producer",)),
}


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="coelho produce")
    add_produce_arguments(parser)
    return parser.parse_args(argv)


def test_the_topics_are_the_original_systems() -> None:
    assert TOPICS == {"tfd": "transaction_fraud_detection", "eta": "estimated_time_of_arrival",
                      "ecci": "e_commerce_customer_interactions"}


@pytest.mark.parametrize("key", sorted(PARTITION_FIELDS))
def test_a_record_is_a_binary_cloudevent_keyed_by_the_partition_key(events: Events, key: str) -> None:
    payload = events(key, 1)[0]
    event = to_cloudevent(key, payload)
    record = to_kafka_record(event)
    headers = dict(record.headers)
    assert len(headers) == len(record.headers)
    assert record.key == payload[PARTITION_FIELDS[key]] == event["partitionkey"]
    assert headers == {
        "content-type": b"application/json",
        "ce_specversion": b"1.0",
        "ce_id": event["id"].encode(),
        "ce_source": f"/coelho/producers/{key}".encode(),
        "ce_type": event["type"].encode(),
        "ce_time": payload["timestamp"].encode(),
        "ce_partitionkey": record.key.encode(),
    }
    assert record.value == to_http_binary(event)[1]  # the same bytes as over HTTP
    assert json.loads(record.value) == payload


def test_the_record_adds_ce_partitionkey_to_what_the_sdk_writes(events: Events) -> None:
    event = to_cloudevent("tfd", events("tfd", 1)[0])
    record, sdk = to_kafka_record(event), sdk_to_binary(event)
    assert (record.key, record.value) == (sdk.key, sdk.value)
    assert dict(record.headers) == {**sdk.headers, "ce_partitionkey": record.key.encode()}


def test_the_sdk_reads_the_record_back_into_the_same_event(events: Events) -> None:
    event = to_cloudevent("eta", events("eta", 1)[0])
    record = to_kafka_record(event)
    decoded = sdk_from_binary(KafkaMessage(dict(record.headers), record.key, record.value))
    assert decoded.get_attributes() == event.get_attributes()
    assert decoded.data == event.data
    # SDK 1.12 quirk: from_binary takes the key as it comes, so a consumer's bytes key leaks into partitionkey
    raw = sdk_from_binary(KafkaMessage(dict(record.headers), record.key.encode(), record.value))
    assert raw["partitionkey"] == record.key.encode()


def test_other_extensions_become_ce_headers_and_no_partitionkey_means_no_key() -> None:
    event = CloudEvent({"type": "t", "source": "/s", "id": "1", "traceparent": "00-ab-cd-01"}, {"a": 1})
    record = to_kafka_record(event)
    headers = dict(record.headers)
    assert record.key is None and "ce_partitionkey" not in headers
    assert headers["ce_traceparent"] == b"00-ab-cd-01"
    assert "content-type" not in headers and "ce_datacontenttype" not in headers
    assert record.value == b'{"a": 1}'


def test_the_metrics_have_the_original_names_labels_and_buckets() -> None:
    for metric, _, labels in METRICS.values():
        if labels:
            metric.labels(**dict.fromkeys(labels, "unit-test"))  # raises unless these are its label names
    families = {family.name: family for family in REGISTRY.collect()}
    assert {name: family.type for name, family in families.items()} == {
        name: kind for name, (_, kind, _) in METRICS.items()}
    for name, (low, high) in {"kafka_producer_send_duration_seconds": (0.001, 1.0),
                              "kafka_producer_message_size_bytes": (100, 50000)}.items():
        bounds = [float(sample.labels["le"]) for sample in families[name].samples
                  if sample.name.endswith("_bucket") and sample.labels["topic"] == "unit-test"]
        assert (bounds[0], bounds[-2], bounds[-1]) == (low, high, math.inf)


def test_stream_gauges_track_the_fraud_ratio_and_open_sessions(start: datetime) -> None:
    generator = make_generator("tfd", seed=3, start=start, fraud_rate=0.2)
    gauges = StreamGauges(generator)
    payloads = [next(generator) for _ in range(2 * FRAUD_RATIO_EVERY - 1)]
    for payload in payloads:
        gauges.observe(payload)
    frauds = sum(p["is_fraud"] for p in payloads[:FRAUD_RATIO_EVERY])
    assert frauds > 0
    assert REGISTRY.get_sample_value("kafka_producer_fraud_ratio") == frauds / FRAUD_RATIO_EVERY
    ecci = make_generator("ecci", seed=3, start=start)
    gauges = StreamGauges(ecci)
    for _ in range(50):
        gauges.observe(next(ecci))
    assert REGISTRY.get_sample_value("kafka_producer_active_sessions") == ecci.open_sessions > 0


def test_the_metrics_are_served_over_http_while_the_block_runs() -> None:
    with serve_metrics(0, addr="127.0.0.1") as port:
        assert port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        with pytest.raises(ValueError, match=f"port {port}"), serve_metrics(port, addr="127.0.0.1"):
            pass
    for name, (_, kind, _) in METRICS.items():  # counters are exposed with _total, as the original's
        assert f"# TYPE {name}{'_total' if kind == 'counter' else ''} {kind}\n" in text
    with serve_metrics(None) as nothing:
        assert nothing is None


def test_kafka_options_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(run_module, "produce", lambda key, **options: calls.append(options))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert run_from_args(_parse("tfd", "--kafka", "--count", "1")) == 0
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-a:9092,kafka-b:9092")
    assert run_from_args(_parse("eta", "--kafka", "--topic", "trips")) == 0
    assert run_from_args(_parse("eta", "--kafka", "--bootstrap-servers", "k:1")) == 0
    assert [(c["kafka"], c["topic"]) for c in calls] == [
        ("127.0.0.1:9092", None), ("kafka-a:9092,kafka-b:9092", "trips"), ("k:1", None)]
    assert _parse("tfd", "--kafka").metrics_port is None


@pytest.mark.parametrize("argv", [("tfd", "--kafka", "--sink", "http://x"), ("tfd", "--kafka", "--out", "-")])
def test_kafka_excludes_the_other_destinations(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        _parse(*argv)


@pytest.mark.parametrize("argv", [
    ("tfd", "--count", "1", "--out", "-", "--topic", "x"),
    ("tfd", "--count", "1", "--out", "-", "--bootstrap-servers", "k:1"),
    ("tfd", "--count", "1", "--out", "-", "--metrics-port", "70000"),
])
def test_kafka_settings_without_kafka_exit_with_two(argv: tuple[str, ...]) -> None:
    assert run_from_args(_parse(*argv)) == 2
