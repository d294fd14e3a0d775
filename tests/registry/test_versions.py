"""The predict function serves any registered version (`?version=N`) and lists them (`GET /versions`)."""

from __future__ import annotations

from collections.abc import Callable

import functions_framework
import pytest
from flask.testing import FlaskClient

from coelho.adapters.mlflow_registry import MlflowRegistry
from coelho.config import Settings
from coelho.core import USE_CASES
from support import ROOT, stream
from support.registry import feed, open_learner

PREDICT_SOURCE = str(ROOT / "functions" / "predict" / "main.py")


@pytest.fixture
def predict_app(ml_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[..., FlaskClient]:
    """`predict_app(**env)`: the tfd-predict function built by functions-framework on the test's settings."""

    def build(**env: str) -> FlaskClient:
        base = {"REDIS_URL": ml_settings.redis_url or "", "COELHO_KEY_PREFIX": ml_settings.key_prefix,
                "COELHO_DATA_DIR": str(ml_settings.data_dir), "COELHO_MLFLOW": "on",
                "COELHO_PREDICT_REFRESH_MS": "50"}
        for name, value in {**base, **env}.items():
            monkeypatch.setenv(name, value)
        return functions_framework.create_app("tfd_predict", PREDICT_SOURCE, "http").test_client()

    return build


def test_every_registered_version_is_listed_and_answers(ml_settings, learners, predict_app):
    events = stream("tfd", 1_300, seed=4)
    learner = open_learner("tfd", ml_settings, learners)  # a checkpoint every 300 events, each registered
    feed(learner, events[:1_200])
    learner.close()
    champion = learner.status()["mlflow"]["champion_version"]
    assert champion is not None

    app = predict_app()
    listing = app.get("/versions").get_json()
    assert "error" not in listing
    rows = listing["versions"]
    assert [row["events_applied"] for row in rows] == [1_200, 900, 600, 300]  # newest first
    assert [row["version"] for row in rows] == sorted((row["version"] for row in rows), reverse=True)
    assert [row["version"] for row in rows if row["champion"]] == [champion]
    assert {row["metric"] for row in rows} == {"RollingFBeta"}
    assert rows[0]["score"] is not None and rows[0]["created_at"].endswith("+00:00")

    registry = MlflowRegistry(USE_CASES["tfd"], ml_settings.tracking_uri(), ml_settings.artifact_root(),
                              ml_settings.resolved_signing_key())
    probe = {k: v for k, v in events[1_250].items() if k != "is_fraud"}
    for row in (rows[-1], rows[0]):  # the oldest version and the newest
        answer = app.post(f"/?version={row['version']}", json=probe)
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        assert (body["model_source"], body["model_version"]) == ("mlflow", row["version"])
        expected = registry.load_version(row["version"]).model.predict(probe)
        assert body["fraud_probability"] == expected["fraud_probability"]
    assert app.post("/", json=probe).get_json()["model_source"] == "live"

    missing = app.post("/?version=999", json=probe)
    assert missing.status_code == 404
    assert missing.get_json()["problems"][0]["field"] == "version" and "999" in missing.get_json()["error"]
    for bad in ("abc", "0", "-1", "1.5"):
        response = app.post(f"/?version={bad}", json=probe)
        assert response.status_code == 400 and response.get_json()["problems"][0]["field"] == "version", bad


def test_without_mlflow_versions_say_why(predict_app):
    app = predict_app(COELHO_MLFLOW="off")
    assert app.get("/versions").get_json() == {"versions": [], "error": "MLflow is disabled (COELHO_MLFLOW=off)"}
    probe = {k: v for k, v in stream("tfd", 1, seed=2)[0].items() if k != "is_fraud"}
    response = app.post("/?version=1", json=probe)
    assert response.status_code == 503 and "COELHO_MLFLOW=off" in response.get_json()["error"]
