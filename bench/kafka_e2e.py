"""kafka_e2e: produce → Kafka → KafkaSource dispatcher → learn function, on a real broker, in the benchmark run.

Everything runs on 127.0.0.1 inside the run: one `KafkaBroker` (its data under the run's temp folder), one
fresh `tfd-learn` (its own key prefix, so its WAL starts empty), the no-op `hello-event` as the baseline,
and the repo's TFD KafkaSource manifest, copied once per route with unique topic, dead-letter topic and
consumer-group names, dispatched in this process by `SourceDispatcher` (a thread per route, ordered
delivery: one event in flight per partition). Events are binary CloudEvents of fresh
TFD transactions written by the producers' `KafkaSink` (idempotent, acks=all, linger 5 ms).

- Paced phases: a wall-clock scheduler sends event i at `start + i / rate` (no per-event sleep drift),
  for `plan.kafka_seconds` at each of `plan.kafka_rates`. Latency per event = record timestamp (the
  producer's CreateTime, taken by librdkafka at `produce`) → the function's 2xx as the dispatcher sees
  it (`SourceDispatcher.stats.latencies`). For the learner the 2xx means the event is durable in the
  Redis WAL; learning follows right after the response.
- Backlog phase: `plan.kafka_backlog` events are produced as fast as possible into a route whose
  dispatcher is not running yet; then it starts, and the drain rate (events / seconds from the first to
  the last 2xx) is `max_events_per_s`, the highest rate ordered delivery into one learner sustains.
- Both functions run with `WORKERS` gunicorn worker processes: 1, functions-framework's default, as the
  Knative Services run them (one worker per pod; Knative scales pods, and every further pod appends to
  the same log while the lease holder learns).
- Every phase runs the same way against hello-event, on the same events (hello does not deduplicate).
- Every produced event must be delivered (none dead-lettered or dropped), and for the learner applied:
  the learner's `/status` `events_applied` grows by exactly the number produced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from cloudevents.http import CloudEvent
from confluent_kafka import TopicPartition
from measure import Plan, percentile
from probes import applied, breakdown, cpu_seconds, group_cpu_seconds, settled_status
from servers import FunctionProcess, Processes
from workload import stream

from coelho.adapters.kafka_broker import TOPIC_PARTITIONS, KafkaBroker
from coelho.dispatch.dispatcher import DispatchStats, KafkaDeadLetter, SourceDispatcher
from coelho.dispatch.manifest import isolated_copy
from coelho.dispatch.runner import Dispatch
from coelho.producers.cloudevent import to_cloudevent
from coelho.producers.kafka_sink import KafkaSink

__all__ = ["KEY", "kafka_e2e", "needed"]

log = logging.getLogger("bench")

KEY = "tfd"
PARTITIONS = TOPIC_PARTITIONS  # as the platform creates the topics
#: Events sent through each new paced route, untimed: the consumer joins its group and gets its
#: partitions, the dispatcher's HTTP connections open, and only then does timing start.
WARMUP_EVENTS = 60
#: A phase fails when no event is delivered for this long.
STALL_S = 60.0
MANIFESTS = Path(__file__).resolve().parents[1] / "eventing" / "knative"
REPORT_EVERY_S = 0.02
#: gunicorn worker processes of both functions (functions-framework reads WORKERS).
WORKERS = 1


def needed(plan: Plan) -> int:
    """Distinct events one run produces to the learner (hello gets the same ones again), the unordered lever's
    included."""
    paced_events = sum(int(rate * plan.kafka_seconds) for rate in plan.kafka_rates)
    lever_events = int(max(plan.kafka_rates) * plan.kafka_seconds) + plan.kafka_backlog
    return WARMUP_EVENTS + paced_events + plan.kafka_backlog + lever_events


class Route:
    """One copy of the TFD KafkaSource (own topics and group) to one function, with its producer.

    The dispatcher runs in a thread from `start()` until `close()`; its clock also records when each
    2xx arrived (`delivered_at`), which gives the drain rate of a backlog.
    """

    def __init__(self, broker: KafkaBroker, folder: Path, server: FunctionProcess, ordering: str | None = None) -> None:
        self.name = server.name
        self.server = server
        folder, self.topic, dead_letter_topic = isolated_copy(MANIFESTS, folder, KEY, tag="bench")
        if ordering is not None:  # a lever weighed against the manifest's own delivery order
            manifest = folder / f"kafkasource-{KEY}.yaml"
            source = yaml.safe_load(manifest.read_text())
            source["spec"]["ordering"] = ordering
            manifest.write_text(yaml.safe_dump(source))
        broker.ensure_topics([self.topic, dead_letter_topic], partitions=PARTITIONS)
        url = f"http://127.0.0.1:{server.port}/"
        dispatch = Dispatch.from_folder(folder, {f"{KEY}-learn": url}, broker.bootstrap_servers)
        [dispatcher] = dispatch.dispatchers()
        self.dispatcher: SourceDispatcher = dispatcher
        self.dispatcher.stats.keep_latencies = True
        self.dispatcher.clock = self._clock
        self.delivered_at: list[float] = []
        self.post_s: list[float] = []  # wall time of each delivery: HTTP POST (with retries) until the answer
        deliver = dispatcher.sender.deliver

        def timed_deliver(event: Any, key: bytes | None = None) -> Any:
            began = time.perf_counter()
            try:
                return deliver(event, key)
            finally:
                self.post_s.append(time.perf_counter() - began)

        dispatcher.sender.deliver = timed_deliver  # type: ignore[method-assign]
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"bench-dispatch-{self.topic}", daemon=True)
        self.failure: BaseException | None = None
        self.sink = KafkaSink(broker.bootstrap_servers, self.topic, producer="bench")

    @property
    def stats(self) -> DispatchStats:
        return self.dispatcher.stats

    def _clock(self) -> float:
        now = time.time()
        self.delivered_at.append(now)  # called by SourceDispatcher once per 2xx
        return now

    def _run(self) -> None:
        try:
            self.dispatcher.run(self.stop_event)
        except BaseException as exc:  # noqa: BLE001 - reported by wait_delivered
            self.failure = exc

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """Stop the dispatcher (it drains what is in flight and commits) and the producer."""
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=60)
        elif self.thread.ident is None:  # never started: run() did not close the consumer
            self.dispatcher.consumer.close()
        with contextlib.suppress(Exception):  # a producer error already failed the phase
            self.sink.close()
        dead_letter = self.dispatcher.sender.dead_letter  # its producer would log the broker's stop otherwise
        if isinstance(dead_letter, KafkaDeadLetter):
            dead_letter.producer.close()

    def finished(self) -> int:
        """Events delivered, dead-lettered or dropped so far."""
        stats = self.stats
        return stats.delivered + stats.dead_lettered + stats.dropped

    def wait_delivered(self, count: int) -> None:
        """Block until `count` events in all were handled; raise if the dispatcher dies or stalls."""
        last, progress_at = self.finished(), time.monotonic()
        while (done := self.finished()) < count:
            if self.failure is not None:
                raise RuntimeError(f"{self.name} route: the dispatcher failed: {self.failure!r}")
            if not self.thread.is_alive():
                raise RuntimeError(f"{self.name} route: the dispatcher thread exited")
            self.server.check_alive()
            if done != last:
                last, progress_at = done, time.monotonic()
            elif time.monotonic() - progress_at > STALL_S:
                raise RuntimeError(f"{self.name} route: {done}/{count} events handled, none for {STALL_S:.0f} s")
            time.sleep(REPORT_EVERY_S)
        if self.stats.dead_lettered or self.stats.dropped:
            raise RuntimeError(f"{self.name} route: {self.stats.dead_lettered} events dead-lettered and "
                               f"{self.stats.dropped} dropped; see {self.server.log_path}")


class CpuMeter:
    """CPU seconds per component of the Kafka path, read from /proc: where the time of a drain goes."""

    def __init__(self, route: Route, broker: KafkaBroker, processes: Processes) -> None:
        self.route = route
        self.broker_pid = broker.running_pid()
        valkey = getattr(processes.valkey, "_process", None)
        self.valkey_pid = valkey.pid if valkey is not None else None

    def sample(self) -> dict[str, float]:
        route, task = self.route, Path("/proc/self/task")
        loop = route.thread.native_id
        senders = [worker.native_id for worker in route.dispatcher.workers.values() if worker.native_id]
        process = cpu_seconds(Path("/proc/self/stat"))
        loop_s = cpu_seconds(task / str(loop) / "stat") if loop else 0.0
        senders_s = sum(cpu_seconds(task / str(tid) / "stat") for tid in senders)
        server = route.server.process
        function, function_loop = group_cpu_seconds(server.pid) if server is not None else (0.0, 0.0)
        return {
            "dispatcher_loop": loop_s,  # consumer poll, routing to partition queues, back-pressure, commits
            "dispatcher_senders": senders_s,  # one thread per partition: record → CloudEvent → HTTP POST → 2xx
            "bench_other": process - loop_s - senders_s,  # librdkafka threads, producer reports, this loop
            "function": function,  # all of it; function_loop: its event loops (HTTP, decoding, validation, appends)
            "function_loop": function_loop,
            "kafka_broker": cpu_seconds(Path(f"/proc/{self.broker_pid}/stat")) if self.broker_pid else 0.0,
            "valkey": cpu_seconds(Path(f"/proc/{self.valkey_pid}/stat")) if self.valkey_pid else 0.0,
        }


def paced(route: Route, events: Sequence[CloudEvent], rate: float) -> dict[str, Any]:
    """Send `events` at `rate` per second on a wall-clock schedule; latency of each until its 2xx."""
    base, first_latency, first_post = route.finished(), len(route.stats.latencies), len(route.post_s)
    send, total = route.sink.send, len(events)
    sent = 0
    began = time.perf_counter()
    while sent < total:
        due = min(total, int((time.perf_counter() - began) * rate) + 1)
        while sent < due:
            send(events[sent])
            sent += 1
        if sent < total:
            pause = began + sent / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    last_sent = time.perf_counter()
    route.sink.flush()
    route.wait_delivered(base + total)
    ms = [value * 1000 for value in route.stats.latencies[first_latency:]]
    if len(ms) != total:
        raise RuntimeError(f"{route.name} route: {len(ms)} latencies for {total} events")
    post_ms = [value * 1000 for value in route.post_s[first_post:]]
    window = max(1, int(rate))  # per second of sending (latencies are in completion order, about send order)
    return {
        "count": total,
        "events_per_s": (total - 1) / (last_sent - began) if total > 1 else float(total),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
        "post_p50_ms": percentile(post_ms, 50),
        "post_p99_ms": percentile(post_ms, 99),
        "p99_ms_per_s": [percentile(part, 99) for part in (ms[i : i + window] for i in range(0, total, window))
                         if len(part) > 1],
    }


def backlog(route: Route, events: Sequence[CloudEvent], meter: CpuMeter) -> dict[str, Any]:
    """Produce `events` with the dispatcher stopped, then start it: events / s from the first 2xx to the last.

    Also the CPU each component spent from the dispatcher's start to the last 2xx, in ms per event.
    """
    began = time.perf_counter()
    for event in events:
        route.sink.send(event)
    route.sink.flush()
    produce_s = time.perf_counter() - began
    consumer = route.dispatcher.consumer  # not subscribed yet: only asked for the partitions' end offsets
    per_partition = [consumer.get_watermark_offsets(TopicPartition(route.topic, partition), timeout=10)[1]
                     for partition in range(PARTITIONS)]
    before = meter.sample()
    route.start()
    route.wait_delivered(len(events))
    after = meter.sample()
    first, last = min(route.delivered_at), max(route.delivered_at)
    cpu_ms = {name: (after[name] - before[name]) * 1000 / len(events) for name in before}
    post_ms = sum(route.post_s) * 1000 / len(route.post_s)
    total_ms = sum(ms for name, ms in cpu_ms.items() if name != "function_loop")  # the loops are in `function`
    return {
        "count": len(events),
        "produce_s": produce_s,
        "drain_s": last - first,
        "events_per_s": (len(events) - 1) / (last - first),
        "partition_counts": per_partition,  # keyed by user: the largest partition drains last
        "post_mean_ms": post_ms,  # one in flight per partition: events_per_s <= partitions / post time
        "cpu_ms_per_event": cpu_ms,
        "cores_busy": total_ms / 1000 * (len(events) - 1) / (last - first),
        # the rate at which the path's measured CPU per event would fill every core of this machine
        "cpu_ceiling_events_per_s": (os.cpu_count() or 1) * 1000 / total_ms,
    }


def unordered_lever(broker: KafkaBroker, work: Path, learn: FunctionProcess, events: Sequence[CloudEvent],
                    rate: int, paced_count: int, processes: Processes) -> dict[str, Any]:
    """The learner behind the same KafkaSource with `ordering: unordered` (up to 50 events in flight, still
    committed in order): `paced_count` events at `rate` ev/s, then the rest as a backlog.

    A lever, not the deployed setting: the learners' exactly-once rests on the WAL, not on Kafka's order.
    """
    figures: dict[str, Any] = {}
    with contextlib.closing(Route(broker, work / "unordered-paced", learn, ordering="unordered")) as route:
        route.start()
        figures |= paced(route, events[:paced_count], rate)
    with contextlib.closing(Route(broker, work / "unordered-backlog", learn, ordering="unordered")) as route:
        drain = backlog(route, events[paced_count:], CpuMeter(route, broker, processes))
    figures |= {"rate": rate, "max_events_per_s": drain["events_per_s"], "backlog": drain}
    log.info("kafka_e2e %s unordered @ %d ev/s: p50 %.1f / p99 %.1f ms; backlog drained at %.0f ev/s", learn.name,
             rate, figures["p50_ms"], figures["p99_ms"], drain["events_per_s"])
    return figures


def kafka_e2e(processes: Processes, plan: Plan, seed: int) -> dict[str, Any]:
    """All kafka_e2e figures: a broker, routes to a fresh tfd-learn and to hello-event, paced and backlog phases."""
    log.info("kafka_e2e: generating %s %s events", f"{needed(plan):,}", KEY)
    events = [to_cloudevent(KEY, payload) for payload in stream(KEY, needed(plan), seed=seed)]
    warmup, rest = events[:WARMUP_EVENTS], events[WARMUP_EVENTS:]
    phases = []
    for rate in plan.kafka_rates:
        count = int(rate * plan.kafka_seconds)
        phases.append((rate, rest[:count]))
        rest = rest[count:]
    backlog_events, lever_events = rest[: plan.kafka_backlog], rest[plan.kafka_backlog :]

    work = processes.work_dir / "kafka"
    broker = KafkaBroker(work / "broker")
    began = time.perf_counter()
    broker.start()
    try:
        log.info("kafka_e2e: broker on %s after %.1f s", broker.bootstrap_servers, time.perf_counter() - began)
        learn = processes.launch(f"{KEY}-learn", key_prefix=f"{processes.key_prefix}-kafka", WORKERS=str(WORKERS))
        hello = processes.launch("hello-event", WORKERS=str(WORKERS))
        for server in (learn, hello):
            log.info("%s ready on port %d after %.1f s (%d workers)", server.name, server.port, server.wait_ready(),
                     WORKERS)
        applied_before = applied(learn)
        result: dict[str, Any] = {"use_case": KEY, "partitions": PARTITIONS, "rates": []}
        paced_results: dict[str, list[dict[str, Any]]] = {}
        for server in (learn, hello):
            with contextlib.closing(Route(broker, work / f"paced-{server.name}", server)) as route:
                route.start()
                for event in warmup:
                    route.sink.send(event)
                route.sink.flush()
                route.wait_delivered(len(warmup))
                paced_results[server.name] = []
                for rate, chunk in phases:
                    before = settled_status(server) if server is learn else {}
                    figures = paced(route, chunk, rate)
                    if server is learn:
                        figures["breakdown"] = breakdown(before, settled_status(server))
                    paced_results[server.name].append(figures)
                    log.info("kafka_e2e %s @ %d ev/s: %d events at %.0f ev/s, p50 %.1f / p99 %.1f / max %.1f ms "
                             "(POST p50 %.1f / p99 %.1f ms)", server.name, rate, figures["count"],
                             figures["events_per_s"], figures["p50_ms"], figures["p99_ms"], figures["max_ms"],
                             figures["post_p50_ms"], figures["post_p99_ms"])
        drains: dict[str, dict[str, Any]] = {}
        for server in (learn, hello):
            with contextlib.closing(Route(broker, work / f"backlog-{server.name}", server)) as route:
                before = settled_status(server) if server is learn else {}
                drains[server.name] = backlog(route, backlog_events, CpuMeter(route, broker, processes))
                drain = drains[server.name]
                if server is learn:
                    drain["breakdown"] = breakdown(before, settled_status(server))
                log.info("kafka_e2e %s backlog: %d events produced in %.1f s, drained in %.1f s: %.0f ev/s; "
                         "POST %.2f ms; CPU ms/event %s", server.name, len(backlog_events), drain["produce_s"],
                         drain["drain_s"], drain["events_per_s"], drain["post_mean_ms"],
                         ", ".join(f"{name} {ms:.2f}" for name, ms in drain["cpu_ms_per_event"].items()))
        top = max(plan.kafka_rates)
        lever = unordered_lever(broker, work, learn, lever_events, top, int(top * plan.kafka_seconds), processes)
        produced = len(warmup) + sum(len(chunk) for _, chunk in phases) + len(backlog_events) + len(lever_events)
        applied_delta = applied(learn) - applied_before
        processes.stop(learn)
        processes.stop(hello)
    finally:
        began = time.perf_counter()
        broker.stop()
        log.info("kafka_e2e: broker stopped in %.1f s", time.perf_counter() - began)

    for (rate, _), mine, base in zip(phases, paced_results[learn.name], paced_results[hello.name], strict=True):
        result["rates"].append({
            "rate": rate, **mine,
            **{f"hello_{name}": value for name, value in base.items() if name not in ("count", "breakdown")},
            "p99_ratio": mine["p99_ms"] / base["p99_ms"],
        })
    mine, base = drains[learn.name], drains[hello.name]
    result |= {
        "max_events_per_s": mine["events_per_s"],
        "hello_max_events_per_s": base["events_per_s"],
        "max_ratio": mine["events_per_s"] / base["events_per_s"],
        "backlog": {**mine, **{f"hello_{name}": value for name, value in base.items()
                               if name not in ("count", "breakdown")}},
        "unordered": lever | {"p99_ratio": lever["p99_ms"] / result["rates"][-1]["hello_p99_ms"],
                              "max_ratio": lever["max_events_per_s"] / base["events_per_s"]},
        "produced": produced,
        "applied": applied_delta,
        "warmup_events": len(warmup),
        "seconds_per_rate": plan.kafka_seconds,
        "workers": WORKERS,
    }
    if applied_delta != produced:
        log.error("kafka_e2e: the learner applied %d events, %d were produced", applied_delta, produced)
    return result
