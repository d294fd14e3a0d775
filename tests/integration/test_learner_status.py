"""The learner's status while the model is busy, and when the event loop may call it inline."""

from __future__ import annotations

import threading

from coelho.adapters.redis_state import RedisState
from coelho.core import USE_CASES
from coelho.runtime.learner import Learner
from support import stream


def test_status_relays_the_published_status_while_the_model_is_busy(settings, redis_client):
    events = stream("eta", 3, seed=2)
    learner = Learner(USE_CASES["eta"], RedisState(redis_client, settings.key_prefix, "eta"), settings)
    held, release = threading.Event(), threading.Event()

    def recovery() -> None:  # holds the model as a long recovery or checkpoint would
        with learner.model_lock:
            held.set()
            release.wait()

    try:
        for n, event in enumerate(events):
            learner.handle("/src", str(n), event)
        learner.publish_status()
        busy_thread = threading.Thread(target=recovery)
        busy_thread.start()
        held.wait()
        status = learner.status()
        release.set()
        busy_thread.join()
        assert status["busy"] is True
        assert status["events_applied"] == len(events)  # as last published
        assert "busy" not in learner.status()
    finally:
        learner.close()


def test_quick_only_while_leading_without_recovery(settings, redis_client):
    state = RedisState(redis_client, settings.key_prefix, "tfd")
    learner = Learner(USE_CASES["tfd"], state, settings)
    seen_while_taking_the_lease = []
    try_acquire = state.try_acquire

    def probing_try_acquire(holder: str, ttl_ms: int) -> str | None:
        seen_while_taking_the_lease.append(learner.quick)
        return try_acquire(holder, ttl_ms)

    state.try_acquire = probing_try_acquire  # type: ignore[method-assign]
    try:
        assert not learner.quick  # the first event takes the lease and builds the model
        learner.handle("/src", "1", stream("tfd", 1)[0])
        assert seen_while_taking_the_lease == [False]  # an event loop must not wait behind that
        assert learner.quick
        learner.recovering = True
        assert not learner.quick
        learner.recovering = False
        learner.lost.set()  # the next event steps down and tries to lead again
        assert not learner.quick
    finally:
        learner.close()
