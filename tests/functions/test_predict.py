"""The predict functions: cached replica of the learner, never an untrained model."""

from __future__ import annotations

import time

import pytest

from support import binary, make_event, reference, sample

KEYS = ["tfd", "eta", "ecci"]
ANSWER_FIELD = {"tfd": "fraud_probability", "eta": "eta_seconds", "ecci": "cluster"}


@pytest.mark.parametrize("key", KEYS)
def test_no_model_is_503_with_reason(client, key):
    response = client(f"{key}_predict").post("/", json=sample(key))
    assert response.status_code == 503
    assert "no" in response.get_json()["error"] and key in response.get_json()["error"]


@pytest.mark.parametrize("key", KEYS)
def test_prediction_matches_the_learner_and_label_is_optional(client, key):
    learn, predict = client(f"{key}_learn"), client(f"{key}_predict")
    events = [sample(key, **{_id(key): f"e{i}"}) for i in range(3)]
    for payload in events:
        headers, body = binary(make_event(key, payload))
        assert learn.post("/", headers=headers, data=body).status_code == 200
    probe = sample(key)
    label = {"tfd": "is_fraud", "eta": "simulated_actual_travel_time_seconds"}.get(key)
    if label:
        probe.pop(label)
    response = predict.post("/", json=probe)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["model_source"] == "live"
    assert answer["model_version"] == 3
    expected = reference(key, events).predict(probe)
    assert answer[ANSWER_FIELD[key]] == pytest.approx(expected[ANSWER_FIELD[key]], rel=0, abs=0)
    assert answer["prediction"] == expected["prediction"]


def test_acked_event_is_visible_within_one_second(client):
    learn, predict = client("tfd_learn"), client("tfd_predict")
    headers, body = binary(make_event("tfd", sample("tfd")))
    learn.post("/", headers=headers, data=body)
    assert predict.post("/", json=sample("tfd")).get_json()["model_version"] == 1
    headers, body = binary(make_event("tfd", sample("tfd", transaction_id="second")))
    learn.post("/", headers=headers, data=body)
    deadline = time.monotonic() + 1.0
    while predict.post("/", json=sample("tfd")).get_json()["model_version"] != 2:
        assert time.monotonic() < deadline, "the acked event was not visible within 1 s"
        time.sleep(0.02)


def test_predicting_does_not_change_the_model(client):
    learn, predict = client("ecci_learn"), client("ecci_predict")
    events = [sample("ecci", event_id=f"e{i}", price=10.0 * i + 1) for i in range(5)]
    for payload in events:
        headers, body = binary(make_event("ecci", payload))
        learn.post("/", headers=headers, data=body)
    answers = [predict.post("/", json=sample("ecci", price=p)).get_json()["cluster"] for p in (1, 500, 1, 500)]
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert learn.get("/status").get_json()["metrics"] == reference("ecci", events).metrics.report()


def test_predictor_status_reports_learner(client):
    learn, predict = client("eta_learn"), client("eta_predict")
    headers, body = binary(make_event("eta", sample("eta")))
    learn.post("/", headers=headers, data=body)
    predict.post("/", json=sample("eta"))
    status = predict.get("/status").get_json()
    assert status["role"] == "predictor" and status["model_version"] == 1
    assert status["learner"]["use_case"] == "eta"


def _id(key: str) -> str:
    return {"tfd": "transaction_id", "eta": "trip_id", "ecci": "event_id"}[key]
