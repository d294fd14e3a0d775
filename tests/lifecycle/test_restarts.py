"""Valkey and MLflow restarted under load, through the Kafka path (producer → broker → dispatcher → learner)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from coelho.adapters.mlflow_server import MlflowServer
from coelho.dispatch.runner import Dispatch, list_dead_letters
from support import reference, stream, wait_for
from support.kafka import accepted_ids, accepted_payloads, isolated_manifests, produce_cloudevents
from support.servers import FunctionServer, free_port

pytestmark = pytest.mark.slow

EVENTS = 1_200


@pytest.fixture
def kafka_to(kafka_broker, tmp_path: Path) -> Iterator[Callable[[FunctionServer], tuple[str, str]]]:
    """`kafka_to(learner)`: tfd's KafkaSource (isolated topics) dispatched to `learner`; (topic, dead-letter topic)."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(learner: FunctionServer) -> tuple[str, str]:
        folder, topic, dead_letter_topic = isolated_manifests(tmp_path / "manifests", "tfd")
        kafka_broker.ensure_topics([topic, dead_letter_topic], partitions=3)
        dispatch = Dispatch.from_folder(folder, {"tfd-learn": learner.url + "/"}, kafka_broker.bootstrap_servers,
                                        commit_interval=1.0)
        thread = threading.Thread(target=dispatch.run, args=(stop,))
        thread.start()
        threads.append(thread)
        return topic, dead_letter_topic

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=60)


def status(learner: FunctionServer) -> dict:
    try:
        return requests.get(learner.url + "/status", timeout=10).json()
    except requests.RequestException:
        return {}


def produce_steadily(bootstrap: str, topic: str, events: list[dict], chunks: int = 12) -> threading.Thread:
    """Produce `events` in chunks a fraction of a second apart, in the background."""
    size = len(events) // chunks

    def run() -> None:
        for start in range(0, len(events), size):
            produce_cloudevents(bootstrap, topic, "tfd", events[start:start + size])
            time.sleep(0.3)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_valkey_killed_mid_stream_loses_nothing_once_it_is_back(kafka_broker, kafka_to, valkey, valkey_env, serve,
                                                                   settings):
    learner = serve("tfd-learn", valkey_env)
    topic, dead_letter_topic = kafka_to(learner)
    events = stream("tfd", EVENTS, seed=51)
    producer = produce_steadily(kafka_broker.bootstrap_servers, topic, events)
    wait_for(lambda: status(learner).get("events_applied", 0) >= EVENTS // 3, what="a third of the stream")

    valkey.kill()  # mid-stream: the learner answers 503, the dispatcher retries with back-off
    wait_for(lambda: status(learner).get("redis", {}).get("ok") is False, what="the outage seen by the learner")
    valkey.restart()

    producer.join()
    wait_for(lambda: status(learner).get("events_applied") == EVENTS, what="every event applied")
    ids = accepted_ids(valkey.client(), settings.key_prefix, "tfd", "transaction_id")
    assert sorted(ids) == sorted(e["transaction_id"] for e in events)  # each exactly once
    assert list_dead_letters(kafka_broker.bootstrap_servers, dead_letter_topic) == []
    expected = reference("tfd", accepted_payloads(valkey.client(), settings.key_prefix, "tfd"))
    assert status(learner)["metrics"] == expected.metrics.report()


def test_mlflow_restarted_mid_stream_catches_up_without_a_duplicate_run_or_version(kafka_broker, kafka_to, env, serve,
                                                                                   tmp_path):
    from mlflow import MlflowClient

    server = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", free_port(),
                          log_path=tmp_path / "mlflow-server.log").start()
    learner = serve("tfd-learn", env, COELHO_MLFLOW="on", MLFLOW_TRACKING_URI=server.url, COELHO_CHECKPOINT_EVERY="100",
                    COELHO_REGISTER_EVERY="1", COELHO_MLFLOW_LOG_EVERY="100")
    topic, _ = kafka_to(learner)
    events = stream("tfd", EVENTS, seed=52)
    producer = produce_steadily(kafka_broker.bootstrap_servers, topic, events)
    try:
        wait_for(lambda: status(learner).get("events_applied", 0) >= EVENTS // 3, what="a third of the stream")
        server.stop()  # mid-stream: the outbox keeps the runs, versions and metrics, and retries
        wait_for(lambda: status(learner).get("mlflow", {}).get("ok") is False, what="the outage seen by the learner")
        server.start()  # the same port and store
        producer.join()
        wait_for(lambda: status(learner).get("events_applied") == EVENTS, what="every event applied")
        wait_for(lambda: (s := status(learner).get("mlflow", {})).get("ok") and s.get("pending") == 0,
                 what="the outbox delivered")
        run_id = status(learner)["mlflow"]["run_id"]
        assert learner.terminate() == 0

        client = MlflowClient(server.url)
        [run] = client.search_runs([client.get_experiment_by_name("Transaction Fraud Detection").experiment_id])
        assert run.info.run_id == run_id and run.info.status == "FINISHED"
        versions = client.search_model_versions("name='coelho-tfd'")
        sources = [v.source for v in versions]
        assert len(sources) == len(set(sources))  # no checkpoint registered twice
        by_number = sorted(versions, key=lambda v: int(v.version))
        applied = [int(v.tags["coelho.events_applied"]) for v in by_number]
        assert applied == sorted(set(applied)) and applied[-1] == EVENTS  # versions only grow
    finally:
        producer.join()
        server.stop()
