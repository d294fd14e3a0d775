"""Event streams and pre-encoded HTTP requests: built before any timing starts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from coelho.core import USE_CASES
from coelho.producers.run import make_generator

__all__ = ["Request", "cloudevent_request", "predict_request", "stream", "without_label"]

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Request:
    """One POST, encoded once: the same bytes go to the function under test and to its baseline."""

    headers: dict[str, str]
    body: bytes


def stream(key: str, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` schema-valid events of use case `key`, after a JSON round trip (what a server decodes)."""
    events = islice(make_generator(key, seed=seed, start=START), count)
    return [json.loads(json.dumps(event)) for event in events]


def cloudevent_request(key: str, payload: dict[str, Any]) -> Request:
    """A binary-mode CloudEvent for the learn function; the id is the event's own id."""
    uc = USE_CASES[key]
    attributes = {"type": uc.event_type, "source": f"/bench/{key}", "id": str(payload[uc.id_field])}
    headers, body = to_binary(CloudEvent(attributes, payload))
    return Request(dict(headers), body)


def without_label(key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The event as a prediction client sends it: without the label."""
    label = USE_CASES[key].label_field
    return {name: value for name, value in payload.items() if name != label}


def predict_request(key: str, payload: dict[str, Any]) -> Request:
    """A raw JSON event (no label) for the predict function."""
    body = json.dumps(without_label(key, payload), separators=(",", ":")).encode()
    return Request({"Content-Type": "application/json"}, body)
