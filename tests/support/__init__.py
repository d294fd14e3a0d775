"""Builders shared by the tests: CloudEvents, payloads and the reference learner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from coelho.core import USE_CASES, OnlineModel

ROOT = Path(__file__).resolve().parents[2]


def sample(key: str, **changes: Any) -> dict[str, Any]:
    """The use case's sample event from eventing/samples, with `changes` applied."""
    payload = json.loads((ROOT / "eventing" / "samples" / f"{key}.json").read_text())
    payload.update(changes)
    return payload


def make_event(key: str, payload: dict[str, Any], **attributes: Any) -> CloudEvent:
    """A CloudEvent of use case `key` carrying `payload` (attributes overridable)."""
    uc = USE_CASES[key]
    base = {
        "type": uc.event_type,
        "source": f"/tests/{key}",
        "id": str(payload.get(uc.id_field, "id-1")),
        "partitionkey": str(payload.get(uc.partition_field, "p")),
    }
    return CloudEvent({**base, **attributes}, payload)


def binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """HTTP binary-mode headers and body."""
    headers, body = to_binary(event)
    return dict(headers), body


def structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """HTTP structured-mode headers and body."""
    headers, body = to_structured(event)
    return dict(headers), body


def reference(key: str, payloads: list[dict[str, Any]], preset: str = "default") -> OnlineModel:
    """A model trained once, in order, on `payloads` (after a JSON round trip, like the WAL)."""
    model = OnlineModel(USE_CASES[key], preset)
    for payload in payloads:
        model.learn(json.loads(json.dumps(payload)))
    return model


def stream(key: str, count: int, seed: int = 1) -> list[dict[str, Any]]:
    """`count` events from the use case's producer, deterministic for `seed`."""
    from datetime import UTC, datetime
    from itertools import islice

    from coelho.producers.run import make_generator

    start = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    return list(islice(make_generator(key, seed=seed, start=start), count))


def table_rows(key: str, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Delta table rows of `payloads` (flattened by the use case's layout, metadata filled in)."""
    from datetime import UTC, datetime

    from coelho.core.table import layout_for

    layout = layout_for(USE_CASES[key])
    ingested = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    uc = USE_CASES[key]
    return [layout.row(p, ce_id=str(p[uc.id_field]), ce_source=f"/tests/{key}", ingested_at=ingested,
                       kafka_partition=0, kafka_offset=i) for i, p in enumerate(payloads)]


def write_table(uri: str, key: str, rows: list[dict[str, Any]], mode: str = "append") -> None:
    """Commit `rows` to the use case's Delta table at `uri` (created on the first write)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from coelho.adapters.delta_store import arrow_schema
    from coelho.core.table import layout_for

    schema = arrow_schema(layout_for(USE_CASES[key]))
    write_deltalake(uri, pa.Table.from_pylist(rows, schema=schema), mode=mode)  # type: ignore[arg-type]
def wait_for(predicate: Any, timeout: float = 120.0, every: float = 0.2, what: str = "condition") -> None:
    """Poll `predicate` until true; fail naming `what` after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def deliver(url: str, key: str, payload: dict[str, Any], session: Any = None, timeout: float = 120.0) -> list[int]:
    """POST one event until a 2xx, as a KafkaSource retries; returns every status seen (0: no answer)."""
    import time

    import requests

    headers, body = binary(make_event(key, payload))
    http = session or requests
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = http.post(url, headers=headers, data=body, timeout=10)
            seen.append(response.status_code)
            if response.ok:
                return seen
            assert response.status_code >= 500, response.text  # a 4xx is never retried: it must not happen here
        except requests.RequestException:
            seen.append(0)
        assert time.monotonic() < deadline, f"no 2xx after {seen}"
        time.sleep(0.05)


#: Bad event payloads per use case (changes applied to the sample) and the fields each must be refused for.
INVALID_PAYLOADS = {
    "tfd": [
        ({"amount": float("nan")}, ["amount"]),
        ({"amount": float("inf")}, ["amount"]),
        ({"amount": -1.0}, ["amount"]),
        ({"amount": "12.5"}, ["amount"]),
        ({"currency": "XXX", "is_fraud": 2}, ["currency", "is_fraud"]),
        ({"cvv_provided": "yes"}, ["cvv_provided"]),
        ({"account_age_days": True}, ["account_age_days"]),
        ({"location": {"lat": 91.0, "lon": 0.0}}, ["location.lat"]),
        ({"device_info": {"os": "iOS"}}, ["device_info.browser"]),
        ({"timestamp": "yesterday"}, ["timestamp"]),
        ({"timestamp": "2026-01-01T00:00:00"}, ["timestamp"]),
        ({"user_agent": "x" * 600}, ["user_agent"]),
        ({"surprise": 1}, ["surprise"]),
    ],
    "eta": [
        ({"estimated_distance_km": float("-inf")}, ["estimated_distance_km"]),
        ({"weather": "Snowstorm", "hour_of_day": 24}, ["weather", "hour_of_day"]),
        ({"simulated_actual_travel_time_seconds": 12.5}, ["simulated_actual_travel_time_seconds"]),
        ({"origin": None}, ["origin"]),
    ],
    "ecci": [
        ({"event_type": "teleport"}, ["event_type"]),
        ({"price": float("nan")}, ["price"]),
        ({"session_event_sequence": 0}, ["session_event_sequence"]),
        ({"device_info": "mobile"}, ["device_info"]),
    ],
}
