"""The Spark job on a real local Spark and the real broker: one row per event across restarts and a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from confluent_kafka import Producer
from deltalake import DeltaTable

from coelho.core import USE_CASES
from coelho.producers.kafka_sink import TOPICS
from support import ROOT, stream, wait_for
from support.kafka import produce_cloudevents
from support.servers import free_port

pytestmark = pytest.mark.slow

KEYS = ("tfd", "eta", "ecci")
ID_FIELDS = {key: USE_CASES[key].id_field for key in KEYS}


def rows(data_dir: Path, key: str) -> list[str]:
    """The ce_id of every row of a use case's table (empty while the table does not exist)."""
    try:
        return DeltaTable(str(data_dir / "delta" / key)).to_pyarrow_table(columns=["ce_id"])["ce_id"].to_pylist()
    except Exception:  # noqa: BLE001 - not created yet
        return []


def start_job(env: dict[str, str], topics: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "coelho.cli", "ingest", "spark", "--trigger", "1s", *extra]
    command += [arg for key, topic in topics.items() for arg in ("--topic", f"{key}={topic}")]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.timeout(600)  # three JVM starts and four Spark jobs: over 300 s when two shared cores are busy
def test_one_row_per_event_across_restart_and_crash(kafka_broker, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    topics = {key: f"{TOPICS[key]}-{suffix}" for key in KEYS}
    kafka_broker.ensure_topics(list(topics.values()), partitions=3)
    events = {key: stream(key, 45, seed=7) for key in KEYS}
    env = {**os.environ, "COELHO_DATA_DIR": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
    env.pop("PYTEST_CURRENT_TEST", None)
    log = tmp_path / "spark.log"

    def produce(part: slice) -> None:
        for key in KEYS:
            produce_cloudevents(kafka_broker.bootstrap_servers, topics[key], key, events[key][part])

    produce(slice(0, 15))
    metrics_port = free_port()
    job = start_job(env, topics, log, "--metrics-port", str(metrics_port))
    try:
        wait_for(lambda: all(len(rows(tmp_path, key)) == 15 for key in KEYS), timeout=180, what="first 15 rows")

        def exported() -> str:  # counted right after each batch's commits
            return requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text

        wait_for(lambda: all(f'coelho_spark_rows_total{{use_case="{key}"}} 15.0' in exported() for key in KEYS),
                 timeout=60, what="the job's row counters")
        listed = yaml.safe_load((ROOT / "infra" / "observability" / "external-metrics.yaml").read_text())
        for name in listed["spark-job"]["metrics"]:  # the names the dashboards and rules rely on
            assert f"\n{name}{{" in exported(), name
        job.send_signal(signal.SIGTERM)  # a clean stop
        assert job.wait(60) == 0, log.read_text()[-3000:]

        produce(slice(15, 30))
        poison = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
        poison.produce(topics["tfd"], value=b"{not json", headers=[("ce_id", b"bad-1"), ("ce_source", b"/test")])
        assert poison.flush(10) == 0
        job = start_job(env, topics, log)
        wait_for(lambda: len(rows(tmp_path, "tfd")) > 15, timeout=180, what="rows after the restart")
        os.killpg(job.pid, signal.SIGKILL)  # a crash: the driver and its JVM die mid-stream
        job.wait(30)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)

    produce(slice(30, 45))
    done = start_job(env, topics, log, "--once")  # drains what is left, then stops
    try:
        assert done.wait(400) == 0, log.read_text()[-3000:]
    finally:
        if done.poll() is None:
            os.killpg(done.pid, signal.SIGKILL)
            done.wait(30)
    for key in KEYS:
        ids = rows(tmp_path, key)
        assert len(ids) == len(set(ids)) == 45, key
        assert set(ids) == {str(event[ID_FIELDS[key]]) for event in events[key]}
    table = DeltaTable(str(tmp_path / "delta" / "tfd")).to_pyarrow_table()
    assert table.column("kafka_offset").null_count == 0 and table.column("event_time").null_count == 0
    quarantined = DeltaTable(str(tmp_path / "delta" / "tfd_quarantine")).to_pyarrow_table().to_pylist()
    reason = "value is not a JSON object of the schema's types"
    assert [(q["value"], q["reason"]) for q in quarantined] == [("{not json", reason)]
