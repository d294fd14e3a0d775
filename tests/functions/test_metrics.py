"""What the functions export on /metrics: RED per function, learner state, predict distributions, delta-sink."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import binary, make_event, sample, stream

#: The samples of `/metrics` as {(name, frozenset(labels)): value}.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(app) -> Samples:
    text = app.get("/metrics").get_data(as_text=True)
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample_value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_a_learn_function_exports_red_metrics_and_what_its_learner_knows(client):
    app = client("tfd_learn")
    before = scrape(app)
    events = stream("tfd", 30, seed=4)
    for payload in events:
        headers, body = binary(make_event("tfd", payload))
        assert app.post("/", headers=headers, data=body).status_code == 200
    bad = dict(events[0], amount="lots")
    headers, body = binary(make_event("tfd", bad, id="bad-1"))
    assert app.post("/", headers=headers, data=body).status_code == 422
    app.get("/status")  # learns what is queued
    after = scrape(app)

    def grew(name: str, **labels: str) -> float:
        return (sample_value(after, name, **labels) or 0) - (sample_value(before, name, **labels) or 0)

    red = {"function": "tfd_learn", "route": "/", "method": "POST"}
    assert grew("coelho_http_requests_total", **red, code="200") == 30
    assert grew("coelho_http_requests_total", **red, code="422") == 1
    assert grew("coelho_http_request_duration_seconds_count", function="tfd_learn", route="/") == 31
    assert grew("coelho_learn_events_total", function="tfd_learn", outcome="rejected") == 1
    uc = {"use_case": "tfd"}
    assert sample_value(after, "coelho_learn_leader", **uc) == 1
    assert sample_value(after, "coelho_model_events_applied_total", **uc) == 30
    assert sample_value(after, "coelho_learn_wal_backlog_events", **uc) == 0
    assert sample_value(after, "coelho_drift_detections_total", **uc) == 0
    assert sample_value(after, "coelho_learn_checkpoint_size_bytes", **uc) > 0
    assert sample_value(after, "coelho_model_last_event_timestamp_seconds", **uc) > 0
    assert sample_value(after, "coelho_model_metric", **uc, metric="FBeta") is not None
    assert grew("coelho_learn_event_lag_seconds_count", **uc) >= 1
    assert grew("coelho_learn_leadership_changes_total", **uc, change="acquired") == 1


@pytest.mark.parametrize(("key", "name"), [("tfd", "coelho_predict_fraud_probability_count"),
                                           ("eta", "coelho_predict_eta_seconds_count")])
def test_a_predict_function_exports_its_answers_distribution_and_staleness(client, key, name):
    learn, predict = client(f"{key}_learn"), client(f"{key}_predict")
    for payload in stream(key, 5, seed=6):
        headers, body = binary(make_event(key, payload))
        learn.post("/", headers=headers, data=body)
    learn.get("/status")
    before = scrape(predict)
    assert predict.post("/", json=sample(key)).status_code == 200
    after = scrape(predict)
    assert (sample_value(after, name, source="live") or 0) - (sample_value(before, name, source="live") or 0) == 1
    staleness = "coelho_predict_model_staleness_seconds_count"
    function = {"function": f"{key}_predict"}
    assert (sample_value(after, staleness, **function) or 0) - (sample_value(before, staleness, **function) or 0) == 1


def test_ecci_predictions_are_counted_by_cluster(client):
    learn, predict = client("ecci_learn"), client("ecci_predict")
    for payload in stream("ecci", 50, seed=6):
        headers, body = binary(make_event("ecci", payload))
        learn.post("/", headers=headers, data=body)
    learn.get("/status")
    cluster = predict.post("/", json=sample("ecci")).get_json()["cluster"]
    assert sample_value(scrape(predict), "coelho_predict_clusters_total", source="live", cluster=str(cluster)) >= 1


def test_delta_sink_exports_its_commits(client):
    app = client("delta_sink")
    for payload in stream("eta", 4, seed=8):
        headers, body = binary(make_event("eta", payload))
        assert app.post("/", headers=headers, data=body).status_code == 200
    samples = scrape(app)
    assert sample_value(samples, "coelho_sink_rows_total", use_case="eta") == 4
    assert sample_value(samples, "coelho_sink_commits_total", use_case="eta") >= 1
    assert sample_value(samples, "coelho_sink_commit_duration_seconds_count", use_case="eta") >= 1
    assert sample_value(samples, "coelho_http_requests_total", function="delta_sink", route="/", method="POST",
                        code="200") >= 4
