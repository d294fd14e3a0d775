"""CloudEvent attributes per use case, and the JSON-lines output of `produce`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import from_http

from coelho.core import USE_CASES
from coelho.producers import produce, to_cloudevent, to_json_line

Events = Callable[..., list[dict[str, Any]]]

EXPECTED = {
    "tfd": ("io.coelho.tfd.transaction.v1", "transaction_id", "user_id"),
    "eta": ("io.coelho.eta.trip.v1", "trip_id", "driver_id"),
    "ecci": ("io.coelho.ecci.interaction.v1", "event_id", "session_id"),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_attributes_come_from_the_use_case_and_payload(events: Events, key: str) -> None:
    event_type, id_field, partition_field = EXPECTED[key]
    for payload in events(key, 50):
        event = to_cloudevent(key, payload)
        assert event["type"] == event_type == USE_CASES[key].event_type
        assert event["source"] == f"/coelho/producers/{key}"
        assert event["id"] == payload[id_field]
        assert event["partitionkey"] == payload[partition_field]
        assert event["time"] == payload["timestamp"]
        assert event["datacontenttype"] == "application/json"
        assert event.data == payload


def test_binary_mode_puts_attributes_in_headers(events: Events) -> None:
    payload = events("eta", 1)[0]
    headers, body = to_binary(to_cloudevent("eta", payload))
    assert headers["ce-id"] == payload["trip_id"]
    assert headers["ce-partitionkey"] == payload["driver_id"]
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == payload


def test_json_line_round_trips_as_a_structured_cloudevent(events: Events) -> None:
    payload = events("ecci", 1)[0]
    line = to_json_line(to_cloudevent("ecci", payload))
    assert "\n" not in line
    parsed = from_http({"content-type": "application/cloudevents+json"}, line)
    assert parsed["id"] == payload["event_id"] and parsed.data == payload


def test_unknown_use_case_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown use case"):
        to_cloudevent("nope", {})


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_produce_writes_json_lines_that_parse_as_structured_cloudevents(
    tmp_path: Path, start: datetime, key: str,
) -> None:
    out = tmp_path / f"{key}.jsonl"
    report = produce(key, rate=0, count=200, seed=3, out=str(out), start=start)
    lines = out.read_text().splitlines()
    assert report.produced == len(lines) == 200
    for line in lines:
        event = from_http({"content-type": "application/cloudevents+json"}, line)
        assert event["type"] == EXPECTED[key][0]
        assert USE_CASES[key].schema.validate(event.data) == []
    again = tmp_path / "again.jsonl"
    produce(key, rate=0, count=200, seed=3, out=str(again), start=start)
    assert again.read_bytes() == out.read_bytes()
