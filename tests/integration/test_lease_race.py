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
    events = stream("tfd", N_EVENTS, seed=3)
    servers = [
        FunctionServer("tfd-learn", env, tmp_path, COELHO_LEASE_SECONDS="1").start(),
        FunctionServer("tfd-learn", env, tmp_path, COELHO_LEASE_SECONDS="1").start(),
    ]
    session = requests.Session()
    refused = [0, 0]
    writers: list[int] = []
    frozen: int | None = None
    try:
        for i, payload in enumerate(events):
            if i == N_EVENTS // 3:  # freeze the writer past its lease: the other must take over
                frozen = writers[-1]
                servers[frozen].signal(signal.SIGSTOP)
                time.sleep(2.0)
            if i == 2 * N_EVENTS // 3 and frozen is not None:  # wake it: it must not write again
                servers[frozen].signal(signal.SIGCONT)
            headers, body = binary(make_event("tfd", payload))
            deadline = time.monotonic() + 30
            while True:
                candidates = [n for n in (i % 2, 1 - i % 2) if n != frozen or i >= 2 * N_EVENTS // 3]
                accepted = False
                for n in candidates:
                    response = session.post(servers[n].url + "/", headers=headers, data=body, timeout=5)
                    if response.ok:
                        writers.append(n)
                        accepted = True
                        break
                    assert response.status_code == 503
                    refused[n] += 1
                if accepted:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
        statuses = [session.get(s.url + "/status", timeout=5).json() for s in servers]
    finally:
        for server in servers:
            server.signal(signal.SIGCONT)
            server.stop()
    leaders = [s for s in statuses if s["leader"]]
    assert len(leaders) == 1
    assert leaders[0]["events_applied"] == N_EVENTS
    assert leaders[0]["metrics"] == reference("tfd", events).metrics.report()
    assert int(redis_client.get(f"{settings.key_prefix}:tfd:seq")) == N_EVENTS
    assert frozen is not None and writers[N_EVENTS // 3 :].count(frozen) == 0  # the frozen one never wrote again
    assert refused[frozen] > 0


def test_fenced_learner_cannot_write_events_or_checkpoints(settings, redis_client):
    uc = USE_CASES["eta"]
    state = RedisState(redis_client, settings.key_prefix, "eta")
    first, second = Learner(uc, state, settings), Learner(uc, state, settings)
    try:
        first.handle("/s", "1", sample("eta", trip_id="1"))
        with pytest.raises(NotLeader):
            second.handle("/s", "2", sample("eta", trip_id="2"))
        redis_client.delete(state.key("lease"))  # the lease expires while `first` is paused
        second.handle("/s", "2", sample("eta", trip_id="2"))
        with pytest.raises(NotLeader):
            first.handle("/s", "3", sample("eta", trip_id="3"))
        first.token = redis_client.get(state.key("fence")).decode().replace("2", "1")  # a stale token
        first.replica.model = second.replica.model
        before = state.read_checkpoint()
        with pytest.raises(NotLeader):
            first.checkpoint()
        assert state.read_checkpoint() == before
        second.drain()
        assert second.replica.seq == 2
        assert second.replica.model.status()["metrics"] == reference(
            "eta", [sample("eta", trip_id="1"), sample("eta", trip_id="2")]).metrics.report()
    finally:
        first.close()
        second.close()
