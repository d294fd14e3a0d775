"""A real Kafka 4.x KRaft broker (jars from Maven Central): produce, consume, topics, restart, crash, stop.

The session-scoped `kafka_broker` fixture lives in tests/conftest.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient

from coelho.adapters.kafka_broker import TOPIC_PARTITIONS, KafkaBroker, KafkaBrokerError, fetch_libs


def _topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _produce(bootstrap: str, topic: str, count: int, start: int = 0) -> None:
    """Send `count` keyed records with acks=all and check every delivery report."""
    reports: list[tuple[KafkaError | None, Message]] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(start, start + count):
        producer.produce(topic, key=f"k{i}", value=f"v{i}", on_delivery=lambda err, msg: reports.append((err, msg)))
    assert producer.flush(30) == 0
    producer.close()
    assert len(reports) == count
    assert [err for err, _ in reports if err is not None] == []
    assert all(msg.offset() >= 0 for _, msg in reports)


def _consume(bootstrap: str, topic: str, group: str, count: int, timeout: float = 30) -> list[str]:
    """Read exactly `count` records from the earliest uncommitted offsets, commit them, close the consumer."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    values: list[str] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(values) < count:
            assert time.monotonic() < deadline, f"got {len(values)} of {count} records"
            for msg in consumer.consume(num_messages=count - len(values), timeout=0.5):
                assert msg.error() is None, msg.error()
                values.append(msg.value().decode())
        if values:
            consumer.commit(asynchronous=False)
        assert consumer.consume(num_messages=1, timeout=1.0) == []  # nothing more than expected
    finally:
        consumer.close()
    return values


def _partitions(bootstrap: str, topic: str) -> int:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return len(metadata.topics[topic].partitions)


def _gone(pid: int) -> bool:
    """No such process, or only a zombie left for init to reap (a CLI-started broker is not our child)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status and "Threads:\t1\n" in status


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_produce_and_consume(kafka_broker: KafkaBroker) -> None:
    topic = _topic()
    kafka_broker.ensure_topics([topic])
    _produce(kafka_broker.bootstrap_servers, topic, 20)
    values = _consume(kafka_broker.bootstrap_servers, topic, "g-produce", 20)
    assert sorted(values) == sorted(f"v{i}" for i in range(20))


def test_ensure_topics_is_idempotent_with_the_platform_partition_count(kafka_broker: KafkaBroker) -> None:
    topics = [_topic(), _topic()]
    kafka_broker.ensure_topics(topics)
    kafka_broker.ensure_topics(topics)
    kafka_broker.ensure_topics(topics, partitions=2)
    assert TOPIC_PARTITIONS >= 3
    assert [_partitions(kafka_broker.bootstrap_servers, t) for t in topics] == [TOPIC_PARTITIONS] * 2
    with pytest.raises(KafkaBrokerError, match=f"fewer than {TOPIC_PARTITIONS + 2}"):
        kafka_broker.ensure_topics(topics[:1], partitions=TOPIC_PARTITIONS + 2)


def test_auto_create_is_off(kafka_broker: KafkaBroker) -> None:
    missing = _topic()
    consumer_metadata = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers}).list_topics(timeout=10)
    assert missing not in consumer_metadata.topics
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "message.timeout.ms": 2000})
    errors: list[KafkaError] = []
    producer.produce(missing, value=b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    producer.close()
    assert errors and errors[0] is not None


def test_second_fetch_needs_no_maven(kafka_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = kafka_broker.fetch()
    monkeypatch.setenv("PATH", "/nonexistent")  # neither mvn nor the network is needed once the marker is there
    assert fetch_libs() == libs
    assert (libs / ".complete").is_file() and any(libs.glob("kafka_2.13-*.jar"))


def test_start_on_a_taken_port_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = KafkaBroker(tmp_path / "broker", port=squatter.getsockname()[1])
        with pytest.raises(KafkaBrokerError, match="already in use"):
            broker.start()
    assert broker.running_pid() is None


def test_a_broker_that_dies_at_start_reports_its_error(tmp_path: Path) -> None:
    """Data formatted for another node id: the JVM exits and the exception quotes the broker's own error."""
    data = tmp_path / "broker" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text(
        "version=1\nnode.id=7\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\ndirectory.id=BBBBBBBBBBBBBBBBBBBBBB\n")
    broker = KafkaBroker(tmp_path / "broker")
    with pytest.raises(KafkaBrokerError, match="(?s)exited with code 1.*Stored node id 7 doesn't match"):
        broker.start()
    assert broker.running_pid() is None and not broker.pid_file.exists()


@pytest.mark.slow
def test_restart_keeps_data_and_committed_offsets(tmp_path: Path) -> None:
    """On a broker of its own, so that the session broker other modules use is never restarted under them."""
    broker = KafkaBroker(tmp_path / "broker")
    broker.start()
    try:
        topic, group = _topic(), "g-restart"
        broker.ensure_topics([topic])
        _produce(broker.bootstrap_servers, topic, 12)
        first = _consume(broker.bootstrap_servers, topic, group, 12)
        _produce(broker.bootstrap_servers, topic, 6, start=12)
        pid_before, bootstrap = broker.running_pid(), broker.bootstrap_servers

        broker.restart()

        assert broker.running_pid() not in (None, pid_before) and broker.bootstrap_servers == bootstrap
        rest = _consume(bootstrap, topic, group, 6)  # resumes after the committed offsets
        assert sorted(first) == sorted(f"v{i}" for i in range(12))
        assert sorted(rest) == sorted(f"v{i}" for i in range(12, 18))
        everything = _consume(bootstrap, topic, "g-restart-fresh", 18)
        assert sorted(everything) == sorted(f"v{i}" for i in range(18))
    finally:
        broker.stop()
    assert broker.running_pid() is None and not _port_open(broker.port)


@pytest.mark.slow
def test_cli_start_kill_start_stop_leaves_nothing(tmp_path: Path) -> None:
    """CLI start, a SIGKILL crash keeps acknowledged data, CLI stop leaves no process and a closed port."""
    workdir = tmp_path / "broker"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "coelho.adapters.kafka_broker", *args, "--workdir", str(workdir)],
                              capture_output=True, text=True, env=env, timeout=120, check=False)

    started = cli("start")
    assert started.returncode == 0, started.stderr
    broker = KafkaBroker(workdir)
    try:
        assert started.stdout.strip() == broker.bootstrap_servers
        assert cli("status").returncode == 0
        assert cli("start").stdout.strip() == broker.bootstrap_servers  # already running: same broker
        topic = _topic()
        broker.ensure_topics([topic])
        _produce(broker.bootstrap_servers, topic, 10)

        crashed = broker.running_pid()
        assert crashed is not None
        broker.kill()
        assert _gone(crashed)
        assert not _port_open(broker.port)
        assert cli("status").returncode == 3

        broker.start()
        values = _consume(broker.bootstrap_servers, topic, "g-crash", 10)
        assert sorted(values) == sorted(f"v{i}" for i in range(10))
    finally:
        pid = broker.running_pid()
        stopped = cli("stop")
        broker.stop()  # reaps our own child (the CLI already stopped it) or stops it if the CLI failed
    assert stopped.returncode == 0, stopped.stderr
    assert pid is not None and _gone(pid)
    assert not _port_open(broker.port) and not _port_open(broker.controller_port)
    assert not broker.pid_file.exists()
    assert cli("status").returncode == 3
