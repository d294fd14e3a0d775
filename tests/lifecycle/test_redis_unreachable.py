"""Redis away, as a user sees it: predictors answer from what they hold, learners refuse with a JSON 503."""

from __future__ import annotations

import pytest
import requests

from support import binary, deliver, make_event, sample, stream, wait_for
from support.kafka import accepted_ids

pytestmark = pytest.mark.slow


def test_while_redis_is_away_predictors_answer_stale_and_learners_refuse_with_json_503(valkey, valkey_env, serve):
    env = {**valkey_env, "COELHO_PREDICT_REFRESH_MS": "50"}
    events = stream("tfd", 300, seed=41)
    learner, predictor = serve("tfd-learn", env), serve("tfd-predict", env)
    empty_predictor = serve("eta-predict", env)  # never holds a model
    with requests.Session() as session:
        for payload in events[:200]:
            deliver(learner.url + "/", "tfd", payload, session)
    wait_for(lambda: requests.post(predictor.url + "/", json=sample("tfd"), timeout=10).json()["model_version"] == 200,
             what="the predictor at version 200")
    assert "stale" not in requests.post(predictor.url + "/", json=sample("tfd"), timeout=10).json()

    valkey.kill()

    def stale_answer() -> dict | None:
        answer = requests.post(predictor.url + "/", json=sample("tfd"), timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json() if answer.json().get("stale") else None

    wait_for(stale_answer, what="a stale answer")
    answer = stale_answer()
    assert answer is not None
    assert answer["model_source"] == "live" and answer["model_version"] == 200 and answer["replica_age_seconds"] >= 0
    status = requests.get(predictor.url + "/status", timeout=10).json()
    assert status["redis"]["ok"] is False and status["redis"]["error"]
    assert requests.get(predictor.url + "/healthz", timeout=10).status_code == 200  # it can still do its job

    refused = requests.post(empty_predictor.url + "/", json=sample("eta"), timeout=10)
    assert refused.status_code == 503 and "Redis is unreachable" in refused.json()["error"]
    assert requests.get(empty_predictor.url + "/healthz", timeout=10).status_code == 503

    headers, body = binary(make_event("tfd", events[200]))
    refused = requests.post(learner.url + "/", headers=headers, data=body, timeout=10)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.headers["content-type"] == "application/json" and "Redis is unreachable" in refused.json()["error"]
    status = requests.get(learner.url + "/status", timeout=10).json()
    assert status["redis"]["ok"] is False and status["redis"]["error"]
    health = requests.get(learner.url + "/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["redis"]["ok"] is False

    valkey.restart()
    with requests.Session() as session:
        for payload in events[200:]:
            deliver(learner.url + "/", "tfd", payload, session)
    assert requests.get(learner.url + "/healthz", timeout=10).ok
    wait_for(lambda: (a := requests.post(predictor.url + "/", json=sample("tfd"), timeout=10).json())
             ["model_version"] == 300 and "stale" not in a, what="the predictor current again")
    assert requests.get(learner.url + "/status", timeout=10).json()["redis"]["ok"] is True
    assert accepted_ids(valkey.client(), env["COELHO_KEY_PREFIX"], "tfd", "transaction_id") == \
        [e["transaction_id"] for e in events]
