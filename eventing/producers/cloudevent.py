"""Wrap payloads in CloudEvents (1.x SDK): type and id from the use case, partition key set.

Examples
--------
>>> from coelho.core import tfd
>>> event = to_cloudevent("tfd", tfd.EXAMPLE)
>>> event["type"], event["source"], event["partitionkey"]
('io.coelho.tfd.transaction.v1', '/coelho/producers/tfd', 'user_000042')
>>> event["id"] == tfd.EXAMPLE["transaction_id"], event["time"] == tfd.EXAMPLE["timestamp"]
(True, True)
>>> to_json_line(event)[:60]
'{"specversion": "1.0", "id": "5f0c6c3e-0d51-4c1e-9a55-0c1a4a'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent

from coelho.core import USE_CASES

__all__ = ["SOURCE_PREFIX", "source_for", "to_cloudevent", "to_json_line"]

SOURCE_PREFIX = "/coelho/producers/"


def source_for(key: str) -> str:
    """The CloudEvent `source` of a use case's producer, e.g. ``/coelho/producers/eta``."""
    return SOURCE_PREFIX + key


def to_cloudevent(key: str, payload: Mapping[str, Any]) -> CloudEvent:
    """A CloudEvent carrying `payload` of use case `key` as JSON data.

    `id` is the payload's id field (stable across resends, so consumers can deduplicate on
    source + id), `time` its timestamp, and the `partitionkey` extension its partition field
    (user, driver or session), which Kafka bindings use as the record key.
    """
    try:
        use_case = USE_CASES[key]
    except KeyError:
        raise ValueError(f"unknown use case {key!r}; expected one of {sorted(USE_CASES)}") from None
    attributes = {
        "type": use_case.event_type,
        "source": source_for(key),
        "id": str(payload[use_case.id_field]),
        "time": payload["timestamp"],
        "partitionkey": str(payload[use_case.partition_field]),
        "datacontenttype": "application/json",
    }
    return CloudEvent(attributes, dict(payload))


def to_json_line(event: CloudEvent) -> str:
    """The structured-mode JSON document of `event` on one line (no trailing newline)."""
    _, body = to_structured(event)
    return body.decode("utf-8")
