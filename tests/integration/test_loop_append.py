"""An event loop's appends: concurrent events share round trips, each is logged and learned once, in log order,
and a Redis that is gone is a clear `Unavailable`, never a blocked loop."""

from __future__ import annotations

import asyncio

import pytest
import redis

from coelho.adapters.redis_state import AsyncAppender, RedisState
from coelho.core import USE_CASES
from coelho.runtime.learner import Learner, Unavailable
from support import reference, stream

EVENTS = 300


async def test_concurrent_accepts_on_one_loop_are_group_committed_and_learned_once(settings, redis_client):
    events = stream("tfd", EVENTS, seed=12)
    state = RedisState(redis_client, settings.key_prefix, "tfd")
    learner = Learner(USE_CASES["tfd"], state, settings)
    batches: list[int] = []
    append = learner.wal.append

    async def counting_append(token, records, ttl_s):
        batches.append(len(records))
        return await append(token, records, ttl_s)

    learner.wal.append = counting_append  # type: ignore[method-assign]
    try:
        first = await learner.accept("/src", "0", events[0])  # takes the lease (from a thread) and recovers
        results = await asyncio.gather(*(learner.accept("/src", str(i), events[i]) for i in range(1, EVENTS)))
        again = await asyncio.gather(*(learner.accept("/src", str(i), events[i]) for i in range(0, EVENTS, 7)))
        status = await asyncio.to_thread(learner.status)
    finally:
        learner.close()
    assert sorted(r.seq for r in [first, *results]) == list(range(1, EVENTS + 1))
    assert all(r.duplicate for r in again)  # a redelivery is recognised
    assert max(batches) > 1 and sum(batches) < 2 * EVENTS  # appends shared round trips
    logged = [entry.payload for entry in state.read_wal(0)]
    assert status["events_applied"] == EVENTS
    assert status["metrics"] == reference("tfd", logged).metrics.report()  # learned in the log's order
    assert status["timings"]["learn"]["count"] == EVENTS


async def test_an_unreachable_redis_is_unavailable(settings, redis_client):
    state = RedisState(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=1.0), settings.key_prefix,
                       "tfd")
    appender = AsyncAppender(state, timeout=1.0)
    with pytest.raises(redis.ConnectionError):
        await appender.last_seq()
    learner = Learner(USE_CASES["tfd"], state, settings)
    try:
        with pytest.raises(Unavailable, match="unreachable"):
            await learner.accept("/src", "1", stream("tfd", 1)[0])
    finally:
        learner.close()
