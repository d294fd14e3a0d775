"""`coelho produce --kafka` against a real Kafka 4.x broker: binary CloudEvents, keys, partitions, metrics, failures."""

from __future__ import annotations

import argparse
import functools
import json
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cloudevents.kafka import KafkaMessage, from_binary
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from coelho.adapters.kafka_broker import KafkaBroker
from coelho.producers import TOPICS, DeliveryError, KafkaSink, make_generator, produce, run_from_args, to_cloudevent
from coelho.producers import run as run_module
from coelho.producers.metrics import REGISTRY
from coelho.producers.run import add_produce_arguments

START = datetime(2026, 3, 2, 8, tzinfo=UTC)


@pytest.fixture(scope="session")
def broker(kafka_broker: KafkaBroker) -> KafkaBroker:
    """The session's broker (tests/conftest.py) with the three use-case topics, 3 partitions each."""
    kafka_broker.ensure_topics(TOPICS.values(), partitions=3)
    return kafka_broker


@contextmanager
def _new_records(bootstrap: str, topic: str) -> Iterator[Callable[[int], list[Message]]]:
    """`read(count)`: the `count` records written to `topic` after entering, checking that no more follow."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, _end(consumer, TopicPartition(topic, p)))
                     for p in partitions])  # from the current ends, with no group rebalance to wait for

    def read(count: int) -> list[Message]:
        records: list[Message] = []
        deadline = time.monotonic() + 30
        while len(records) < count:
            assert time.monotonic() < deadline, f"got {len(records)} of {count} records"
            records += consumer.consume(num_messages=count - len(records), timeout=0.5)
        assert consumer.consume(num_messages=1, timeout=1.0) == []
        assert [r.error() for r in records if r.error() is not None] == []
        return records

    try:
        yield read
    finally:
        consumer.close()


def _end(consumer: Consumer, partition: TopicPartition) -> int:
    """The partition's end offset, retried while a just-created topic's leader warms up."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=5)[1]
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="coelho produce")
    add_produce_arguments(parser)
    return parser.parse_args(argv)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_tfd_events_land_as_binary_cloudevents_keyed_by_user(broker: KafkaBroker) -> None:
    topic, count = TOPICS["tfd"], 500
    counters = {"sent": ("kafka_producer_messages_sent_total", {"topic": topic, "producer": "tfd"}),
                "acks": ("kafka_producer_send_duration_seconds_count", {"topic": topic}),
                "sizes": ("kafka_producer_message_size_bytes_count", {"topic": topic}),
                "bytes": ("kafka_producer_message_size_bytes_sum", {"topic": topic})}
    before = {key: _metric(name, **labels) for key, (name, labels) in counters.items()}
    began = time.time()
    with _new_records(broker.bootstrap_servers, topic) as read:
        report = produce("tfd", rate=0, count=count, seed=11, start=START, kafka=broker.bootstrap_servers)
        records = read(count)
    assert (report.produced, report.delivery.sent, report.delivery.delivered, report.delivery.failed) == (
        count, count, count, 0)

    generator = make_generator("tfd", seed=11, start=START)
    payloads = [next(generator) for _ in range(count)]
    expected = {payload["transaction_id"]: to_cloudevent("tfd", payload) for payload in payloads}
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for record in records:
        headers = {name: value.decode() for name, value in record.headers()}
        event = expected[headers["ce_id"]]
        key = record.key().decode()
        assert key == event["partitionkey"] == event.data["user_id"]
        assert headers == {"content-type": "application/json",
                           **{f"ce_{name}": value for name, value in event.get_attributes().items()
                              if name != "datacontenttype"}}
        assert set(headers) >= {"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_partitionkey"}
        assert record.value() == json.dumps(event.data).encode()
        decoded = from_binary(KafkaMessage(dict(record.headers()), key, record.value()))
        assert (decoded.get_attributes(), decoded.data) == (event.get_attributes(), event.data)
        partitions_of[key].add(record.partition())
    assert {p for partitions in partitions_of.values() for p in partitions} == {0, 1, 2}
    assert all(len(partitions) == 1 for partitions in partitions_of.values())
    order = [p["transaction_id"] for p in payloads]
    by_user: dict[str, list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition(), r.offset())):
        by_user[record.key().decode()].append(dict(record.headers())["ce_id"].decode())
    assert max(len(ids) for ids in by_user.values()) > 1  # some users repeat, so the order check means something
    assert all(ids == sorted(ids, key=order.index) for ids in by_user.values())

    after = {key: _metric(name, **labels) for key, (name, labels) in counters.items()}
    assert {key: after[key] - before[key] for key in ("sent", "acks", "sizes")} == dict.fromkeys(
        ("sent", "acks", "sizes"), count)
    assert after["bytes"] - before["bytes"] == sum(len(r.value()) for r in records)
    assert began <= _metric("kafka_producer_last_message_timestamp", producer="tfd") <= time.time()
    assert _metric("kafka_producer_fraud_ratio") == sum(p["is_fraud"] for p in payloads) / count
    assert _metric("kafka_producer_connected", producer="tfd") == 0  # closed after the run
    assert _metric("kafka_producer_errors_total", topic=topic, producer="tfd", error_type="msg_timed_out") == 0


def test_send_duration_is_measured_to_the_ack_not_to_the_next_send(broker: KafkaBroker) -> None:
    topic = f"paced-{uuid.uuid4().hex[:8]}"
    broker.ensure_topics([topic], partitions=3)
    generator = make_generator("eta", seed=3, start=START)
    with KafkaSink(broker.bootstrap_servers, topic, producer="eta") as sink:
        sink.send(to_cloudevent("eta", next(generator)))  # the first one also waits for the producer id
        sink.flush()
        before = [_metric(f"kafka_producer_send_duration_seconds_{part}", topic=topic) for part in ("count", "sum")]
        for _ in range(5):
            sink.send(to_cloudevent("eta", next(generator)))
            time.sleep(0.3)
    count, total = (_metric(f"kafka_producer_send_duration_seconds_{part}", topic=topic) - earlier
                    for part, earlier in zip(("count", "sum"), before, strict=True))
    assert count == 5 and total / count < 0.1


def test_the_command_line_reads_the_brokers_from_the_environment(
    broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = f"trips-{uuid.uuid4().hex[:8]}"
    broker.ensure_topics([topic], partitions=3)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    args = _parse("eta", "--kafka", "--topic", topic, "--count", "40", "--rate", "0", "--metrics-port", "0")
    with _new_records(broker.bootstrap_servers, topic) as read:
        assert run_from_args(args) == 0
        records = read(40)
    assert all(r.key().decode() == json.loads(r.value())["driver_id"] for r in records)
    assert _metric("kafka_producer_messages_sent_total", topic=topic, producer="eta") == 40


def test_an_unreachable_broker_raises_delivery_error_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    servers = f"127.0.0.1:{_closed_port()}"
    retries = _metric("kafka_producer_connection_retries_total", producer="tfd")
    began = time.monotonic()
    with pytest.raises(DeliveryError, match=r"not ready within 1\.0 s"):
        KafkaSink(servers, TOPICS["tfd"], message_timeout=1.0)
    assert time.monotonic() - began < 3.0
    assert _metric("kafka_producer_connection_retries_total", producer="tfd") > retries
    assert _metric("kafka_producer_connected", producer="tfd") == 0
    monkeypatch.setattr(run_module, "KafkaSink", functools.partial(KafkaSink, message_timeout=1.0))
    assert run_from_args(_parse("tfd", "--kafka", "--bootstrap-servers", servers, "--count", "1")) == 1


def test_a_record_the_broker_refuses_fails_the_sink(broker: KafkaBroker) -> None:
    topic = f"tiny-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "200"})]).values():
        future.result(30)
    broker.ensure_topics([topic], partitions=1)
    event = to_cloudevent("ecci", next(make_generator("ecci", seed=1, start=START)))
    with pytest.raises(DeliveryError, match="too large"), KafkaSink(broker.bootstrap_servers, topic) as sink:
        assert sink.send(event) is True
        with pytest.raises(DeliveryError, match=f"event {event['id']} not delivered"):
            sink.flush()
        with pytest.raises(DeliveryError):  # the failure sticks: later events would be out of order
            sink.send(event)
    assert (sink.stats.sent, sink.stats.delivered, sink.stats.failed) == (1, 0, 1)
    assert _metric("kafka_producer_errors_total", topic=topic, producer=topic, error_type="msg_size_too_large") == 1


@pytest.mark.slow
def test_losing_the_broker_mid_run_raises_within_the_message_timeout(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        broker.ensure_topics([TOPICS["eta"]], partitions=3)
        generator = make_generator("eta", seed=2, start=START)
        events = [to_cloudevent("eta", next(generator)) for _ in range(11)]
        sink = KafkaSink(broker.bootstrap_servers, TOPICS["eta"], message_timeout=2.0)
        for event in events[:10]:
            sink.send(event)
        sink.flush()
        assert sink.stats.delivered == 10
        broker.stop()
        timed_out = _metric("kafka_producer_errors_total", topic=TOPICS["eta"], producer="eta",
                            error_type="msg_timed_out")
        sink.send(events[10])
        began = time.monotonic()
        with pytest.raises(DeliveryError, match=f"event {events[10]['id']} not delivered"):
            sink.flush()
        assert time.monotonic() - began < 2.0 + 1.0
        assert _metric("kafka_producer_errors_total", topic=TOPICS["eta"], producer="eta",
                       error_type="msg_timed_out") == timed_out + 1
        assert _metric("kafka_producer_connected", producer="eta") == 0
        with pytest.raises(DeliveryError):
            sink.close()
    finally:
        broker.stop()
