"""MLflow behind a real tracking server: Postgres-backed round trip, and a server outage mid-stream."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pandas as pd
import pytest

from coelho.core import USE_CASES
from support import stream
from support.registry import feed, open_learner


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


@pytest.mark.slow
def test_postgres_backed_server_round_trip(ml_settings, learners, mlflow_server, postgres):
    import mlflow

    server = mlflow_server(postgres.create_database(f"mlflow_{uuid.uuid4().hex[:8]}"))
    settings = dataclasses.replace(ml_settings, mlflow_tracking_uri=server.url)
    events = stream("eta", 1_250, seed=11)
    learner = open_learner("eta", settings, learners)
    feed(learner, events[:1_200])
    learner.close()
    status = learner.status()["mlflow"]
    assert status["ok"] and status["pending"] == 0 and status["champion_version"] == status["last_version"]

    client = mlflow.MlflowClient(server.url)
    run = client.get_run(status["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["use_case"] == "eta"
    assert max(m.step for m in client.get_metric_history(run.info.run_id, "MAE")) == 1_200

    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    try:
        pyfunc = mlflow.pyfunc.load_model("models:/coelho-eta@champion")
    finally:
        mlflow.set_tracking_uri("")
        mlflow.set_registry_uri("")
    label = USE_CASES["eta"].label_field
    probes = [{k: v for k, v in e.items() if k != label} for e in events[1_200:]]
    expected = [learner_model_predict(learner, p) for p in probes]
    assert pyfunc.predict(pd.DataFrame(probes))["eta_seconds"].tolist() == expected


def learner_model_predict(learner, payload) -> float:
    assert learner.replica.model is not None
    return learner.replica.model.predict(payload)["eta_seconds"]


@pytest.mark.slow
def test_mlflow_outage_loses_no_event_and_logs_arrive_later(ml_settings, learners, mlflow_server):
    import mlflow

    server = mlflow_server()
    settings = dataclasses.replace(ml_settings, mlflow_tracking_uri=server.url, register_every=2)
    events = stream("tfd", 1_500, seed=13)
    learner = open_learner("tfd", settings, learners)
    feed(learner, events[:500])
    _wait(lambda: learner.status()["mlflow"]["run_id"] and learner.history.outbox.flush(0.1), 60, "first logs")

    server.stop()  # MLflow goes away mid-stream
    feed(learner, events[500:1_000])  # learning goes on: nothing on the event path waits for MLflow
    degraded = _wait(lambda: (s := learner.status())["mlflow"]["ok"] is False and s, 60, "degradation reported")
    assert degraded["events_applied"] == 1_000 and degraded["mlflow"]["pending"] > 0
    assert degraded["mlflow"]["last_error"]

    mlflow_server(port=server.port)  # back on the same port and store
    feed(learner, events[1_000:])
    _wait(lambda: learner.history.outbox.flush(0.5), 120, "buffered logs delivered")
    status = learner.status()
    assert status["events_applied"] == 1_500 and status["accepted_version"] == 1_500
    assert status["mlflow"]["ok"] and status["mlflow"]["pending"] == 0 and status["mlflow"]["dropped"] == 0

    steps = [m.step for m in mlflow.MlflowClient(server.url).get_metric_history(status["mlflow"]["run_id"], "FBeta")]
    # logged while the server was down: every 100 events (the phase depends on when the first time-based log fell)
    assert len([step for step in steps if 500 < step <= 1_000]) >= 4
    assert max(steps) == 1_500
