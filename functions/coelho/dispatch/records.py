"""Kafka records to CloudEvents, exactly as a KafkaSource does, and back for the dead-letter topic.

A record that already is a CloudEvent (binary-mode `ce_*` headers, or a structured
`application/cloudevents+json` body) passes through unchanged. Any other record is wrapped:
id `partition:P/offset:O`, type `dev.knative.kafka.event`, source
`/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`, subject `partition:P#O`, time from the
record timestamp, `key`/`partitionkey` from the record key, one `kafkaheader<name>` extension
per header, and the raw value as data.

Examples
--------
>>> record = Record("orders", 2, 41, key=b"user-7", value=b'{"a": 1}',
...                 headers=(("X-Trace-Id", b"abc"), ("content-type", b"application/json")),
...                 timestamp_ms=1767225600000)
>>> event = to_cloudevent(record, "/apis/v1/namespaces/coelho/kafkasources/tfd-events")
>>> event.attributes["id"], event.attributes["subject"], event.attributes["kafkaheaderxtraceid"]
('partition:2/offset:41', 'partition:2#41', 'abc')
>>> event.attributes["source"], event.attributes["time"], event.attributes["partitionkey"]
('/apis/v1/namespaces/coelho/kafkasources/tfd-events#orders', '2026-01-01T00:00:00Z', 'user-7')
>>> event.content_type
'application/json'
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

__all__ = ["Event", "Record", "WRAPPED_TYPE", "from_kafka_headers", "to_cloudevent", "to_kafka_headers"]

WRAPPED_TYPE = "dev.knative.kafka.event"
STRUCTURED = "application/cloudevents"
REQUIRED = ("id", "source", "type", "specversion")


@dataclass(frozen=True)
class Record:
    """The parts of a Kafka record a KafkaSource looks at."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Event:
    """A CloudEvent ready for HTTP binary mode: context attributes, data and its content type."""

    attributes: dict[str, str]
    data: bytes | None
    content_type: str | None = None
    wrapped: bool = field(default=False, compare=False)

    def http_headers(self) -> dict[str, str]:
        """`ce-*` headers (percent-encoded as the HTTP binding requires) plus Content-Type."""
        headers = {f"ce-{name}": _percent(value) for name, value in self.attributes.items()}
        if self.content_type:
            headers["Content-Type"] = self.content_type
        return headers

    def with_extensions(self, extensions: Mapping[str, str]) -> Event:
        """A copy with `extensions` added (or replaced)."""
        return Event({**self.attributes, **extensions}, self.data, self.content_type, self.wrapped)


def to_cloudevent(record: Record, source: str, key_type: str = "string",
                  overrides: Mapping[str, str] | None = None) -> Event:
    """The CloudEvent a KafkaSource named by `source` delivers for `record`."""
    event = _binary(record) or _structured(record) or _wrap(record, source, key_type)
    return event.with_extensions(overrides) if overrides else event


def from_kafka_headers(headers: tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    """`ce_*` record headers as CloudEvent attributes."""
    return {name[3:]: value.decode() for name, value in headers if name.startswith("ce_") and value is not None}


def to_kafka_headers(event: Event) -> list[tuple[str, bytes]]:
    """Binary-mode Kafka headers for `event` (CloudEvents Kafka protocol binding)."""
    headers = [(f"ce_{name}", value.encode()) for name, value in event.attributes.items()]
    if event.content_type:
        headers.append(("content-type", event.content_type.encode()))
    return headers


def _content_type(record: Record) -> str | None:
    for name, value in record.headers:
        if name.lower() == "content-type" and value is not None:
            return value.decode()
    return None


def _binary(record: Record) -> Event | None:
    attributes = from_kafka_headers(record.headers)
    if not all(attributes.get(name) for name in REQUIRED):
        return None
    attributes.pop("datacontenttype", None)
    return Event(attributes, record.value, _content_type(record))


def _structured(record: Record) -> Event | None:
    content_type = _content_type(record) or ""
    if not content_type.lower().startswith(STRUCTURED) or record.value is None:
        return None
    try:
        doc = json.loads(record.value)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(name), str) for name in REQUIRED):
        return None
    if "data_base64" in doc:
        data: bytes | None = base64.b64decode(doc.pop("data_base64"))
    elif "data" in doc:
        value = doc.pop("data")
        data = value.encode() if isinstance(value, str) else json.dumps(value).encode()
    else:
        data = None
    content = doc.pop("datacontenttype", "application/json" if data is not None else None)
    return Event({k: _attribute(v) for k, v in doc.items()}, data, content)


def _wrap(record: Record, source: str, key_type: str) -> Event:
    attributes = {
        "specversion": "1.0",
        "id": f"partition:{record.partition}/offset:{record.offset}",
        "source": f"{source}#{record.topic}",
        "type": WRAPPED_TYPE,
        "subject": f"partition:{record.partition}#{record.offset}",
    }
    if record.timestamp_ms is not None:
        moment = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        attributes["time"] = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds").replace(
            "+00:00", "Z"
        )
    if record.key is not None:
        key = _key(record.key, key_type)
        attributes["key"] = attributes["partitionkey"] = key
    for name, value in record.headers:
        if name.lower() != "content-type" and value is not None:
            attributes["kafkaheader" + re.sub(r"[^a-z0-9]", "", name.lower())] = value.decode(errors="replace")
    return Event(attributes, record.value, _content_type(record), wrapped=True)


def _key(raw: bytes, key_type: str) -> str:
    if key_type == "int" and len(raw) in (4, 8):
        return str(int.from_bytes(raw, "big", signed=True))
    if key_type == "float" and len(raw) in (4, 8):
        return repr(struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0])
    if key_type == "byte-array":
        return base64.b64encode(raw).decode()
    return raw.decode(errors="replace")


def _attribute(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


#: HTTP binding 3.1.3.2: percent-encode space, '"', '%' and anything outside printable ASCII.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_NEEDS_PERCENT = re.compile(f"[^{re.escape(_HEADER_SAFE)}]")


def _percent(value: str) -> str:
    return quote(value, safe=_HEADER_SAFE) if _NEEDS_PERCENT.search(value) else value
