"""delta-sink through functions-framework: rows in real Delta tables, once per event, bad input refused."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from coelho.core import USE_CASES
from support import binary, make_event, sample, stream, structured

KEYS = ["tfd", "eta", "ecci"]


def table(settings, key: str) -> list[dict]:
    return DeltaTable(settings.delta_uri(key)).to_pyarrow_table().to_pylist()


def test_each_use_case_lands_in_its_table_with_flattened_columns(client, settings):
    app = client("delta_sink")
    for key in KEYS:
        for payload in stream(key, 5, seed=3):
            headers, body = binary(make_event(key, payload))
            assert app.post("/", headers=headers, data=body).status_code == 200
    for key in KEYS:
        rows = table(settings, key)
        assert sorted(r["ce_id"] for r in rows) == sorted(str(p[USE_CASES[key].id_field]) for p in stream(key, 5, 3))
        assert all(r["ce_source"] == f"/tests/{key}" and r["kafka_offset"] is None for r in rows)
    tfd = table(settings, "tfd")[0]
    assert isinstance(tfd["location_lat"], float) and tfd["event_time"].tzinfo is not None
    status = app.get("/status").get_json()
    assert {key: status["tables"][key]["rows"] for key in KEYS} == {"tfd": 5, "eta": 5, "ecci": 5}


def test_same_events_delivered_twice_are_written_once(client, settings):
    app = client("delta_sink")
    events = [make_event("eta", payload) for payload in stream("eta", 12, seed=5)]
    for mode in (binary, structured, binary):
        for event in events:
            headers, body = mode(event)
            assert app.post("/", headers=headers, data=body).status_code == 200
    ids = [row["ce_id"] for row in table(settings, "eta")]
    assert len(ids) == len(set(ids)) == 12
    assert app.get("/status").get_json()["tables"]["eta"]["duplicates"] == 24


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        (make_event("tfd", sample("tfd"), type="io.example.unknown"), ["type"]),
        (make_event("tfd", sample("tfd", amount="lots", location={"lat": 1.0})), ["amount", "location.lon"]),
    ],
)
def test_invalid_event_is_refused_naming_its_fields(client, settings, event, fields):
    app = client("delta_sink")
    headers, body = binary(event)
    response = app.post("/", headers=headers, data=body)
    assert response.status_code == 422
    assert [p["field"] for p in response.get_json()["problems"]] == fields
    assert app.get("/status").get_json()["tables"] == {}
