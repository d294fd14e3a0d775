"""Producers → Kafka → local KafkaSource dispatcher → learn function, on a real broker and real servers.

Every test gets its own topics and consumer group (copies of the repo's manifests with a suffix),
so the delivery settings under test are the ones Knative applies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from coelho.adapters.kafka_broker import KafkaBroker
from coelho.core import USE_CASES
from coelho.dispatch.records import WRAPPED_TYPE
from coelho.dispatch.runner import Dispatch, list_dead_letters, replay_dead_letters
from support import reference, stream, wait_for
from support.kafka import accepted_ids, accepted_payloads, isolated_manifests, produce_cloudevents
from support.servers import FunctionServer

pytestmark = pytest.mark.slow


def applied(server: FunctionServer) -> int:
    try:
        return requests.get(server.url + "/status", timeout=5).json()["events_applied"]
    except requests.RequestException:
        return -1


@pytest.fixture
def learner(env: dict[str, str], tmp_path: Path) -> Iterator[FunctionServer]:
    with FunctionServer("tfd-learn", env, tmp_path, COELHO_LEASE_SECONDS="2") as server:
        yield server


@pytest.fixture
def pipeline(kafka_broker, learner, tmp_path):
    """Manifests, topics and an in-process dispatcher thread for tfd."""
    folder, topic, dead_letter_topic = isolated_manifests(tmp_path / "manifests", "tfd")
    kafka_broker.ensure_topics([topic, dead_letter_topic], partitions=3)
    dispatch = Dispatch.from_folder(folder, {"tfd-learn": learner.url + "/"}, kafka_broker.bootstrap_servers,
                                    commit_interval=1.0)
    stop = threading.Event()
    thread = threading.Thread(target=dispatch.run, args=(stop,))
    thread.start()
    yield folder, topic, dead_letter_topic
    stop.set()
    thread.join(timeout=60)


def test_each_event_applied_exactly_once_in_partition_order(kafka_broker, learner, pipeline, redis_client, settings):
    _, topic, _ = pipeline
    events = stream("tfd", 600, seed=21)
    produce_cloudevents(kafka_broker.bootstrap_servers, topic, "tfd", events)
    wait_for(lambda: applied(learner) == 600, what="600 events applied")
    ids = accepted_ids(redis_client, settings.key_prefix, "tfd", "transaction_id")
    assert sorted(ids) == sorted(e["transaction_id"] for e in events)  # all of them, each once
    per_user: dict[str, list[str]] = defaultdict(list)
    position = {event_id: i for i, event_id in enumerate(ids)}
    for event in events:
        per_user[event["user_id"]].append(event["transaction_id"])
    for user_events in per_user.values():  # one key → one partition → produce order kept
        assert [position[i] for i in user_events] == sorted(position[i] for i in user_events)
    expected = reference("tfd", accepted_payloads(redis_client, settings.key_prefix, "tfd"))
    assert requests.get(learner.url + "/status", timeout=5).json()["metrics"] == expected.metrics.report()

    def lags() -> list[float | None]:  # the in-process dispatcher's gauges, refreshed every commit interval
        return [REGISTRY.get_sample_value("coelho_dispatch_consumer_lag_records",
                                          {"source": "tfd-events", "topic": topic, "partition": str(p)})
                for p in range(3)]

    wait_for(lambda: lags() == [0.0, 0.0, 0.0], what="a consumer lag of 0 on every partition")
    assert REGISTRY.get_sample_value("coelho_dispatch_events_total",
                                     {"source": "tfd-events", "outcome": "delivered"}) >= 600


def test_poison_event_goes_to_dead_letter_with_reason_and_the_partition_moves_on(
        kafka_broker, learner, pipeline, redis_client, settings):
    folder, topic, dead_letter_topic = pipeline
    events = stream("tfd", 20, seed=5)
    user = events[0]["user_id"]
    for event in events:
        event["user_id"] = user  # one partition: the poison must not block the ones after it
    poison = dict(events[10], transaction_id="poison-1", amount=float("nan"))
    produce_cloudevents(kafka_broker.bootstrap_servers, topic, "tfd", events[:10] + [poison] + events[10:])
    wait_for(lambda: applied(learner) == 20, what="the 20 valid events")
    letters = []
    wait_for(lambda: bool(letters.extend(list_dead_letters(kafka_broker.bootstrap_servers, dead_letter_topic)))
             or bool(letters), what="the dead letter")
    letter = letters[0].summary()
    assert letter["id"] == "poison-1" and letter["code"] == "422" and letter["dest"] == learner.url + "/"
    assert "amount" in letter["reason"] and "finite" in letter["reason"]
    assert "poison-1" not in accepted_ids(redis_client, settings.key_prefix, "tfd", "transaction_id")
    source = Dispatch.from_folder(folder, {"tfd-learn": learner.url + "/"}, kafka_broker.bootstrap_servers).sources[0]
    assert replay_dead_letters(kafka_broker.bootstrap_servers, source, dead_letter_topic) == 1
    # Still invalid, the replayed event fails again and lands as a second letter; a second replay
    # takes only that new one (the group remembers the first).
    wait_for(lambda: len(list_dead_letters(kafka_broker.bootstrap_servers, dead_letter_topic)) == 2,
             what="the replayed poison to fail again")
    assert replay_dead_letters(kafka_broker.bootstrap_servers, source, dead_letter_topic) == 1
    assert applied(learner) == 20


def test_plain_record_is_wrapped_as_kafkasource_does(kafka_broker, tmp_path):
    received: list[dict[str, str]] = []

    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({**{k.lower(): v for k, v in self.headers.items()}, "body": body.decode()})
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder, topic, dead_letter_topic = isolated_manifests(tmp_path / "m", "tfd")
    kafka_broker.ensure_topics([topic, dead_letter_topic], partitions=3)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce(topic, value=b'{"hello": "world"}', key=b"k-1", partition=1,
                     headers=[("X-Trace-Id", b"t-9"), ("content-type", b"application/json")], timestamp=1772452800000)
    producer.flush(10)
    dispatch = Dispatch.from_folder(folder, {"tfd-learn": f"http://127.0.0.1:{server.server_address[1]}/"},
                                    kafka_broker.bootstrap_servers)
    stop = threading.Event()
    thread = threading.Thread(target=dispatch.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: bool(received), what="the wrapped event")
    finally:
        stop.set()
        thread.join(timeout=30)
        server.shutdown()
        server.server_close()
    got = received[0]
    source = dispatch.sources[0].source_attribute
    assert got["ce-id"] == "partition:1/offset:0" and got["ce-subject"] == "partition:1#0"
    assert got["ce-type"] == WRAPPED_TYPE and got["ce-source"] == f"{source}#{topic}"
    assert got["ce-key"] == got["ce-partitionkey"] == "k-1" and got["ce-kafkaheaderxtraceid"] == "t-9"
    assert got["ce-time"] == "2026-03-02T12:00:00Z" and got["content-type"] == "application/json"
    assert json.loads(got["body"]) == {"hello": "world"}


def test_dispatcher_sigkill_then_restart_absorbs_duplicates(kafka_broker, learner, env, tmp_path, redis_client,
                                                           settings):
    folder, topic, dead_letter_topic = isolated_manifests(tmp_path / "m", "tfd")
    kafka_broker.ensure_topics([topic, dead_letter_topic], partitions=3)
    events = stream("tfd", 1500, seed=8)
    produce_cloudevents(kafka_broker.bootstrap_servers, topic, "tfd", events)
    command = [sys.executable, "-m", "coelho.cli", "dispatch", "--manifests", str(folder),
               "--sink", f"tfd-learn={learner.url}/"]
    child_env = {**os.environ, **env, "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers}
    log = open(tmp_path / "dispatch.log", "ab")  # noqa: SIM115
    first = subprocess.Popen(command, env=child_env, stdout=log, stderr=log, start_new_session=True)
    wait_for(lambda: applied(learner) >= 400, what="some progress")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    second = subprocess.Popen(command, env=child_env, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for(lambda: applied(learner) == 1500, what="all events after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
        log.close()
    assert second.returncode == 0
    ids = accepted_ids(redis_client, settings.key_prefix, "tfd", "transaction_id")
    assert len(ids) == len(set(ids)) == 1500
    metrics = requests.get(learner.url + "/metrics", timeout=5).text
    assert 'outcome="duplicate"' in metrics  # the uncommitted tail came again and was absorbed


def test_broker_restart_mid_stream_loses_nothing(learner, tmp_path):
    broker = KafkaBroker(tmp_path / "own-broker")  # its own broker: the shared one keeps serving other tests
    broker.start()
    stop = threading.Event()
    try:
        folder, topic, dead_letter_topic = isolated_manifests(tmp_path / "m", "tfd")
        broker.ensure_topics([topic, dead_letter_topic], partitions=3)
        dispatch = Dispatch.from_folder(folder, {"tfd-learn": learner.url + "/"}, broker.bootstrap_servers,
                                        commit_interval=1.0)
        thread = threading.Thread(target=dispatch.run, args=(stop,))
        thread.start()
        events = stream("tfd", 400, seed=13)
        produce_cloudevents(broker.bootstrap_servers, topic, "tfd", events[:200])
        wait_for(lambda: applied(learner) >= 100, what="progress before the broker stops")
        broker.restart()
        produce_cloudevents(broker.bootstrap_servers, topic, "tfd", events[200:])
        wait_for(lambda: applied(learner) == 400, what="all events after the broker restart")
    finally:
        stop.set()
        thread.join(timeout=60)
        broker.stop()


def test_learner_scaled_to_zero_gets_the_queue_when_it_starts(kafka_broker, learner, pipeline):
    _, topic, _ = pipeline
    events = stream("tfd", 300, seed=17)
    produce_cloudevents(kafka_broker.bootstrap_servers, topic, "tfd", events[:50])
    wait_for(lambda: applied(learner) == 50, what="the first 50")
    learner.stop()  # scaled to zero: graceful stop, final checkpoint, lease released
    produce_cloudevents(kafka_broker.bootstrap_servers, topic, "tfd", events[50:])
    time.sleep(2)  # the events queue up; the dispatcher waits for the sink like the activator would
    learner.start()
    wait_for(lambda: applied(learner) == 300, what="the queued events after the start")
    assert USE_CASES["tfd"].champion.metric in requests.get(learner.url + "/status", timeout=5).json()["metrics"]
