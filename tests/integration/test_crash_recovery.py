"""kill -9 the learner mid-stream, again and again: every event is applied exactly once.

A sender streams events one at a time and retries each until it gets a 2xx (at-least-once, as
a KafkaSource does). Meanwhile the learner's process group is SIGKILLed at random points and
restarted. Afterwards the learner's model, its metrics and the predictor's answers must equal a
reference model trained once, in order, on the same events.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests

from support import binary, make_event, reference, stream
from support.servers import FunctionServer

N_EVENTS = 1500
KILLS = 3


def post_until_accepted(session: requests.Session, url: str, event, deadline: float) -> int:
    """Deliver one event at least once; returns the number of attempts."""
    headers, body = binary(event)
    attempts = 0
    while True:
        attempts += 1
        try:
            response = session.post(url, headers=headers, data=body, timeout=5)
            if response.ok:
                return attempts
            assert response.status_code >= 500, response.text
        except requests.RequestException:  # refused, reset, or cut mid-response by the kill
            pass
        assert time.monotonic() < deadline, "delivery did not succeed in time"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["tfd", "eta", "ecci"])
def test_sigkill_mid_stream_then_equal_to_reference(env, tmp_path, key):
    events = stream(key, N_EVENTS, seed=11)
    probes = stream(key, 50, seed=99)
    rng = random.Random(2026)
    kill_after = sorted(rng.sample(range(50, N_EVENTS - 50), KILLS))
    learner = FunctionServer(f"{key}-learn", env, tmp_path, COELHO_CHECKPOINT_EVERY="200",
                             COELHO_LEASE_SECONDS="1").start()
    acked = 0
    kills = 0
    progress = threading.Condition()

    def killer() -> None:
        nonlocal kills
        for threshold in kill_after:
            with progress:
                progress.wait_for(lambda limit=threshold: acked >= limit, timeout=120)
            time.sleep(rng.uniform(0, 0.01))  # land anywhere: mid-request, mid-append, mid-checkpoint
            learner.kill()
            kills += 1
            learner.start()

    thread = threading.Thread(target=killer)
    thread.start()
    session = requests.Session()
    deadline = time.monotonic() + 240
    attempts = 0
    try:
        for i, payload in enumerate(events):
            attempts += post_until_accepted(session, learner.url + "/", make_event(key, payload), deadline)
            with progress:
                acked = i + 1
                progress.notify_all()
            if i % 97 == 0:  # a redelivery of something already acknowledged
                post_until_accepted(session, learner.url + "/", make_event(key, events[i // 2]), deadline)
        thread.join(timeout=120)
        assert kills == KILLS
        status = session.get(learner.url + "/status", timeout=5).json()
        expected = reference(key, events)
        assert status["events_applied"] == N_EVENTS
        assert status["model_version"] == N_EVENTS
        assert status["metrics"] == expected.metrics.report()
        with FunctionServer(f"{key}-predict", env, tmp_path) as predictor:
            for probe in probes:
                answer = session.post(predictor.url + "/", json=probe, timeout=5).json()
                assert answer["model_version"] == N_EVENTS
                for field, value in expected.predict(probe).items():
                    assert answer[field] == value, (field, probe)
    finally:
        thread.join(timeout=1)
        learner.stop()
    assert attempts >= N_EVENTS
