"""Two learners on one Redis: exactly one writes, and no accepted event is lost when the lease moves."""

from __future__ import annotations

import signal
import time

import pytest
import requests

from coelho.adapters.redis_state import RedisState
from coelho.core import USE_CASES
from coelho.runtime.learner import Learner, NotLeader
from support import binary, make_event, reference, sample, stream
from support.servers import FunctionServer

N_EVENTS = 400


@pytest.mark.slow
def test_two_learner_processes_one_writer_nothing_lost(env, tmp_path, redis_client, settings):
    """Both processes accept every event they get; exactly one learns, and it changes hands once."""
    events = stream("tfd", N_EVENTS, seed=3)
    servers = [
        FunctionServer("tfd-learn", env, tmp_path, COELHO_LEASE_SECONDS="1").start(),
        FunctionServer("tfd-learn", env, tmp_path, COELHO_LEASE_SECONDS="1").start(),
    ]
    session = requests.Session()
    frozen: int | None = None
    try:
        for i, payload in enumerate(events):
            if i == N_EVENTS // 3:  # freeze the writer past its lease: the other must take over
                frozen = _leader(session, servers)
                servers[frozen].signal(signal.SIGSTOP)
                time.sleep(2.0)
                session.close()  # idle for gunicorn's 2 s keep-alive: the server may be closing it as we send
            if i == 2 * N_EVENTS // 3 and frozen is not None:  # wake it: it must not learn or checkpoint again
                servers[frozen].signal(signal.SIGCONT)
                session.close()  # its keep-alive connection expired while it was stopped: it closes it now
            target = i % 2 if i % 2 != frozen or i >= 2 * N_EVENTS // 3 else 1 - i % 2
            headers, body = binary(make_event("tfd", payload))
            response = session.post(servers[target].url + "/", headers=headers, data=body, timeout=5)
            assert response.status_code == 200, response.text  # accepted first time, by whichever got it
        deadline = time.monotonic() + 10
        while True:
            statuses = [session.get(s.url + "/status", timeout=5).json() for s in servers]
            leaders = [s for s in statuses if s["leader"]]
            if len(leaders) == 1 and leaders[0]["events_applied"] == N_EVENTS or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        for server in servers:
            server.signal(signal.SIGCONT)
            server.stop()
    assert len(leaders) == 1
    assert leaders[0]["events_applied"] == N_EVENTS
    assert leaders[0]["metrics"] == reference("tfd", events).metrics.report()
    assert int(redis_client.get(f"{settings.key_prefix}:tfd:seq")) == N_EVENTS
    assert frozen is not None and statuses[frozen]["leader"] is False  # the frozen one was fenced out
    follower = statuses[frozen]
    assert follower["leader_holder"] == leaders[0]["holder"]  # and relays the leader's status


def _leader(session: requests.Session, servers: list[FunctionServer]) -> int:
    statuses = [session.get(s.url + "/status", timeout=5).json() for s in servers]
    return next(n for n, status in enumerate(statuses) if status["leader"])


def test_fenced_learner_cannot_write_model_state_but_still_accepts(settings, redis_client):
    uc = USE_CASES["eta"]
    state = RedisState(redis_client, settings.key_prefix, "eta")
    first, second = Learner(uc, state, settings), Learner(uc, state, settings)
    payloads = [sample("eta", trip_id=str(n)) for n in range(1, 5)]
    try:
        first.handle("/s", "1", payloads[0])
        assert second.handle("/s", "2", payloads[1]).seq == 2  # a follower logs the event for the leader
        assert second.status()["leader"] is False
        redis_client.delete(state.key("lease"))  # the lease expires while `first` is paused
        second.lead_retry_at = 0.0
        assert second.handle("/s", "3", payloads[2]).seq == 3  # `second` leads now (fence 2)
        assert first.handle("/s", "4", payloads[3]).seq == 4  # fenced on append: steps down, logs as a follower
        assert first.token is None
        first.token = redis_client.get(state.key("fence")).decode().replace("2", "1")  # a stale token
        first.replica.model = second.replica.model
        before = state.read_checkpoint()
        with pytest.raises(NotLeader):
            first.checkpoint()
        assert state.read_checkpoint() == before
        first.token = None
        second._idle_drain()  # picks up what `first` logged as a follower
        assert second.replica.seq == 4
        assert second.replica.model.status()["metrics"] == reference("eta", payloads).metrics.report()
    finally:
        first.close()
        second.close()
