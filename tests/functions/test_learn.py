"""The learn functions through functions-framework's test client, on a real Valkey."""

from __future__ import annotations

import pytest

from support import binary, make_event, reference, sample, structured

KEYS = ["tfd", "eta", "ecci"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("mode", [binary, structured])
def test_valid_event_is_applied(client, key, mode):
    app = client(f"{key}_learn")
    headers, body = mode(make_event(key, sample(key)))
    response = app.post("/", headers=headers, data=body)
    assert response.status_code == 200
    status = app.get("/status").get_json()
    assert status["events_applied"] == 1
    assert status["model_version"] == 1
    assert status["leader"] is True


@pytest.mark.parametrize("key", KEYS)
def test_redelivery_is_applied_once(client, key):
    app = client(f"{key}_learn")
    headers, body = binary(make_event(key, sample(key)))
    for _ in range(5):
        assert app.post("/", headers=headers, data=body).status_code == 200
    status = app.get("/status").get_json()
    assert status["events_applied"] == 1
    assert status["metrics"] == reference(key, [sample(key)]).metrics.report()


def test_same_id_from_another_source_is_a_new_event(client):
    app = client("tfd_learn")
    for source in ("/a", "/b"):
        headers, body = binary(make_event("tfd", sample("tfd"), source=source))
        assert app.post("/", headers=headers, data=body).status_code == 200
    assert app.get("/status").get_json()["events_applied"] == 2


def test_status_and_metrics_routes(client):
    app = client("eta_learn")
    headers, body = binary(make_event("eta", sample("eta")))
    app.post("/", headers=headers, data=body)
    status = app.get("/status").get_json()
    assert status["function"] == "eta_learn"
    assert set(status["metrics"]) >= {"MAE", "RMSE", "MSE", "R2", "MAPE", "SMAPE", "RMSLE", "RollingMAE",
                                      "RollingRMSE", "TimeRollingMAE"}
    assert status["last_checkpoint"]["seq"] == 0
    metrics = app.get("/metrics").get_data(as_text=True)
    assert 'coelho_learn_events_total{function="eta_learn",outcome="accepted"}' in metrics
    assert app.get("/healthz").status_code == 200


def test_get_on_the_event_route_is_not_allowed(client):
    assert client("tfd_learn").get("/").status_code == 405


def test_oversize_chunked_body_is_413(client):
    app = client("tfd_learn")
    headers, _ = binary(make_event("tfd", sample("tfd")))
    chunks = (b"x" * 16_384 for _ in range(8))  # no content-length: refused while reading
    response = app.client.post("/", headers=headers, content=chunks)
    assert response.status_code == 413
    assert app.get("/status").get_json()["events_applied"] == 0


def test_operational_routes_are_get_only(client):
    app = client("eta_learn")
    for path in ("/status", "/metrics", "/healthz"):
        response = app.post(path, headers={"content-type": "application/json"}, data=b"{}")
        assert response.status_code == 405, path
        assert response.headers["allow"] == "GET"
