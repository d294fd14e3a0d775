"""Knative's delivery rules against a real local HTTP sink: retries, non-retryable statuses, dead letters."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from coelho.dispatch.delivery import Sender, is_retryable
from coelho.dispatch.manifest import DeliverySpec
from coelho.dispatch.records import Event

EVENT = Event({"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t"}, b'{"a": 1}', "application/json")


class Sink:
    """An HTTP server answering with a scripted list of statuses (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict[str, str]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                self.rfile.read(int(self.headers["Content-Length"]))
                sink.requests.append(dict(self.headers))
                status = sink.statuses.pop(0) if sink.statuses else 200
                body = b'{"error": "invalid event"}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Letters:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, event: Event, key: bytes | None) -> bool:
        self.events.append(event)
        return True


@pytest.fixture
def sink_factory() -> Iterator:
    made: list[Sink] = []

    def build(statuses: list[int]) -> Sink:
        made.append(Sink(statuses))
        return made[-1]

    yield build
    for sink in made:
        sink.server.shutdown()
        sink.server.server_close()


SENDERS: list[Sender] = []


@pytest.fixture(autouse=True)
def _close_senders() -> Iterator[None]:
    yield
    while SENDERS:
        SENDERS.pop().close()


def _sender(url: str, letters: Letters | None, retry: int = 3, waits: list[float] | None = None) -> Sender:
    spec = DeliverySpec(retry=retry, backoff_policy="exponential", backoff_delay=0.01, timeout=2.0)
    SENDERS.append(Sender(url, spec, letters, sleep=(waits.append if waits is not None else lambda _s: None)))
    return SENDERS[-1]


@pytest.mark.parametrize(("status", "retried"), [(500, True), (503, True), (404, True), (408, True), (409, True),
                                                 (429, True), (400, False), (401, False), (422, False)])
def test_retryable_statuses(status, retried):
    assert is_retryable(status) is retried


def test_retries_then_delivers_in_binary_mode(sink_factory):
    sink, letters, waits = sink_factory([503, 500]), Letters(), []
    assert _sender(sink.url, letters, waits=waits).deliver(EVENT) == "delivered"
    assert len(sink.requests) == 3 and not letters.events
    assert waits == [0.02, 0.04]
    assert sink.requests[-1]["ce-id"] == "e-1" and sink.requests[-1]["Content-Type"] == "application/json"


def test_non_retryable_status_goes_straight_to_dead_letter_with_reason(sink_factory):
    sink, letters = sink_factory([422]), Letters()
    assert _sender(sink.url, letters).deliver(EVENT) == "dead-lettered"
    assert len(sink.requests) == 1
    letter = letters.events[0].attributes
    assert letter["knativeerrorcode"] == "422" and letter["knativeerrordest"] == sink.url
    assert base64.b64decode(letter["knativeerrordata"]) == b'{"error": "invalid event"}'
    assert letter["id"] == "e-1"


def test_exhausted_retries_dead_letter_and_without_a_sink_drop(sink_factory):
    sink, letters = sink_factory([500] * 10), Letters()
    assert _sender(sink.url, letters, retry=2).deliver(EVENT) == "dead-lettered"
    assert len(sink.requests) == 3 and letters.events[0].attributes["knativeerrorcode"] == "500"
    sink = sink_factory([500] * 10)
    assert _sender(sink.url, None, retry=1).deliver(EVENT) == "dropped"


def test_unreachable_sink_waits_like_the_activator_then_dead_letters():
    letters = Letters()
    spec = DeliverySpec(retry=1, backoff_delay=0.01, timeout=0.3)
    sender = Sender("http://127.0.0.1:9/", spec, letters)
    SENDERS.append(sender)
    assert sender.deliver(EVENT) == "dead-lettered"
    letter = letters.events[0].attributes
    assert "knativeerrorcode" not in letter and b"dispatch error" in base64.b64decode(letter["knativeerrordata"])
