"""The bulk Kafka → Delta consumer on the real broker and real Delta files: every record once, across a
SIGKILL mid-stream, a crash between the quarantine and the table commit, and lost Kafka offset commits."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable

from coelho.core import USE_CASES
from coelho.ingest import kafka_delta
from coelho.ingest.kafka_delta import KafkaDeltaIngest
from coelho.ingest.spark_job import quarantine_name
from support import stream, wait_for
from support.kafka import produce_cloudevents

pytestmark = pytest.mark.slow

TFD = USE_CASES["tfd"]


def keys(uri: str) -> list[tuple[int, int]]:
    """(partition, offset) of every row of the table at `uri` (empty while it does not exist)."""
    try:
        table = DeltaTable(uri).to_pyarrow_table(columns=["kafka_partition", "kafka_offset"])
    except Exception:  # noqa: BLE001 - not created yet
        return []
    return list(zip(table["kafka_partition"].to_pylist(), table["kafka_offset"].to_pylist(), strict=True))


def ce_ids(settings) -> list[str]:
    return DeltaTable(settings.delta_uri("tfd")).to_pyarrow_table(columns=["ce_id"])["ce_id"].to_pylist()


def poison(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value=b"{not json", headers=[("ce_id", b"bad-1"), ("ce_source", b"/test")])
    assert producer.flush(10) == 0


@pytest.fixture
def settings(settings, kafka_broker):
    return dataclasses.replace(settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)


@pytest.fixture
def topic(kafka_broker) -> str:
    name = f"ingest-tfd-{uuid.uuid4().hex[:8]}"
    kafka_broker.ensure_topics([name], partitions=3)
    return name


def drain(settings, topic: str, **options) -> dict[str, int]:
    ingest = KafkaDeltaIngest(TFD, settings, topic, batch_ms=500, **options)
    ingest.run(lambda: False, idle_stop=True)
    return ingest.stats


def test_every_record_once_across_a_sigkill_mid_stream(kafka_broker, topic, settings, tmp_path):
    payloads = stream("tfd", 3000, seed=11)
    bootstrap = kafka_broker.bootstrap_servers
    produce_cloudevents(bootstrap, topic, "tfd", payloads[:600])
    poison(bootstrap, topic)
    env = {**os.environ, "COELHO_DATA_DIR": str(settings.data_dir), "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    env.pop("PYTEST_CURRENT_TEST", None)
    command = [sys.executable, "-m", "coelho.cli", "ingest", "kafka", "--use-case", "tfd", "--topic", f"tfd={topic}",
               "--batch-rows", "200"]
    log = Path(tmp_path, "ingest.log")
    with log.open("ab") as out:
        job = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # two of its 200-record batches committed, the third (and the poison record) perhaps in progress
        wait_for(lambda: len(keys(settings.delta_uri("tfd"))) >= 400, timeout=120, what="rows before the crash")
        job.send_signal(signal.SIGKILL)
        job.wait(30)
    finally:
        if job.poll() is None:
            job.kill()
    assert 400 <= len(keys(settings.delta_uri("tfd"))) <= 600
    produce_cloudevents(bootstrap, topic, "tfd", payloads[600:])  # the stream goes on while the job is down
    with log.open("ab") as out:
        done = subprocess.run([*command, "--once"], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=180,
                              check=False)
    assert done.returncode == 0, log.read_text()[-3000:]
    assert Counter(ce_ids(settings)) == Counter(str(p[TFD.id_field]) for p in payloads)
    rows = keys(settings.delta_uri("tfd"))
    assert len(rows) == len(set(rows)) == 3000
    quarantined = DeltaTable(settings.delta_uri(quarantine_name("tfd"))).to_pyarrow_table()
    assert quarantined["reason"].to_pylist() == ["value is not JSON"]


def test_a_crash_between_the_quarantine_and_the_table_commit_writes_each_record_once(
        kafka_broker, topic, settings, monkeypatch):
    payloads = stream("tfd", 300, seed=12)
    produce_cloudevents(kafka_broker.bootstrap_servers, topic, "tfd", payloads)
    poison(kafka_broker.bootstrap_servers, topic)
    real_append = kafka_delta._Target.append

    def crash_on_the_table(target, *args, **kwargs):  # the quarantine commit lands, the table's does not
        if not target.snapshot.uri.endswith("_quarantine"):
            raise OSError("process died")
        return real_append(target, *args, **kwargs)

    monkeypatch.setattr(kafka_delta._Target, "append", crash_on_the_table)
    with pytest.raises(OSError):
        drain(settings, topic)
    assert len(keys(settings.delta_uri(quarantine_name("tfd")))) == 1
    monkeypatch.undo()
    stats = drain(settings, topic)  # a new process: resumes from the offsets in the table
    assert stats["rows"] == 300 and stats["quarantined"] == 0
    assert sorted(ce_ids(settings)) == sorted(str(p[TFD.id_field]) for p in payloads)
    assert len(keys(settings.delta_uri(quarantine_name("tfd")))) == 1


def test_offsets_come_from_the_table_not_from_the_consumer_group(kafka_broker, topic, settings):
    payloads = stream("tfd", 400, seed=13)
    produce_cloudevents(kafka_broker.bootstrap_servers, topic, "tfd", payloads[:250])
    first = drain(settings, topic, group="first")
    produce_cloudevents(kafka_broker.bootstrap_servers, topic, "tfd", payloads[250:])
    # A group that never committed an offset (as if every Kafka offset commit was lost) starts where the table ends.
    second = drain(dataclasses.replace(settings, ingest_batch_rows=64), topic, group="second")
    assert (first["rows"], second["rows"]) == (250, 150)
    assert second["commits"] >= 150 // 64
    assert sorted(ce_ids(settings)) == sorted(str(p[TFD.id_field]) for p in payloads)
