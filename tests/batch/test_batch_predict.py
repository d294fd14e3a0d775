"""The batch-predict functions: the online predict functions' input errors, 503 without a model, versions."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from coelho.runtime import batch_predict_service
from support import INVALID_PAYLOADS, sample, wait_for

CASES = [(key, change, fields) for key, cases in INVALID_PAYLOADS.items() for change, fields in cases]


@pytest.mark.parametrize(("key", "change", "fields"), CASES, ids=[f"{k}-{','.join(f)}" for k, _, f in CASES])
def test_bad_events_are_refused_naming_each_field_like_online_predict(function_client, key, change, fields):
    app = function_client(f"{key}_batch_predict", COELHO_MLFLOW="off")
    response = app.post("/", data=json.dumps(sample(key, **change)), content_type="application/json")
    assert response.status_code == 422
    assert [p["field"] for p in response.get_json()["problems"]] == fields


def test_requests_it_does_not_serve(function_client):
    app = function_client("tfd_batch_predict", COELHO_MLFLOW="off")
    assert app.get("/").status_code == 405
    assert app.get("/nope").status_code == 404
    assert app.post("/", data=b"{" + b" " * 70_000 + b"}", content_type="application/json").status_code == 413
    bad = app.post("/?version=first", json=sample("tfd"))
    assert bad.status_code == 400 and bad.get_json()["problems"][0]["field"] == "version"
    assert app.get("/healthz").get_json() == {"ok": True}


def test_no_batch_model_is_503_naming_the_reason(batch_settings, trained, function_client):
    off = function_client("eta_batch_predict", COELHO_MLFLOW="off").post("/", json=sample("eta"))
    assert off.status_code == 503 and "MLflow is disabled" in off.get_json()["error"]
    client = MlflowClient(batch_settings.tracking_uri(), batch_settings.tracking_uri())
    champion = trained["eta"].outcome.version
    client.delete_registered_model_alias("coelho-eta-batch", "champion")  # versions, but none is champion
    try:
        app = function_client("eta_batch_predict")
        response = app.post("/", json=sample("eta"))
        assert response.status_code == 503
        assert "no version of coelho-eta-batch holds the champion alias" in response.get_json()["error"]
        assert not any(v["champion"] for v in app.get("/versions").get_json()["versions"])
    finally:
        client.set_registered_model_alias("coelho-eta-batch", "champion", str(champion))


def test_versions_a_chosen_version_and_a_moved_alias(batch_settings, trained, function_client, monkeypatch):
    champion, run_id = trained["tfd"].outcome.version, trained["tfd"].outcome.run_id
    monkeypatch.setattr(batch_predict_service, "CHAMPION_CHECK_S", 0.2)  # the watcher looks five times a second
    app = function_client("tfd_batch_predict")
    versions = app.get("/versions").get_json()["versions"]
    entry = next(v for v in versions if v["version"] == champion)
    assert entry["champion"] and entry["metric"] == "FBeta" and entry["run_id"] == run_id and entry["score"] > 0
    assert set(entry) == {"version", "champion", "score", "metric", "run_id", "created_at"}
    chosen = app.post(f"/?version={champion}", json=sample("tfd"))
    assert chosen.status_code == 200 and chosen.get_json()["model_version"] == champion
    missing = app.post("/?version=999", json=sample("tfd"))
    assert missing.status_code == 404 and missing.get_json()["problems"][0]["field"] == "version"

    # a second version of the same run; the alias moves to it, and back: each answer follows within one check
    from coelho.adapters.mlflow_batch import BatchRegistry
    from coelho.core import USE_CASES

    registry = BatchRegistry(USE_CASES["tfd"], batch_settings.tracking_uri(), batch_settings.artifact_root())
    model, _ = registry.load_version(champion)
    other = registry.register(run_id, model, {"coelho.note": "copy, no champion tags"})
    client = MlflowClient(batch_settings.tracking_uri(), batch_settings.tracking_uri())

    def served() -> int:
        return app.post("/", json=sample("tfd")).get_json()["model_version"]

    try:
        client.set_registered_model_alias("coelho-tfd-batch", "champion", str(other))
        wait_for(lambda: served() == other, timeout=60, what="the moved alias to be served")
    finally:
        client.set_registered_model_alias("coelho-tfd-batch", "champion", str(champion))
    wait_for(lambda: served() == champion, timeout=60, what="the alias moved back to be served")
    client.delete_model_version("coelho-tfd-batch", str(other))
    assert app.get("/status").get_json()["champion"] == champion
