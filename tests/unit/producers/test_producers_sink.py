"""HTTP delivery against a scripted sink on 127.0.0.1: retries, rejections, keep-alive."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from coelho.producers import DeliveryError, HttpSink, UnorderedSink, produce, to_cloudevent
from coelho.producers.sink import IDLE_RECONNECT_S

Events = Callable[..., list[dict[str, Any]]]


@dataclass
class ScriptedSink:
    """Answers requests with the scripted statuses (then 202) and records what it got."""

    url: str
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the producer's session expects
    disable_nagle_algorithm = True  # headers and body go out in two writes
    script: ScriptedSink

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.script.received.append(
            ({k.lower(): v for k, v in self.headers.items()}, body, self.client_address[1]))
        if self.script.delays:
            time.sleep(self.script.delays.pop(0))
        status = self.script.statuses.pop(0) if self.script.statuses else 202
        answer = json.dumps({"status": status, "detail": "scripted"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def sink() -> Iterator[ScriptedSink]:
    script = ScriptedSink(url="")
    handler = type("ScriptedHandler", (_Handler,), {"script": script})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    script.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield script
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def event(events: Events) -> Any:
    return to_cloudevent("tfd", events("tfd", 1)[0])


def test_retries_on_503_then_delivers_with_doubling_backoff(sink: ScriptedSink, event: Any) -> None:
    sink.statuses = [503, 503, 200]
    waits: list[float] = []
    with HttpSink(sink.url, initial_backoff=0.01, sleep=waits.append) as http:
        assert http.send(event) is True
    assert (http.stats.sent, http.stats.delivered, http.stats.retries) == (1, 1, 2)
    assert waits == [0.01, 0.02]
    assert [h["ce-id"] for h, _, _ in sink.received] == [event["id"]] * 3


@pytest.mark.parametrize("status", [404, 408, 409, 429, 500, 502])
def test_transient_statuses_are_retried(sink: ScriptedSink, event: Any, status: int) -> None:
    sink.statuses = [status]
    with HttpSink(sink.url, sleep=lambda _: None) as http:
        assert http.send(event) is True
    assert http.stats.retries == 1 and len(sink.received) == 2


@pytest.mark.parametrize("status", [400, 413, 422])
def test_other_client_errors_are_rejected_once_and_logged(
    sink: ScriptedSink, event: Any, status: int, caplog: pytest.LogCaptureFixture,
) -> None:
    sink.statuses = [status]
    with caplog.at_level(logging.ERROR), HttpSink(sink.url, sleep=lambda _: None) as http:
        assert http.send(event) is False
    assert (http.stats.rejected, http.stats.retries, len(sink.received)) == (1, 0, 1)
    assert "scripted" in caplog.text and str(status) in caplog.text


def test_a_timeout_is_retried(sink: ScriptedSink, event: Any) -> None:
    sink.delays = [1.0]
    with HttpSink(sink.url, timeout=0.2, sleep=lambda _: None) as http:
        assert http.send(event) is True
    assert http.stats.retries == 1


def test_an_unreachable_sink_fails_after_the_attempt_budget(event: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    with HttpSink(f"http://127.0.0.1:{port}/", max_attempts=4, initial_backoff=1.0,
                  max_backoff=2.5, sleep=waits.append) as http:
        with pytest.raises(DeliveryError, match="after 4 attempts"):
            http.send(event)
    assert waits == [1.0, 2.0, 2.5]
    assert (http.stats.failed, http.stats.retries, http.stats.delivered) == (1, 3, 0)


def test_produce_posts_binary_cloudevents_to_k_sink_over_one_connection(
    sink: ScriptedSink, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("K_SINK", sink.url)
    report = produce("ecci", rate=0, count=25, seed=4)
    assert report.produced == report.delivery.delivered == len(sink.received) == 25
    headers, body, _ = sink.received[0]
    payload = json.loads(body)
    assert headers["ce-type"] == "io.coelho.ecci.interaction.v1"
    assert headers["ce-source"] == "/coelho/producers/ecci"
    assert headers["ce-id"] == payload["event_id"]
    assert headers["ce-partitionkey"] == payload["session_id"]
    assert headers["content-type"] == "application/json"
    assert len({port for _, _, port in sink.received}) == 1


def test_an_unordered_sink_keeps_several_events_in_flight_and_delivers_each_once(
    sink: ScriptedSink, events: Events,
) -> None:
    sink.delays = [0.2] * 8  # the first eight answers are slow: the window fills, then drains
    payloads = events("tfd", 24)
    with UnorderedSink(sink.url, in_flight=4) as window:
        for payload in payloads:
            window.send(to_cloudevent("tfd", payload))
    assert window.stats.delivered == window.stats.sent == 24
    assert sorted(json.loads(body)["transaction_id"] for _, body, _ in sink.received) == sorted(
        p["transaction_id"] for p in payloads)
    assert len({port for _, _, port in sink.received}) == 4  # one keep-alive connection per slot


def test_an_unordered_sink_that_runs_out_of_attempts_stops_the_producer(event: Any) -> None:
    window = UnorderedSink("http://127.0.0.1:9/", in_flight=2, max_attempts=1)
    window.send(event)
    with pytest.raises(DeliveryError):
        window.close()


def test_produce_sends_to_the_ordered_sink_and_the_unordered_one(sink: ScriptedSink) -> None:
    report = produce("eta", rate=0, count=30, seed=2, sink=sink.url, unordered_sink=[sink.url], in_flight=5)
    assert report.delivery.delivered == 30
    ids = [json.loads(body)["trip_id"] for _, body, _ in sink.received]
    assert len(ids) == 60 and len(set(ids)) == 30


def test_an_idle_connection_is_replaced_before_the_server_could_close_it(sink: ScriptedSink, event: Any) -> None:
    """gunicorn closes a keep-alive connection after 2 s idle; reusing one then can meet a reset mid-request."""
    http = HttpSink(sink.url)
    http.send(event)
    http.send(event)
    time.sleep(IDLE_RECONNECT_S + 0.2)
    http.send(event)
    ports = [port for _, _, port in sink.received]
    assert ports[0] == ports[1] != ports[2]
    http.close()
