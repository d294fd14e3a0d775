"""Records → CloudEvents exactly as KafkaSource does (pass-through or wrap)."""

from __future__ import annotations

import base64
import json
import struct

from coelho.dispatch.records import WRAPPED_TYPE, Event, Record, to_cloudevent, to_kafka_headers

SOURCE = "/apis/v1/namespaces/coelho/kafkasources/tfd-events"


def test_binary_cloudevent_passes_through_unchanged():
    event = Event({"specversion": "1.0", "id": "tx-1", "source": "/coelho/producers/tfd",
                   "type": "io.coelho.tfd.transaction.v1", "partitionkey": "user_1", "time": "2026-03-02T12:00:00Z"},
                  b'{"amount": 1}', "application/json")
    record = Record("transaction_fraud_detection", 1, 9, b"user_1", event.data, tuple(to_kafka_headers(event)), 1)
    out = to_cloudevent(record, SOURCE)
    assert out == event and not out.wrapped


def test_structured_cloudevent_passes_through():
    doc = {"specversion": "1.0", "id": "a", "source": "/s", "type": "t", "datacontenttype": "application/json",
           "data": {"x": 1}}
    record = Record("t", 0, 0, None, json.dumps(doc).encode(),
                    (("content-type", b"application/cloudevents+json; charset=UTF-8"),))
    out = to_cloudevent(record, SOURCE)
    assert out.attributes == {"specversion": "1.0", "id": "a", "source": "/s", "type": "t"}
    assert json.loads(out.data) == {"x": 1} and out.content_type == "application/json"


def test_plain_record_is_wrapped_field_for_field():
    record = Record("orders", 0, 564, b"k-1", b"hello",
                    (("X-Trace-Id", b"abc"), ("content-type", b"text/plain"), ("Retry_Count", b"2")),
                    1772452800123)
    out = to_cloudevent(record, SOURCE)
    assert out.wrapped
    assert out.attributes == {
        "specversion": "1.0",
        "id": "partition:0/offset:564",
        "source": SOURCE + "#orders",
        "type": WRAPPED_TYPE,
        "subject": "partition:0#564",
        "time": "2026-03-02T12:00:00.123Z",
        "key": "k-1",
        "partitionkey": "k-1",
        "kafkaheaderxtraceid": "abc",
        "kafkaheaderretrycount": "2",
    }
    assert out.data == b"hello" and out.content_type == "text/plain"


def test_null_key_gives_no_key_extensions_and_incomplete_ce_headers_are_wrapped():
    record = Record("t", 2, 7, None, b"{}", (("ce_id", b"only-an-id"),), None)
    out = to_cloudevent(record, SOURCE)
    assert "key" not in out.attributes and "partitionkey" not in out.attributes
    assert out.attributes["kafkaheaderceid"] == "only-an-id" and out.attributes["type"] == WRAPPED_TYPE


def test_key_types():
    def key(raw: bytes, kind: str) -> str:
        return to_cloudevent(Record("t", 0, 0, raw, b""), SOURCE, kind).attributes["key"]

    assert key((42).to_bytes(4, "big"), "int") == "42"
    assert key((-5).to_bytes(8, "big", signed=True), "int") == "-5"
    assert key(struct.pack(">d", 1.5), "float") == "1.5"
    assert key(b"\x00\xff", "byte-array") == base64.b64encode(b"\x00\xff").decode()


def test_ce_overrides_are_applied_last():
    out = to_cloudevent(Record("t", 0, 1, None, b""), SOURCE, overrides={"team": "ml"})
    assert out.attributes["team"] == "ml"


def test_http_headers_percent_encode_as_the_binding_requires():
    event = Event({"specversion": "1.0", "id": "a b", "source": "/s", "type": "t", "note": 'café "x" 100%'}, b"", None)
    headers = event.http_headers()
    assert headers["ce-id"] == "a%20b"
    assert headers["ce-note"] == "caf%C3%A9%20%22x%22%20100%25"
