"""A function's stop under the real server: SIGTERM to the master or the group, SIGINT, as Knative and Ctrl-C send them.

Every function runs exactly as `coelho fn serve` runs it (functions-framework → gunicorn master + worker).
"""

from __future__ import annotations

import re
import signal
import threading

import pytest
import requests

from coelho.runtime.catalog import FUNCTIONS
from support import binary, deliver, make_event, stream, table_rows, wait_for, write_table
from support.kafka import accepted_ids
from support.servers import FunctionServer

pytestmark = pytest.mark.slow

#: A lease longer than any test step: a successor that leads at once proves the lease was released.
LONG_LEASE = {"COELHO_LEASE_SECONDS": "60"}


def stop_lines(server: FunctionServer) -> list[str]:
    """The log lines in which the server's functions say how they stopped."""
    return [line for line in server.log().splitlines() if re.search(r"\bstopped \(\w+\) in [\d.]+ s: ", line)]


def post_all(url: str, key: str, events: list[dict]) -> None:
    with requests.Session() as session:
        for payload in events:
            deliver(url, key, payload, session)


# The MLflow part of a learner's stop does not depend on the signal: shown once, where it costs the most.
STOPS = [pytest.param(signal.SIGTERM, False, True, id="SIGTERM-master-with-MLflow"),
         pytest.param(signal.SIGTERM, True, False, id="SIGTERM-group"),
         pytest.param(signal.SIGINT, True, False, id="SIGINT-group")]


@pytest.mark.parametrize(("sig", "group", "mlflow"), STOPS)
def test_learner_stop_writes_final_checkpoint_releases_lease_and_finishes_its_run(
        request, env, redis_client, settings, serve, sig, group, mlflow):
    function_env = {**(request.getfixturevalue("ml_env") if mlflow else env), **LONG_LEASE}
    events = stream("tfd", 600, seed=31)
    # No checkpoint and no registration while serving: whatever is there after the stop, the stop wrote.
    learner = serve("tfd-learn", function_env, COELHO_CHECKPOINT_EVERY="100000", COELHO_REGISTER_EVERY="1000")
    post_all(learner.url + "/", "tfd", events)

    assert learner.terminate(sig, group) == 0
    [line] = stop_lines(learner)
    assert f"tfd_learn stopped ({sig.name})" in line
    assert "final checkpoint at seq 600" in line and "lease released" in line
    key = f"{settings.key_prefix}:tfd"
    assert redis_client.get(f"{key}:lease") is None
    assert int(redis_client.hget(f"{key}:ckpt:meta", "seq")) == 600
    if mlflow:
        client = request.getfixturevalue("mlflow_client")
        [run] = client.search_runs([client.get_experiment_by_name("Transaction Fraud Detection").experiment_id])
        assert run.info.status == "FINISHED" and f"MLflow run {run.info.run_id} FINISHED" in line
        [version] = client.search_model_versions("name='coelho-tfd'")
        assert version.tags["coelho.events_applied"] == "600" and version.tags["coelho.run_id"] == run.info.run_id

    successor = serve("tfd-learn", function_env)
    post_all(successor.url + "/", "tfd", stream("tfd", 1, seed=32))
    status = requests.get(successor.url + "/status", timeout=10).json()
    assert status["leader"] and status["fence"] == "2" and status["events_applied"] == 601


def test_events_arriving_while_a_learner_stops_get_503_and_are_learned_once_by_its_successor(env, redis_client,
                                                                                              settings, serve):
    # MLflow on but unreachable: the stop waits its full bound for MLflow, with the listener still open.
    stopping = {**env, "COELHO_MLFLOW": "on", "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", **LONG_LEASE,
                "COELHO_STOP_MLFLOW_SECONDS": "5"}
    events = stream("eta", 300, seed=33)
    learner = serve("eta-learn", stopping)
    post_all(learner.url + "/", "eta", events[:100])

    learner.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    refused, sent = None, 100
    while refused is None and learner.process.poll() is None:  # type: ignore[union-attr]
        headers, body = binary(make_event("eta", events[sent]))
        try:
            answer = requests.post(learner.url + "/", headers=headers, data=body, timeout=10)
        except requests.RequestException:
            break
        if answer.status_code == 503:
            refused = answer
        else:  # accepted before the signal reached the worker
            assert answer.ok
            sent += 1
    assert refused is not None, "no request was refused while the learner stopped"
    assert refused.headers["Retry-After"] == "1" and "stopping" in refused.json()["error"]
    if learner.process.poll() is None:  # type: ignore[union-attr]
        try:  # still draining: the status answers, the readiness probe fails
            assert requests.get(learner.url + "/status", timeout=5).json()["model_version"] == sent
            assert requests.get(learner.url + "/healthz", timeout=5).status_code == 503
        except requests.RequestException:
            pass  # it finished stopping meanwhile
    learner.process.wait(60)  # type: ignore[union-attr]
    [line] = stop_lines(learner)
    assert f"final checkpoint at seq {sent}" in line and "not delivered within 5 s" in line

    successor = serve("eta-learn", {**env, **LONG_LEASE})
    post_all(successor.url + "/", "eta", events[sent:])
    wait_for(lambda: requests.get(successor.url + "/status", timeout=10).json()["events_applied"] == 300,
             what="all events learned")
    assert accepted_ids(redis_client, settings.key_prefix, "eta", "trip_id") == [e["trip_id"] for e in events]


def test_two_workers_stop_together_and_the_leader_hands_over(env, redis_client, settings, serve):
    events = stream("ecci", 400, seed=34)
    learner = serve("ecci-learn", env, WORKERS="2", **LONG_LEASE)
    senders = [threading.Thread(target=post_all, args=(learner.url + "/", "ecci", events[i::4])) for i in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert learner.terminate(signal.SIGTERM) == 0
    lines = stop_lines(learner)
    assert len(lines) == 2, lines  # one per worker (a worker that got no request says so)
    assert sum("final checkpoint at seq 400" in line and "lease released" in line for line in lines) == 1
    assert redis_client.get(f"{settings.key_prefix}:ecci:lease") is None
    assert int(redis_client.hget(f"{settings.key_prefix}:ecci:ckpt:meta", "seq")) == 400


def start_senders(url: str, events: list[dict], count: int, statuses: list[int]) -> list[threading.Thread]:
    """`count` concurrent senders, each delivering its share of `events` (retrying as a KafkaSource does)."""

    def send(part: list[dict]) -> None:
        with requests.Session() as session:
            for payload in part:
                statuses.extend(deliver(url, "tfd", payload, session))

    senders = [threading.Thread(target=send, args=(events[i::count],)) for i in range(count)]
    for sender in senders:
        sender.start()
    return senders


def table_ids(settings) -> list[str]:
    """The ce_id of every row of the tfd Delta table."""
    from deltalake import DeltaTable

    return DeltaTable(settings.delta_uri("tfd")).to_pyarrow_table(columns=["ce_id"])["ce_id"].to_pylist()


def test_delta_sink_answers_every_sender_on_sigint_and_keeps_one_row_per_event(env, settings, serve):
    events = stream("tfd", 400, seed=35)
    sink = serve("delta-sink", env)
    statuses: list[int] = []
    senders = start_senders(sink.url + "/", events, 8, statuses)
    wait_for(lambda: statuses.count(200) >= 100, what="100 events committed")
    assert sink.terminate(signal.SIGINT, group=True) == 0
    [line] = stop_lines(sink)
    assert "delta_sink stopped (SIGINT)" in line and "committed the pending events: tfd" in line
    sink.start()  # the senders' retries reach the successor
    for sender in senders:
        sender.join()
    sink.stop()
    assert set(statuses) <= {0, 200, 503}
    assert sorted(table_ids(settings)) == sorted(e["transaction_id"] for e in events)


def test_delta_sink_hands_over_to_a_fresh_worker_after_its_commits_and_keeps_one_row_per_event(
        env, settings, serve):
    events = stream("tfd", 240, seed=37)
    sink = serve("delta-sink", env, COELHO_SINK_RECYCLE_COMMITS="15")
    statuses: list[int] = []
    for sender in start_senders(sink.url + "/", events, 4, statuses):
        sender.join()
    # the master goes on serving with a fresh worker (the last commit may have just started one: it boots first)
    assert requests.get(sink.url + "/status", timeout=60).ok
    assert sink.terminate() == 0
    recycled = [line for line in sink.log().splitlines() if re.search(r"delta_sink stopped \(recycled after 1[5-9] "
                                                                       r"commits\) in [\d.]+ s: committed", line)]
    assert len(recycled) >= 2, sink.log()[-3000:]  # a worker stops once: each line is another worker
    assert set(statuses) <= {0, 200, 503}
    assert sorted(table_ids(settings)) == sorted(e["transaction_id"] for e in events)


def test_sql_stop_interrupts_the_running_query_which_answers_503(env, settings, serve):
    write_table(settings.delta_uri("tfd"), "tfd", table_rows("tfd", stream("tfd", 10, seed=36)))
    sql = serve("sql", env, COELHO_SQL_TIMEOUT_S="600")
    answers: list[requests.Response] = []
    bomb = "SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range + b.range = -1"
    query = threading.Thread(target=lambda: answers.append(
        requests.post(sql.url + "/", json={"use_case": "tfd", "query": bomb}, timeout=600)))
    query.start()
    wait_for(lambda: requests.get(sql.url + "/status", timeout=10).json()["running_queries"] == 1,
             what="the query running")
    assert sql.terminate(signal.SIGTERM, group=True) == 0
    query.join()
    [answer] = answers
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1", answer.text
    assert "stopping" in answer.json()["error"]
    [line] = stop_lines(sql)
    assert "interrupted 1 running queries" in line


@pytest.mark.parametrize("name", [f.name for f in FUNCTIONS if f.name != "hello-http"])
def test_every_function_stops_on_sigterm_to_its_master_with_one_log_line(env, serve, name):
    server = serve(name, env)
    assert requests.get(server.url + "/healthz", timeout=10).ok
    assert server.terminate(signal.SIGTERM) == 0
    [line] = stop_lines(server)
    target = next(f.target for f in FUNCTIONS if f.name == name)
    assert f"{target} stopped (SIGTERM) in " in line
