"""Concurrent events are group-committed: one round trip logs them all, each exactly once, in one order."""

from __future__ import annotations

import threading

from coelho.adapters.redis_state import RedisState
from coelho.core import USE_CASES
from coelho.runtime.learner import Learner
from support import reference, stream

THREADS = 6
PER_THREAD = 60


def test_concurrent_appends_are_each_logged_once_and_learned_in_log_order(settings, redis_client):
    events = stream("tfd", THREADS * PER_THREAD, seed=11)
    state = RedisState(redis_client, settings.key_prefix, "tfd")
    learner = Learner(USE_CASES["tfd"], state, settings)
    round_trips = []
    send = state.append

    def counting_append(token, records, ttl_s, while_waiting=None):
        round_trips.append(len(records))
        return send(token, records, ttl_s, while_waiting=while_waiting)

    state.append = counting_append  # type: ignore[method-assign]
    seqs: list[int] = []
    start = threading.Barrier(THREADS)

    def client(n: int) -> None:
        start.wait()
        for i in range(n, len(events), THREADS):
            seqs.append(learner.handle("/src", str(i), events[i]).seq)
            assert learner.handle("/src", str(i), events[i]).duplicate  # a redelivery is recognised

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        status = learner.status()
    finally:
        learner.close()
    assert sorted(seqs) == list(range(1, len(events) + 1))
    assert max(round_trips) > 1  # some appends did share a round trip
    logged = [entry.payload for entry in state.read_wal(0)]
    assert sorted(e["transaction_id"] for e in logged) == sorted(e["transaction_id"] for e in events)
    assert status["events_applied"] == len(events)
    assert status["metrics"] == reference("tfd", logged).metrics.report()  # learned in the log's order
