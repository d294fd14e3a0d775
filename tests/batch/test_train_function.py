"""The train function over HTTP: runs, figures, comparisons, metrics; a training stopped mid-way; bad input."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from mlflow import MlflowClient

from coelho.adapters.training_state import TrainingState
from support.servers import free_port

KEYS = ["tfd", "eta", "ecci"]


def _wait_status(app: Any, key: str, done: Any, limit_s: float = 240.0) -> dict[str, Any]:
    """Poll /status until `done(status)`; a hang fails the test (no wall-clock assertion otherwise)."""
    deadline = time.monotonic() + limit_s
    while not done(status := app.get(f"/status?use_case={key}").get_json()):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


@pytest.mark.parametrize("key", KEYS)
def test_runs_diagnostics_and_comparison_routes(trained, function_client, key):
    app = function_client("train")
    outcome = trained[key].outcome
    runs = app.get(f"/runs?use_case={key}").get_json()["runs"]
    run = next(r for r in runs if r["run_id"] == outcome.run_id)
    assert run["status"] == "FINISHED" and run["champion"] and run["version"] == outcome.version
    assert set(run["rows"]) == set(run["time_range"]) == {"train", "validation", "test"}
    metric = {"tfd": "FBeta", "eta": "MAE", "ecci": "Silhouette"}[key]
    assert isinstance(run["delta_version"], int) and run["metrics"][metric] == outcome.metrics[metric]
    assert not any(name.startswith(("validation.", "learn.", "k_search.")) for name in run["metrics"])

    figures = app.get(f"/diagnostics?use_case={key}&run_id={outcome.run_id}").get_json()["figures"]
    assert figures and all(set(f) == {"name", "title", "what", "how"} for f in figures)
    one = app.get(f"/diagnostics?use_case={key}&run_id={outcome.run_id}&name={figures[0]['name']}").get_json()
    assert one["name"] == figures[0]["name"] and one["figure"]["data"]

    comparison = app.get(f"/comparison?use_case={key}").get_json()  # the champion's run by default
    assert comparison["run_id"] == outcome.run_id and comparison["test_rows"] > 0
    assert {"metric", "batch", "online_frozen", "online_prequential"} == set(comparison["rows"][0])


def test_metrics_and_status_after_the_trainings(trained, function_client):
    app = function_client("train")
    text = app.get("/metrics").get_data(as_text=True)
    for key in KEYS:
        assert f'coelho_training_runs_total{{outcome="finished",use_case="{key}"}}' in text
        assert f'coelho_training_last_success_timestamp_seconds{{use_case="{key}"}}' in text
        assert f'coelho_training_progress_ratio{{use_case="{key}"}} 0.0' in text
    assert 'coelho_training_duration_seconds_bucket{le="+Inf",use_case="tfd"}' in text
    status = app.get("/status?use_case=ecci").get_json()  # the last ecci training (this session's)
    assert status["state"] == "finished" and status["percent"] == 100.0 and status["finished_at"]
    assert any("K=" in line for line in status["log"]) and status["stage"] == "finished"
    assert set(app.get("/status").get_json()["use_cases"]) == set(KEYS)


def test_stop_mid_training_kills_the_run_registers_nothing_and_a_second_request_gets_409(
        batch_settings, trained, function_client):
    # boosting that would run for a very long time: only the stop can end it
    app = function_client("train", COELHO_TRAIN_ITERATIONS="200000", COELHO_TRAIN_EARLY_STOPPING="200000")
    client = MlflowClient(batch_settings.tracking_uri(), batch_settings.tracking_uri())
    versions_before = len(client.search_model_versions("name='coelho-tfd-batch'"))
    started = app.post("/", json={"use_case": "tfd"})
    assert started.status_code == 202, started.get_json()
    run_id = started.get_json()["run_id"]
    assert started.get_json() == {"use_case": "tfd", "run_id": run_id, "state": "running"}
    assert app.get("/status").get_json()["warm_start"] == "ready"  # forked from the warm forkserver

    again = app.post("/", json={"use_case": "tfd", "max_rows": 5000})
    assert again.status_code == 409
    assert again.get_json()["running"]["run_id"] == run_id and again.get_json()["running"]["use_case"] == "tfd"

    status = _wait_status(app, "tfd", lambda s: s["stage"] == "training" and "iteration" in s["message"])
    assert status["state"] == "running" and status["run_id"] == run_id and 16 <= status["percent"] < 70
    stop = app.post("/stop?use_case=tfd")
    assert stop.status_code == 202 and stop.get_json() == {"stopping": True, "run_id": run_id}
    final = _wait_status(app, "tfd", lambda s: s["state"] != "running")
    assert final["state"] == "killed" and "nothing registered" in final["error"]
    assert client.get_run(run_id).info.status == "KILLED"
    assert len(client.search_model_versions("name='coelho-tfd-batch'")) == versions_before
    state = TrainingState.open(batch_settings, "tfd")
    deadline = time.monotonic() + 30
    while state.holder() is not None:  # released right after the final status
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert app.post("/stop?use_case=tfd").status_code == 404


BAD_REQUESTS = [
    ({}, 422, ["use_case"]),
    ({"use_case": "fraud"}, 422, ["use_case"]),
    ({"use_case": "tfd", "sample_frac": 0}, 422, ["sample_frac"]),
    ({"use_case": "tfd", "sample_frac": 1.5}, 422, ["sample_frac"]),
    ({"use_case": "tfd", "sample_frac": "half"}, 422, ["sample_frac"]),
    ({"use_case": "tfd", "max_rows": 0}, 422, ["max_rows"]),
    ({"use_case": "tfd", "max_rows": 2.5}, 422, ["max_rows"]),
    ({"use_case": "tfd", "since": "2026-03-02T10:00:00Z", "until": "2026-03-02T10:00:00Z"}, 422, ["until"]),
    ({"use_case": "tfd", "since": "yesterday"}, 422, ["since"]),
    ({"use_case": "ecci", "k": 1}, 422, ["k"]),
    ({"use_case": "ecci", "k": 51}, 422, ["k"]),
    ({"use_case": "eta", "k": 4}, 422, ["k"]),
    ({"use_case": "tfd", "colour": "red"}, 422, ["colour"]),
    ({"use_case": "nope", "sample_frac": -1, "max_rows": -1, "k": 0, "x": 1}, 422,
     ["x", "use_case", "sample_frac", "max_rows", "k"]),
    ([1, 2], 400, ["body"]),
]


@pytest.mark.parametrize(("body", "status", "fields"), BAD_REQUESTS, ids=[",".join(f) for _, _, f in BAD_REQUESTS])
def test_bad_requests_name_each_field_and_start_nothing(batch_settings, function_client, body, status, fields):
    app = function_client("train")
    response = app.post("/", json=body)
    assert response.status_code == status, response.get_json()
    assert [p["field"] for p in response.get_json()["problems"]] == fields
    assert all(TrainingState.open(batch_settings, key).holder() is None for key in KEYS)


def test_too_few_rows_is_422_naming_each_block_and_its_rows(streams, function_client):
    app = function_client("train")
    response = app.post("/", json={"use_case": "tfd", "max_rows": 3000})
    assert response.status_code == 422
    problems = {p["field"]: p["message"] for p in response.get_json()["problems"]}
    assert set(problems) == {"validation", "test"} and "fewer than the minimum of 1000" in problems["test"]
    empty = app.post("/", json={"use_case": "eta", "since": "2030-01-01T00:00:00Z"}).get_json()
    assert [p["field"] for p in empty["problems"]] == ["train", "validation", "test"]
    assert "has 0 rows" in empty["problems"][0]["message"]


def test_cloudevents_binary_and_structured_are_decoded_and_checked(streams, function_client):
    app = function_client("train")
    event = CloudEvent({"type": "io.coelho.train.requested.v1", "source": "/tests"}, {"use_case": "tfd",
                                                                                        "max_rows": 3000})
    for mode in (to_binary, to_structured):  # decoded, then checked like a JSON body: too few rows here
        headers, body = mode(event)
        response = app.post("/", headers=dict(headers), data=body)
        assert response.status_code == 422 and response.get_json()["problems"][0]["field"] == "validation"
    # A PingSource's tick carries a request too (a drift detection: `request_from_event`'s doctest).
    tick = CloudEvent({"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/coelho/pingsources/x"},
                      {"use_case": "tfd", "max_rows": 3000})
    headers, body = to_structured(tick)
    response = app.post("/", headers=dict(headers), data=body)
    assert response.status_code == 422 and response.get_json()["problems"][0]["field"] == "validation"
    wrong = CloudEvent({"type": "io.coelho.tfd.transaction.v1", "source": "/tests"}, {"use_case": "ecci"})
    headers, body = to_structured(wrong)
    response = app.post("/", headers=dict(headers), data=body)
    assert response.status_code == 422 and response.get_json()["problems"][0]["field"] == "type"
    response = app.post("/", headers={"ce-specversion": "1.0", "content-type": "application/json"}, data=b"{}")
    assert response.status_code == 400


def test_routes_refuse_what_they_do_not_serve(trained, function_client):
    app = function_client("train")
    assert app.get("/").status_code == 405
    assert app.get("/nope").status_code == 404
    assert app.get("/status?use_case=fraud").status_code == 400
    assert app.get("/runs").status_code == 400
    missing = app.get("/diagnostics?use_case=tfd")
    assert missing.status_code == 400 and missing.get_json()["problems"][0]["field"] == "run_id"
    assert app.get("/diagnostics?use_case=tfd&run_id=0123456789abcdef").status_code == 404
    other = trained["eta"].outcome.run_id  # an eta run is not a tfd run
    assert app.get(f"/diagnostics?use_case=tfd&run_id={other}").status_code == 404
    name = app.get(f"/diagnostics?use_case=tfd&run_id={trained['tfd'].outcome.run_id}&name=nope")
    assert name.status_code == 404 and name.get_json()["problems"][0]["field"] == "name"
    assert app.post("/", data=b"x" * 70_000, content_type="application/json").status_code == 413
    assert app.post("/", data=b"not json", content_type="application/json").status_code == 400


def test_mlflow_unreachable_is_503_and_starts_nothing(batch_settings, streams, function_client):
    app = function_client("train", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    response = app.post("/", json={"use_case": "eta"})
    assert response.status_code == 503 and "MLflow unreachable" in response.get_json()["error"]
    assert TrainingState.open(batch_settings, "eta").holder() is None
    assert app.get("/runs?use_case=eta").status_code == 503
    assert json.loads(app.get("/status?use_case=eta").get_data())["state"] != "running"
