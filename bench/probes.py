"""What a function's processes say about their costs: /proc CPU, the learner's `/status` timings, and the WAL
append's round trip next to a bare Valkey `XADD` from the same client.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servers import FunctionProcess

from coelho.adapters.redis_state import AsyncAppender, Record, RedisState
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.core.online import OnlineModel
from coelho.runtime.learner import LOOP_LEARN_SLICE_S, Learner

__all__ = [
    "PER_EVENT_PARTS", "append_round_trip", "applied", "breakdown", "cpu_seconds", "group_cpu_seconds",
    "learn_step", "settled_status",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: The leader's parts (`/status` `timings`) per event learned: where its threads' CPU goes.
PER_EVENT_PARTS = ("validate", "learn", "observe", "status", "checkpoint")
#: Parts counted per event of their own (the event loops'), not per event learned.
PER_OWN_COUNT = ("validate", "append_wait")


def cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds of the process or thread whose /proc stat file this is (0 if gone)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> tuple[float, float]:
    """CPU seconds of every live process in process group `pgid` (a function's gunicorn master and workers):
    in all, and of their main threads alone (the event loops; the rest is the learner's threads)."""
    total = main = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                total += cpu_seconds(stat)
                main += cpu_seconds(stat.with_name("task") / stat.parent.name / "stat")
        except (OSError, IndexError, ValueError):
            continue
    return total, main


def settled_status(server: FunctionProcess, settle_s: float = 0.5, timeout_s: float = 30.0) -> dict[str, Any]:
    """The learner's `GET /status` once its `events_applied` stops changing for `settle_s`.

    With several workers a request may reach a follower, which relays the leader's status as last
    published (at most about 0.1 s old when idle), hence the settling.
    """
    deadline = time.monotonic() + timeout_s
    last = -1
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("GET", "/status")
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"{server.name} /status answered {response.status}: {body[:300]!r}")
        status = json.loads(body)
        value = int(status["events_applied"])
        if value == last or time.monotonic() > deadline:
            return status
        last = value
        time.sleep(settle_s)


def applied(server: FunctionProcess) -> int:
    """The model's `events_applied`, settled."""
    return int(settled_status(server)["events_applied"])


def breakdown(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the leading worker's `timings` say about the events between two statuses.

    `validate` is the event loop's decoding check per event it validated, `append_wait` the loop's wall time
    waiting for the WAL append per event it logged; the other parts are CPU ms per event learned (checkpoint
    and status amortised over them); `loop_lag_*` is how late a 10 ms timer of the leader's event loop
    fired, mean and worst over the phase: the time the loop was blocked.
    """
    first, last = before.get("timings", {}), after.get("timings", {})
    learned = last.get("learn", {}).get("count", 0) - first.get("learn", {}).get("count", 0)

    def delta(part: str, field: str) -> float:
        return last.get(part, {}).get(field, 0) - first.get(part, {}).get(field, 0)

    result: dict[str, Any] = {"events_learned": learned}
    for part in (*PER_EVENT_PARTS, "append_wait"):
        per = delta(part, "count") if part in PER_OWN_COUNT else learned
        result[f"{part}_ms"] = delta(part, "seconds") * 1000 / per if per else None
    collections = delta("gc2", "count")
    result["gc2_count"] = collections  # full collections during the phase, and the longest since the start
    result["gc2_mean_ms"] = delta("gc2", "seconds") * 1000 / collections if collections else None
    result["gc2_max_ms"] = last.get("gc2", {}).get("max_seconds", 0) * 1000
    probes = delta("loop_lag", "count")
    result["loop_lag_mean_ms"] = delta("loop_lag", "seconds") * 1000 / probes if probes else None
    result["loop_lag_max_ms"] = last.get("loop_lag", {}).get("max_seconds", 0) * 1000  # since the start
    return result


def append_round_trip(urls: dict[str, str], key_prefix: str, use_case: str, body: bytes, calls: int = 2_000,
                      rounds: int = 3) -> dict[str, float]:
    """Sequential round trips from one `AsyncAppender` (the learn function's client) to the same Valkey, in ms:
    the WAL append of one event's `body` (the fenced, deduplicating script) and a bare `XADD` of the same body,
    over each transport of `urls` (name → Redis URL of the same server): `append_ms`, `xadd_ms` for the first,
    `<name>_append_ms`, `<name>_xadd_ms` for the others.

    Rounds alternate the calls and transports; each figure is its best round.
    """
    states = {name: RedisState.from_url(url, f"{key_prefix}-rtt", use_case) for name, url in urls.items()}
    first = next(iter(urls))
    stream = states[first].key("bare")

    async def measure() -> dict[str, float]:
        appenders = {name: AsyncAppender(state) for name, state in states.items()}
        best: dict[str, float] = {}
        try:
            for round_no in range(rounds):
                for name, appender in appenders.items():
                    for call_name in ("append_ms", "xadd_ms"):
                        began = time.perf_counter()
                        for call in range(calls):
                            if call_name == "append_ms":
                                await appender.append(None, [Record(name, f"{round_no}-{call}", body)], 60)
                            else:
                                await appender.call([("XADD", stream, "MAXLEN", "~", "10000", "*", "e", body)])
                        key = call_name if name == first else f"{name}_{call_name}"
                        best[key] = min(best.get(key, float("inf")), (time.perf_counter() - began) * 1000 / calls)
        finally:
            for appender in appenders.values():
                appender.close()
        return best

    try:
        return asyncio.run(measure())
    finally:
        states[first].client.delete(stream, states[first].key("wal"), states[first].key("seq"))


def learn_step(key: str, events: Sequence[dict[str, Any]], redis_url: str, key_prefix: str,
               rounds: int = 5) -> dict[str, float]:
    """The learner's learning step (`Learner.drain` of one queued event, as the event loop runs it) against
    `OnlineModel.learn` alone, in this process, on the same events from the same model state: µs per event,
    each its best round. The difference is the step's bookkeeping (replica, timings, telemetry, drift watch);
    what the function's step costs beyond both is the context it runs in (HTTP, Valkey, the client).
    """
    use_case = USE_CASES[key]
    settings = Settings(redis_url=redis_url, key_prefix=f"{key_prefix}-step", mlflow=False,
                        signing_key=b"bench-learn-step-key-0123456789ab")
    learner = Learner(use_case, RedisState.from_url(redis_url, settings.key_prefix, key), settings)
    learner.token = learner.state.try_acquire(learner.holder, learner.ttl_ms)
    learner.replica.model, model = OnlineModel(use_case), OnlineModel(use_case)
    per_round = len(events) // (rounds + 1)
    for event in events[:per_round]:  # the same state for both
        learner.replica.model.learn(event)
        model.learn(event)
    learner.replica.seq = learner.accepted_seq = learner.checkpoint_seq = per_round
    best = {"step_us": math.inf, "model_us": math.inf}
    try:
        for round_no in range(1, rounds + 1):
            chunk = events[round_no * per_round : (round_no + 1) * per_round]
            for name in ("step_us", "model_us") if round_no % 2 else ("model_us", "step_us"):
                spent = 0.0
                for event in chunk:
                    if name == "step_us":
                        learner.accepted_seq += 1
                        learner.inbox.put((learner.generation, learner.accepted_seq, event))
                        began = time.perf_counter()
                        learner.drain(slice_s=LOOP_LEARN_SLICE_S)
                    else:
                        began = time.perf_counter()
                        model.learn(event)
                    spent += time.perf_counter() - began
                best[name] = min(best[name], spent * 1e6 / len(chunk))
    finally:
        learner.state.release(learner.holder)
        learner.close()
    return best
