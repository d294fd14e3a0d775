"""Bad input gets a clear error and changes nothing: not the model, the metrics nor the WAL."""

from __future__ import annotations

import json

import pytest

from support import INVALID_PAYLOADS, binary, make_event, sample

KEYS = ["tfd", "eta", "ecci"]

CASES = [(key, change, fields) for key, cases in INVALID_PAYLOADS.items() for change, fields in cases]


def _learn_state(app):
    status = app.get("/status").get_json()
    return status["events_applied"], status["model_version"], status["metrics"]


@pytest.mark.parametrize(("key", "change", "fields"), CASES, ids=[f"{k}-{','.join(f)}" for k, _, f in CASES])
def test_learn_rejects_and_names_each_bad_field(client, redis_client, settings, key, change, fields):
    app = client(f"{key}_learn")
    before = _learn_state(app)
    payload = sample(key, **change)
    body = json.dumps(payload).encode()  # NaN/Infinity literals, as a careless producer would send
    headers, _ = binary(make_event(key, {}))
    response = app.post("/", headers=headers, data=body)
    assert response.status_code == 422
    named = [p["field"] for p in response.get_json()["problems"]]
    assert named == fields
    assert _learn_state(app) == before
    assert redis_client.xlen(f"{settings.key_prefix}:{key}:wal") == 0


@pytest.mark.parametrize(("key", "change", "fields"), CASES, ids=[f"{k}-{','.join(f)}" for k, _, f in CASES])
def test_predict_rejects_and_names_each_bad_field(client, key, change, fields):
    response = client(f"{key}_predict").post("/", data=json.dumps(sample(key, **change)),
                                              content_type="application/json")
    assert response.status_code == 422
    assert [p["field"] for p in response.get_json()["problems"]] == fields


def test_missing_cloudevent_headers_is_400(client):
    app = client("tfd_learn")
    for headers in ({}, {"content-type": "application/json"}, {"ce-id": "1", "ce-source": "/x"}):
        response = app.post("/", headers=headers, data=json.dumps(sample("tfd")))
        assert response.status_code == 400, headers
    assert _learn_state(app)[0] == 0


def test_unknown_event_type_is_422_naming_type(client):
    app = client("tfd_learn")
    headers, body = binary(make_event("tfd", sample("tfd"), type="io.coelho.eta.trip.v1"))
    response = app.post("/", headers=headers, data=body)
    assert response.status_code == 422
    assert response.get_json()["problems"][0]["field"] == "type"


def test_body_that_is_not_json_is_422(client):
    app = client("ecci_learn")
    headers, _ = binary(make_event("ecci", {}))
    response = app.post("/", headers=headers, data=b"{not json")
    assert response.status_code in (400, 422)
    assert response.get_json()["error"]


@pytest.mark.parametrize("target", ["tfd_learn", "tfd_predict"])
def test_oversize_payload_is_413(client, target):
    app = client(target)
    payload = sample("tfd", user_agent="x" * 70_000)
    headers, body = binary(make_event("tfd", payload))
    response = app.post("/", headers=headers if target.endswith("learn") else {"content-type": "application/json"},
                        data=body)
    assert response.status_code == 413
    assert "large" in response.get_json()["error"].lower()


def test_predict_needs_post_and_json(client):
    app = client("eta_predict")
    assert app.get("/").status_code == 405
    response = app.post("/", data=b"[1, 2", content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["problems"][0]["field"] == "$"
