"""Drift CloudEvents (`io.coelho.drift.detected.v1`) from a learner on a real Valkey to a real HTTP sink."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from typing import Any

import pytest

from coelho.adapters.redis_state import RedisState
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.producers.run import make_generator
from coelho.runtime.learner import Learner
from support import wait_for

#: ecci, seed 2, from 18:00 UTC, the producer's change after 1500 events: detected at event 1601.
DETECTED_AT = 1601


class Sink:
    """An HTTP server recording the CloudEvents it gets; answers `statuses` in turn, then 202."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = sink.statuses.pop(0) if sink.statuses else 202
                if status < 300:
                    sink.received.append({**{k.lower(): v for k, v in self.headers.items()}, "body": body})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def drifting() -> list[dict[str, Any]]:
    start = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    return list(islice(make_generator("ecci", seed=2, start=start, drift_at=1500), 2000))


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink(statuses=[503])  # the first attempt fails: the notifier retries
    yield server
    server.close()


@pytest.fixture
def learner(settings: Settings) -> Iterator[Callable[[str | None], Learner]]:
    """`learner(sink_url)`: an ecci Learner on the session Valkey, closed at the end."""
    opened: list[Learner] = []

    def make(sink_url: str | None) -> Learner:
        assert settings.redis_url
        state = RedisState.from_url(settings.redis_url, settings.key_prefix, "ecci")
        opened.append(Learner(USE_CASES["ecci"], state, dataclasses.replace(settings, drift_sink=sink_url)))
        return opened[-1]

    yield make
    for each in opened:
        each.close()


def test_a_detection_is_sent_once_as_a_cloudevent_and_not_again_by_the_next_leader(learner, sink, drifting):
    first = learner(sink.url)
    for event in drifting:
        first.handle("/tests/drift", event["event_id"], event)
    first.drain()
    wait_for(lambda: len(sink.received) == 1, timeout=30, what="the drift event")
    got = sink.received[0]
    assert got["ce-type"] == "io.coelho.drift.detected.v1" and got["ce-source"] == "/coelho/ecci-learn"
    assert got["ce-id"] == "ecci-drift-1" and got["ce-subject"] == "ecci"
    assert got["ce-time"] == drifting[DETECTED_AT - 1]["timestamp"]
    assert b'"event": 1601' in got["body"] and b'"detector": "ADWIN(delta=0.0001)"' in got["body"]
    assert first.status()["drift_events"]["delivered"] == 1
    first.close()  # a clean hand-over

    second = learner(sink.url)  # a new leader replays the WAL: the same detection, already delivered
    second.handle("/tests/drift", drifting[0]["event_id"], drifting[0])  # a redelivery makes it lead
    assert second.status()["drift"]["detections"] == 1
    time.sleep(1.0)
    assert len(sink.received) == 1


def test_without_a_sink_nothing_is_sent_and_learning_is_the_same(learner, drifting):
    plain = learner(None)
    for event in drifting:
        plain.handle("/tests/drift", event["event_id"], event)
    status = plain.status()
    assert status["drift"]["last_detected_event"] == DETECTED_AT and status["drift_events"] == {"enabled": False}


def test_an_unreachable_sink_never_blocks_learning(learner, drifting):
    unreachable = learner("http://127.0.0.1:9/")  # discard port: connection refused
    for event in drifting:
        unreachable.handle("/tests/drift", event["event_id"], event)
    status = unreachable.status()
    assert status["events_applied"] == len(drifting) and status["drift"]["detections"] == 1
    assert status["drift_events"]["pending"] == 1 and status["drift_events"]["delivered"] == 0
