"""Scale to zero, again and again: a learner lives many short lives on the same Redis and MLflow.

Each life is what Knative does to an idle function: events, idle, SIGTERM to the server's pid; the
next event starts a new process (as the activator would). A predictor runs throughout.
"""

from __future__ import annotations

import pytest
import requests

from support import deliver, sample, stream, wait_for
from support.kafka import accepted_ids

pytestmark = pytest.mark.slow

LIVES = 5
PER_LIFE = 250  # 5 × 250: the last versions saw the 1000 events the champion rule compares on
REDELIVERED = 10  # the end of the previous life sent again, as a KafkaSource does after uncommitted offsets
TIMEOUT = 60  # seconds: loading a champion (MLflow imported, artifacts read) takes a while on a busy machine


def test_many_lives_lose_nothing_apply_nothing_twice_and_continue_each_other(ml_env, mlflow_client, serve,
                                                                            redis_client, settings):
    from coelho.adapters.mlflow_registry import ALIAS

    env = {**ml_env, "COELHO_LEASE_SECONDS": "60", "COELHO_PREDICT_REFRESH_MS": "50",
           "COELHO_MLFLOW_LOG_EVERY": "50", "COELHO_REGISTER_EVERY": "1000"}  # a version per life, at its stop
    events = stream("tfd", LIVES * PER_LIFE, seed=61)
    predictor = serve("tfd-predict", env)
    runs: list[str] = []
    with requests.Session() as session:
        for life in range(LIVES):
            learner = serve("tfd-learn", env)
            mine = events[life * PER_LIFE:(life + 1) * PER_LIFE]
            again = events[max(0, life * PER_LIFE - REDELIVERED):life * PER_LIFE]
            deliver(learner.url + "/", "tfd", (again or mine)[0], session)
            first = requests.get(learner.url + "/status", timeout=TIMEOUT).json()
            assert first["leader"] and first["fence"] == str(life + 1)  # led at once: the lease was released
            for payload in again + mine:
                deliver(learner.url + "/", "tfd", payload, session)
            status = requests.get(learner.url + "/status", timeout=TIMEOUT).json()
            assert status["events_applied"] == (life + 1) * PER_LIFE
            wait_for(lambda url=learner.url: requests.get(url + "/status", timeout=TIMEOUT).json()["mlflow"]["run_id"],
                     what="the life's MLflow run")
            runs.append(requests.get(learner.url + "/status", timeout=TIMEOUT).json()["mlflow"]["run_id"])
            answer = requests.post(predictor.url + "/", json=sample("tfd"), timeout=TIMEOUT).json()
            assert answer["model_source"] == "live"
            assert learner.terminate() == 0  # idle: Knative scales it to zero

            # Scaled to zero: the predictor still answers, from Redis.
            answer = requests.post(predictor.url + "/", json=sample("tfd"), timeout=TIMEOUT).json()
            assert answer["model_source"] == "live" and answer["model_version"] == (life + 1) * PER_LIFE

    assert accepted_ids(redis_client, settings.key_prefix, "tfd", "transaction_id") == \
        [e["transaction_id"] for e in events]  # nothing lost, nothing twice, in order
    ends = []
    for life, run_id in enumerate(runs):
        run = mlflow_client.get_run(run_id)
        assert run.info.status == "FINISHED"
        steps = [m.step for m in mlflow_client.get_metric_history(run_id, "FBeta")]
        assert max(steps) == (life + 1) * PER_LIFE
        assert not ends or min(steps) > ends[-1]  # each run continues the previous one's step count
        ends.append(max(steps))
    versions = sorted(mlflow_client.search_model_versions("name='coelho-tfd'"), key=lambda v: int(v.version))
    assert [int(v.tags["coelho.events_applied"]) for v in versions] == [n * PER_LIFE for n in range(1, LIVES + 1)]
    assert [v.tags["coelho.run_id"] for v in versions] == runs

    # Redis loses everything while the learner sleeps: the predictor serves the champion…
    redis_client.delete(*redis_client.keys(f"{settings.key_prefix}:tfd:*"))
    champion = mlflow_client.get_model_version_by_alias("coelho-tfd", ALIAS)
    wait_for(lambda: requests.post(predictor.url + "/", json=sample("tfd"), timeout=TIMEOUT).json()["model_source"]
             == "mlflow", what="the champion served")
    answer = requests.post(predictor.url + "/", json=sample("tfd"), timeout=TIMEOUT).json()
    assert answer["model_version"] == int(champion.version)
    # …until the next life continues from that champion, and the predictor follows it.
    learner = serve("tfd-learn", env)
    for payload in stream("tfd", 10, seed=62):
        deliver(learner.url + "/", "tfd", payload)
    status = requests.get(learner.url + "/status", timeout=TIMEOUT).json()
    assert status["mlflow"]["continued_from"] == int(champion.version) and status["model_version"] == 10
    assert status["events_applied"] == int(champion.tags["coelho.events_applied"]) + 10
    wait_for(lambda: requests.post(predictor.url + "/", json=sample("tfd"), timeout=TIMEOUT).json()["model_version"]
             == 10, what="the predictor on the new life's model")
