"""The measurements: each figure is taken next to its baseline, on the same events, in the same run.

Function and baseline alternate round by round, and each figure is its *best* round (highest rate,
lowest latency): on this shared 2-core machine other processes only ever slow a round down, often
for more than half of the rounds, so the best round is the least disturbed one (as with `timeit`).
Every round is kept in results.json.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from probes import append_round_trip, breakdown, group_cpu_seconds, learn_step, settled_status
from servers import SIGNING_KEY, FunctionProcess, Processes
from workload import Request, cloudevent_request, predict_request, without_label

from coelho.adapters.redis_state import RedisState
from coelho.config import Settings
from coelho.core import USE_CASES, OnlineModel
from coelho.core.signing import dumps_signed
from coelho.runtime.learner import Learner

__all__ = [
    "FULL", "QUICK", "Plan", "checkpoint_cost", "cold_start", "efficiency", "learn_throughput", "percentile",
    "predict_latency", "quality", "train",
]

log = logging.getLogger("bench")

#: Untimed requests that open each round's fresh keep-alive connection (gunicorn drops idle ones after 2 s).
CONN_WARMUP = 20
#: Pause between connection attempts while waiting for a cold server.
POLL_S = 0.005
SERIALIZE_REPEATS = 5


@dataclass(frozen=True)
class Plan:
    """How much of everything one run does."""

    quick: bool
    warmup: int  # requests sent to each server before any timing
    rounds: int  # timed rounds; function and baseline alternate within each round
    learn_events: int  # timed events per round
    predict_requests: int  # timed requests per round and server
    cold_events: int  # events the cold-start checkpoint's model has learned
    cold_repeats: int  # fresh processes per server
    quality_events: int  # prequential stream length for default vs original
    kafka_seconds: float  # kafka_e2e: seconds of paced producing at each rate
    kafka_backlog: int  # kafka_e2e: events produced ahead, then drained, for max_events_per_s
    kafka_rates: tuple[int, ...] = (100, 1000)  # kafka_e2e: paced producer rates, events/s
    sql_rows: int = 1_000_000  # sql: rows of the Delta table queried
    sql_rounds: int = 8  # sql: rounds alternating the function and native DuckDB
    sql_queries: int = 20  # sql: timed queries per round and side
    ingest_events: int = 3_000  # ingest: events posted to delta-sink
    ingest_spark_events: int | None = None  # ingest: events the Spark job ingests (None: skipped)
    ingest_kafka_events: int = 100_000  # ingest: events the bulk consumer (coelho ingest kafka) ingests
    drift_stationary_events: int = 30_000  # drift: stationary stream per use case (false detections)
    drift_change_at: int = 10_000  # drift: events before the producer's change point
    drift_after: int = 10_000  # drift: events after it (a detection later than this is a miss)
    drift_seeds: tuple[int, ...] = (1,)  # drift: one drifting stream per seed
    lifecycle_rounds: int = 3  # lifecycle: rounds of stop + successor per learner (and hello-event)
    lifecycle_events: int = 2_000  # lifecycle: events a learner gets before its SIGTERM
    batch_rows: tuple[int, ...] = (100_000, 1_000_000)  # batch: table sizes trained on, per use case
    ui_loads: int = 10  # ui: page loads per page in Chromium
    ui_rounds: int = 3  # ui: rounds of predictions, UI and direct alternating
    ui_predictions: int = 15  # ui: timed predictions per round and side

    @property
    def learn_needed(self) -> int:
        return self.warmup + self.rounds * (CONN_WARMUP + self.learn_events)

    @property
    def predict_needed(self) -> int:
        return self.warmup + self.rounds * (CONN_WARMUP + self.predict_requests)

    @property
    def stream_needed(self) -> int:
        return max(self.cold_events + 1, self.quality_events, self.learn_needed + self.predict_needed)


# Many short rounds: the best one is then likely to fall into a quiet moment for function and baseline alike.
QUICK = Plan(True, warmup=300, rounds=8, learn_events=250, predict_requests=250,
             cold_events=20_000, cold_repeats=3, quality_events=5_000, kafka_seconds=5, kafka_backlog=10_000,
             sql_rounds=3, sql_queries=10, lifecycle_rounds=2, lifecycle_events=1_000, batch_rows=(100_000,))
FULL = Plan(False, warmup=500, rounds=20, learn_events=500, predict_requests=500,
            cold_events=100_000, cold_repeats=5, quality_events=20_000, kafka_seconds=15, kafka_backlog=30_000,
            ingest_events=10_000, ingest_spark_events=200_000, ingest_kafka_events=200_000,
            drift_stationary_events=100_000, drift_change_at=20_000,
            drift_after=20_000, drift_seeds=(1, 2, 3), ui_rounds=5, ui_predictions=30)


#: The calibration loop's size: a few tenths of a second of pure-Python integer work on a 2020s core.
CALIBRATION_ITERATIONS = 2_000_000


def calibration_loop(iterations: int = CALIBRATION_ITERATIONS) -> int:
    """A fixed CPU-bound loop (integer arithmetic in the interpreter, no allocation beyond ints, no I/O).

    >>> calibration_loop(10)
    15
    """
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


def calibrate(repeats: int = 5) -> dict[str, float]:
    """Machine speed: the calibration loop's best and median time over `repeats` runs, in ms.

    Runs on different machines compare through it (figures scale roughly with `loop_ms_best`), and a
    median far above the best says the machine was busy while the benchmark ran.
    """
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        calibration_loop()
        times.append((time.perf_counter() - began) * 1000)
    return {"loop_ms_best": min(times), "loop_ms_median": statistics.median(times),
            "iterations": CALIBRATION_ITERATIONS, "load_average_1m": os.getloadavg()[0]}


def efficiency(events_per_s: float, raw_events_per_s: float, hello_events_per_s: float) -> float:
    """Share of the ideal: learning in process plus a no-op function's HTTP cost, per event, over the real cost."""
    return events_per_s * (1 / raw_events_per_s + 1 / hello_events_per_s)


def percentile(samples: Sequence[float], q: int) -> float:
    """The q-th percentile (1..99), interpolated between the closest ranks."""
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def post(port: int, requests: Sequence[Request], timed_from: int = 0, gap: float = 0.0) -> tuple[float, list[float]]:
    """POST `requests` in order over one new keep-alive connection, `gap` seconds apart (0: back to back); any
    status >= 300 is an error.

    Returns the wall time from `requests[timed_from]` to the end and each of those requests' latency.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    began = time.perf_counter()
    try:
        for index, request in enumerate(requests):
            if gap:
                time.sleep(gap)
            if index == timed_from:
                began = time.perf_counter()
            sent = time.perf_counter()
            conn.request("POST", "/", request.body, request.headers)
            response = conn.getresponse()
            body = response.read()
            latencies.append(time.perf_counter() - sent)
            if response.status >= 300:
                raise RuntimeError(f"port {port} answered {response.status}: {body[:300]!r}")
        return time.perf_counter() - began, latencies[timed_from:]
    finally:
        conn.close()


def _learn_seconds(model: OnlineModel, events: Sequence[dict[str, Any]]) -> float:
    learn = model.learn
    began = time.perf_counter()
    for event in events:
        learn(event)
    return time.perf_counter() - began


def _server_cpu_s(server: FunctionProcess) -> float:
    assert server.process is not None
    return group_cpu_seconds(server.process.pid)[0]


def learn_throughput(
    key: str, events: Sequence[dict[str, Any]], learn: FunctionProcess, hello: FunctionProcess, plan: Plan,
    redis_urls: dict[str, str],
) -> dict[str, Any]:
    """Events/s through the learn function, the raw River loop and the no-op CloudEvent function.

    Rounds alternate the three on fresh slices of the stream; each figure is its best round. Then the WAL
    append's round trip from the function's client over each of `redis_urls` (the function's own first).
    """
    requests = [cloudevent_request(key, event) for event in events[: plan.learn_needed]]
    raw = OnlineModel(USE_CASES[key])
    warm = plan.warmup
    log.info("%s learn: warm-up, %d events to each server", key, warm)
    post(learn.port, requests[:warm])
    post(hello.port, requests[:warm])
    _learn_seconds(raw, events[:warm])
    rates: dict[str, list[float]] = {"learn": [], "hello": [], "raw": []}
    cpu = {"learn": 0.0, "hello": 0.0}
    status_before = settled_status(learn)
    posted = 0
    start = warm
    for round_no in range(plan.rounds):
        chunk = slice(start, start + CONN_WARMUP + plan.learn_events)
        start = chunk.stop
        order = (learn, hello) if round_no % 2 == 0 else (hello, learn)
        for server in order:
            name = "hello" if server is hello else "learn"
            cpu[name] -= _server_cpu_s(server)
            seconds, _ = post(server.port, requests[chunk], timed_from=CONN_WARMUP)
            cpu[name] += _server_cpu_s(server)
            rates[name].append(plan.learn_events / seconds)
        posted += chunk.stop - chunk.start
        _learn_seconds(raw, events[chunk.start : chunk.start + CONN_WARMUP])
        rates["raw"].append(plan.learn_events / _learn_seconds(raw, events[chunk.start + CONN_WARMUP : chunk.stop]))
        log.info("%s learn round %d/%d: %s", key, round_no + 1, plan.rounds,
                 ", ".join(f"{name} {values[-1]:,.0f} ev/s" for name, values in rates.items()))
    learn_rate, hello_rate, raw_rate = (max(rates[name]) for name in ("learn", "hello", "raw"))
    parts = breakdown(status_before, settled_status(learn))
    trips = append_round_trip(redis_urls, learn.env["COELHO_KEY_PREFIX"], key, requests[0].body)
    step = learn_step(key, events, next(iter(redis_urls.values())), learn.env["COELHO_KEY_PREFIX"])
    cpu_ms = {name: cpu[name] * 1000 / posted for name in cpu}
    gap_ms = 1000 / learn_rate - 1000 / raw_rate - 1000 / hello_rate
    log.info("%s learn: %.3f ms/event over the ideal; function CPU %.3f ms/event (hello %.3f), the loop's append "
             "wait %.3f ms, validate %.3f ms, learn %.3f ms; from this process: append %.3f ms, "
             "bare XADD %.3f ms, the learner's step %.3f ms (its model alone %.3f ms)", key, gap_ms, cpu_ms["learn"],
             cpu_ms["hello"], parts["append_wait_ms"] or 0, parts["validate_ms"] or 0, parts["learn_ms"] or 0,
             trips["append_ms"], trips["xadd_ms"], step["step_us"] / 1000, step["model_us"] / 1000)
    return {
        "events_per_s": learn_rate,
        "raw_events_per_s": raw_rate,
        "hello_events_per_s": hello_rate,
        "efficiency": efficiency(learn_rate, raw_rate, hello_rate),
        "timed_events": plan.rounds * plan.learn_events,
        "rounds": rates,
        # where the gap to the ideal goes: per event, over all timed rounds (CPU of each server's process group)
        "gap_ms": gap_ms,
        "cpu_ms_per_event": cpu_ms,
        "breakdown": parts,
        "round_trip": trips,
        "step": step,
    }


def predict_latency(
    key: str, events: Sequence[dict[str, Any]], predict: FunctionProcess, hello: FunctionProcess, plan: Plan
) -> dict[str, Any]:
    """Per-request latency of the predict function and of the no-op HTTP function.

    Percentiles are taken per round; each figure is its best round.
    """
    requests = [predict_request(key, event) for event in events[: plan.predict_needed]]
    warm = plan.warmup
    log.info("%s predict: warm-up, %d requests to each server", key, warm)
    post(predict.port, requests[:warm])
    post(hello.port, requests[:warm])
    rounds: dict[str, dict[str, list[float]]] = {name: {"p50": [], "p99": []} for name in ("predict", "hello")}
    start = warm
    for round_no in range(plan.rounds):
        chunk = slice(start, start + CONN_WARMUP + plan.predict_requests)
        start = chunk.stop
        order = (predict, hello) if round_no % 2 == 0 else (hello, predict)
        for server in order:
            _, latencies = post(server.port, requests[chunk], timed_from=CONN_WARMUP)
            ms = [value * 1000 for value in latencies]
            for q in (50, 99):
                rounds["hello" if server is hello else "predict"][f"p{q}"].append(percentile(ms, q))
    result: dict[str, Any] = {
        "p50_ms": min(rounds["predict"]["p50"]),
        "p99_ms": min(rounds["predict"]["p99"]),
        "hello_p50_ms": min(rounds["hello"]["p50"]),
        "hello_p99_ms": min(rounds["hello"]["p99"]),
    }
    result["p99_ratio"] = result["p99_ms"] / result["hello_p99_ms"]
    result["timed_requests"] = plan.rounds * plan.predict_requests
    result["rounds"] = {
        f"{prefix}{q}_ms": rounds[name][q]
        for name, prefix in (("predict", ""), ("hello", "hello_")) for q in ("p50", "p99")
    }
    log.info("%s predict: p50 %.2f / p99 %.2f ms, hello p50 %.2f / p99 %.2f ms", key, result["p50_ms"],
             result["p99_ms"], result["hello_p50_ms"], result["hello_p99_ms"])
    return result


def train(key: str, events: Sequence[dict[str, Any]], preset: str = "default") -> OnlineModel:
    """An OnlineModel that learned `events` in order, in process."""
    model = OnlineModel(USE_CASES[key], preset)
    for event in events:
        model.learn(event)
    return model


def checkpoint_cost(model: OnlineModel) -> dict[str, Any]:
    """Size of the signed checkpoint blob and the median `dumps_signed` time."""
    key = SIGNING_KEY.encode()
    times: list[float] = []
    for _ in range(SERIALIZE_REPEATS):
        began = time.perf_counter()
        blob = dumps_signed(model, key)
        times.append(time.perf_counter() - began)
    return {"bytes": len(blob), "serialize_ms": statistics.median(times) * 1000, "events": model.events_applied}


def write_checkpoint(key: str, model: OnlineModel, redis_url: str, key_prefix: str) -> dict[str, Any]:
    """Store `model` as the use case's checkpoint through `Learner.checkpoint`, exactly as a learner writes it."""
    settings = Settings(redis_url=redis_url, signing_key=SIGNING_KEY.encode(), key_prefix=key_prefix, mlflow=False)
    state = RedisState.from_url(redis_url, key_prefix, key)
    learner = Learner(USE_CASES[key], state, settings)
    learner.token = state.try_acquire(learner.holder, learner.ttl_ms)
    if learner.token is None:
        raise RuntimeError(f"{key}: the checkpoint lease under {key_prefix!r} is taken")
    learner.replica.model, learner.replica.seq = model, model.events_applied
    try:
        return learner.checkpoint()
    finally:
        state.release(learner.holder)
        state.client.close()


def first_answer(server: FunctionProcess, request: Request, timeout: float = 60.0) -> tuple[float, dict[str, Any]]:
    """Poll until the server answers 200; returns seconds since its launch and the JSON answer."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        server.check_alive()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("POST", "/", request.body, request.headers)
            response = conn.getresponse()
            body = response.read()
            if response.status == 200:
                return time.perf_counter() - server.started_at, json.loads(body)
            last = f"{response.status} {body[:300]!r}"
        except OSError as exc:
            last = repr(exc)
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name}: no 200 within {timeout:.0f} s (last: {last})\n{server.tail()}")
        time.sleep(POLL_S)


def cold_start(
    key: str, model: OnlineModel, probe: dict[str, Any], processes: Processes, plan: Plan
) -> dict[str, Any]:
    """Popen → first correct prediction of a fresh predict server loading `model`'s checkpoint, vs hello-http."""
    prefix = f"{processes.key_prefix}-cold"
    written = write_checkpoint(key, model, processes.redis_url, prefix)
    log.info("%s cold start: checkpoint of %d events (%d bytes) written", key, written["seq"], written["bytes"])
    request = predict_request(key, probe)
    expected = model.predict(without_label(key, probe))
    seconds: dict[str, list[float]] = {"predict": [], "hello": []}
    for repeat in range(plan.cold_repeats):
        for name in ("hello-http", f"{key}-predict"):
            server = processes.launch(name, key_prefix=prefix)
            try:
                elapsed, answer = first_answer(server, request)
            finally:
                processes.stop(server)
            if name != "hello-http":
                got = {field: answer.get(field) for field in expected}
                if got != expected or answer.get("model_version") != model.events_applied:
                    raise RuntimeError(f"{name} answered {answer}, expected {expected} at version "
                                       f"{model.events_applied}")
            seconds["hello" if name == "hello-http" else "predict"].append(elapsed)
            log.info("%s cold start %d/%d: %s %.2f s", key, repeat + 1, plan.cold_repeats, name, elapsed)
    return {
        "seconds": min(seconds["predict"]),
        "hello_seconds": min(seconds["hello"]),
        "events": model.events_applied,
        "checkpoint_bytes": written["bytes"],
        "samples": seconds["predict"],
        "hello_samples": seconds["hello"],
    }


def quality(key: str, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The champion metric, prequentially, of the default preset vs the original system's configuration."""
    rule = USE_CASES[key].champion
    scores: dict[str, float | None] = {}
    for preset in ("default", "original"):
        began = time.perf_counter()
        scores[preset] = train(key, events, preset).metrics.report()[rule.metric]
        log.info("%s quality: %s preset, %d events in %.1f s, %s = %s", key, preset, len(events),
                 time.perf_counter() - began, rule.metric, scores[preset])
    default, original = scores["default"], scores["original"]
    at_least = default is not None and (original is None or not rule.better(original, default))
    return {
        "metric": rule.metric,
        "mode": rule.mode,
        "events": len(events),
        "default": default,
        "original_config": original,
        "default_is_at_least_original": at_least,
    }
