"""Run a producer: pick a generator, pace it in wall-clock time, and ship CloudEvents to an
HTTP sink or a Kafka topic (binary mode), or to a JSON-lines file (structured mode), or append the
events straight to the use case's Delta table. Backs ``coelho produce``.

Pacing is for live sinks (HTTP, Kafka): a file or a Delta table is written as fast as the generator
goes unless a rate is given.

Examples
--------
>>> generator = make_generator("eta", seed=3, start=datetime(2026, 3, 2, tzinfo=UTC))
>>> next(generator)["driver_id"].startswith("driver_")
True
>>> parser = argparse.ArgumentParser(prog="coelho produce")
>>> add_produce_arguments(parser)
>>> args = parser.parse_args(["tfd", "--rate", "0", "--count", "3", "--out", "-"])
>>> (args.use_case, args.rate, args.count, args.sink, args.out, args.kafka, args.delta, args.drift_at)
('tfd', 0.0, 3, None, '-', False, False, None)
"""

from __future__ import annotations

import argparse
import itertools
import logging
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from coelho.config import Settings
from coelho.core import SchemaError
from coelho.producers import ecci, eta, tfd
from coelho.producers.base import EventGenerator
from coelho.producers.clock import to_microseconds
from coelho.producers.cloudevent import source_for, to_cloudevent, to_json_line
from coelho.producers.kafka_sink import TOPICS, KafkaSink
from coelho.producers.metrics import StreamGauges, serve_metrics
from coelho.producers.sink import DeliveryError, DeliveryStats, HttpSink
from coelho.producers.window import UnorderedSink

__all__ = ["GENERATORS", "ProduceReport", "add_produce_arguments", "make_generator", "produce", "run_from_args"]

log = logging.getLogger(__name__)

GENERATORS: dict[str, Callable[..., EventGenerator]] = {
    "tfd": tfd.TfdGenerator, "eta": eta.EtaGenerator, "ecci": ecci.EcciGenerator,
}
#: Mean simulated events/s per use case when no rate is given: the original producers' rates.
DEFAULT_RATES = {"tfd": tfd.DEFAULT_RATE, "eta": eta.DEFAULT_RATE, "ecci": ecci.DEFAULT_RATE}
#: How much simulated history a steady producer generates and drops before its first event.
SETTLE = timedelta(hours=2)


@dataclass
class ProduceReport:
    """What a `produce` run did."""

    key: str
    seed: int
    produced: int = 0
    interrupted: bool = False
    delivery: DeliveryStats = field(default_factory=DeliveryStats)


def make_generator(
    key: str,
    *,
    seed: int = 0,
    start: datetime | None = None,
    rate: float | None = None,
    fraud_rate: float | None = None,
    drift_at: int | None = None,
    steady: bool = False,
) -> EventGenerator:
    """The generator of use case `key` ('tfd', 'eta' or 'ecci').

    `start` defaults to now (UTC); `rate` (mean simulated events/s) defaults, also when 0, to
    the original producer's rate; `fraud_rate` applies to TFD only; `drift_at` = N changes the
    data-generating process after N events (the generator's `DRIFT` says how). `steady` gives the
    same rate in every hour and starts the stream in its steady state: the generator runs from
    `SETTLE` before `start` and the events before `start` are dropped (ECCI's returning customers
    make its rate climb for more than an hour otherwise).

    >>> steady = make_generator("ecci", seed=1, start=datetime(2026, 3, 2, tzinfo=UTC), steady=True)
    >>> next(steady)["timestamp"] >= "2026-03-02T00:00:00", steady.produced
    (True, 1)
    """
    if key not in GENERATORS:
        raise ValueError(f"unknown use case {key!r}; expected one of {sorted(GENERATORS)}")
    start = start or datetime.now(UTC)
    options: dict[str, Any] = {"seed": seed, "start": start - SETTLE if steady else start,
                               "rate": rate or DEFAULT_RATES[key], "drift_at": drift_at, "steady": steady}
    if fraud_rate is not None:
        if key != "tfd":
            raise ValueError("fraud_rate applies to the tfd use case only")
        options["fraud_rate"] = fraud_rate
    generator = GENERATORS[key](**options)
    if steady:
        generator.skip_until(start.isoformat(timespec="microseconds"))
    return generator


def produce(
    key: str,
    *,
    rate: float | None = None,
    count: int | None = None,
    seed: int | None = None,
    sink: str | Sequence[str] | None = None,
    unordered_sink: Sequence[str] = (),
    in_flight: int = 50,
    out: str | None = None,
    kafka: str | None = None,
    topic: str | None = None,
    delta: bool = False,
    fraud_rate: float | None = None,
    start: datetime | None = None,
    progress_every: int = 1000,
    drift_at: int | None = None,
    steady: bool = False,
) -> ProduceReport:
    """Generate `count` events (None: forever) of use case `key` and ship them.

    Parameters
    ----------
    rate
        Mean events per second. When > 0, each event waits until its simulated time, counted
        from `start`, has elapsed on the wall clock, so timestamps keep pace with real time
        and the daily rhythm shows in the real rate. 0 sends as fast as possible, with the
        simulated clock at the original producer's rate. None means that rate, paced for a live
        sink (HTTP, Kafka) and unpaced for a file or a Delta table.
    seed
        Random seed; None draws one and logs it so that the run can be replayed.
    sink, out, kafka, delta
        HTTP sink URL (or several: each event goes to each, in order, and the report counts the
        first one's deliveries), a JSON-lines file ('-' = stdout), Kafka bootstrap servers, or
        the use case's Delta table (COELHO_DELTA_ROOT/<use case>, appended in large commits with
        the delta-sink's row layout). With none, the ``K_SINK`` environment variable (Knative
        SinkBinding) is the sink.
    unordered_sink, in_flight
        With HTTP sinks: each event also goes to these URLs, up to `in_flight` at a time and in no particular
        order (`UnorderedSink`), as the unordered KafkaSource feeds delta-sink on Knative.
    topic
        Kafka topic; default the use case's (`TOPICS`).
    start
        Simulated time of the first event; default now.
    drift_at
        Change the data-generating process after this many events (None: never).
    steady
        The same mean rate in every hour, from the first event on (`make_generator`).
    """
    sinks = [sink] if isinstance(sink, str) else list(sink or [])
    if len([d for d in (sinks, out, kafka, delta) if d]) > 1:
        raise ValueError("give one destination: a sink URL, an output file, Kafka bootstrap servers or --delta")
    if topic and not kafka:
        raise ValueError("a topic applies to Kafka only")
    if unordered_sink and (out or kafka or delta):
        raise ValueError("an unordered sink goes with HTTP sinks only")
    if count is not None and count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if rate is not None and rate < 0:
        raise ValueError(f"rate must be >= 0, got {rate}")
    if progress_every < 1:
        raise ValueError(f"progress_every must be >= 1, got {progress_every}")
    seed = secrets.randbits(32) if seed is None else seed
    start = start or datetime.now(UTC)
    paced = rate > 0 if rate is not None else not (out or delta)
    generator = make_generator(key, seed=seed, start=start, rate=rate, fraud_rate=fraud_rate, drift_at=drift_at,
                               steady=steady)
    gauges = StreamGauges(generator)
    report = ProduceReport(key, seed)
    log.info("%s: producing %s events, seed %d, start %s, %s%s", key,
             "endless" if count is None else count, seed, start.isoformat(),
             "paced" if paced else "unpaced",
             "" if drift_at is None else f"; after {drift_at} events: {generator.DRIFT}")
    wall_start = time.monotonic()
    try:  # the summary comes after the destination is closed, so that it counts every delivery
        with ExitStack() as stack:
            emit = _open_destination(stack, report, sinks=sinks, out=out, kafka=kafka, topic=topic, delta=delta,
                                     flush=paced, unordered=unordered_sink, in_flight=in_flight)
            wall_start, sim_start_us = time.monotonic(), to_microseconds(start)
            try:
                for payload in itertools.islice(generator, count):
                    if paced:
                        _wait_until(wall_start, sim_start_us, payload["timestamp"])
                    emit(payload)
                    gauges.observe(payload)
                    report.produced += 1
                    if report.produced % progress_every == 0:
                        _log_progress(report, time.monotonic() - wall_start)
            except (KeyboardInterrupt, BrokenPipeError) as stop:
                report.interrupted = True
                log.info("%s: stopped (%s)", key, type(stop).__name__)
    finally:
        _log_progress(report, time.monotonic() - wall_start)
    return report


def _open_destination(
    stack: ExitStack, report: ProduceReport, *, sinks: list[str], out: str | None, kafka: str | None,
    topic: str | None, delta: bool, flush: bool, unordered: Sequence[str] = (), in_flight: int = 50,
) -> Callable[[dict[str, Any]], Any]:
    """The function that ships one payload, with its resources registered on `stack`."""
    key = report.key
    if delta:
        from coelho.core import USE_CASES
        from coelho.ingest.delta_sink import DeltaAppender

        return stack.enter_context(DeltaAppender(USE_CASES[key], Settings.from_env(), source_for(key))).add
    if out is not None:
        handle = sys.stdout if out == "-" else stack.enter_context(open(out, "w", encoding="utf-8"))

        def write(payload: dict[str, Any]) -> None:
            handle.write(to_json_line(to_cloudevent(key, payload)) + "\n")
            if flush:
                handle.flush()

        return write
    if kafka:
        producer = stack.enter_context(KafkaSink(kafka, topic or TOPICS[key], producer=key))
        report.delivery = producer.stats
        return lambda payload: producer.send(to_cloudevent(key, payload))
    urls = sinks or [url for url in (Settings.from_env().sink,) if url]
    if not urls:
        raise ValueError("no destination: pass --sink URL, --out FILE, --kafka or --delta, or set K_SINK")
    https = [stack.enter_context(HttpSink(url, producer=report.key)) for url in urls]
    report.delivery = https[0].stats
    windows = [stack.enter_context(UnorderedSink(url, in_flight=in_flight, producer=report.key)) for url in unordered]

    def send(payload: dict[str, Any]) -> None:
        event = to_cloudevent(key, payload)
        for http in https:
            http.send(event)
        for window in windows:
            window.send(event)

    return send


def _wait_until(wall_start: float, sim_start_us: int, timestamp: str) -> None:
    """Sleep until as much wall time has passed as simulated time up to `timestamp`."""
    simulated = (to_microseconds(datetime.fromisoformat(timestamp)) - sim_start_us) / 1e6
    ahead = simulated - (time.monotonic() - wall_start)
    if ahead > 0:
        time.sleep(ahead)


def _log_progress(report: ProduceReport, elapsed: float) -> None:
    stats = report.delivery
    log.info("%s: %d events in %.1f s (%.1f/s); delivered %d, rejected %d, retries %d",
             report.key, report.produced, elapsed, report.produced / max(elapsed, 1e-9),
             stats.delivered, stats.rejected, stats.retries)


def add_produce_arguments(parser: argparse.ArgumentParser) -> None:
    """Define the options of ``coelho produce`` on `parser`."""
    parser.add_argument("use_case", choices=sorted(GENERATORS),
                        help="which event stream to produce")
    parser.add_argument("--rate", type=float, default=None, metavar="R",
                        help="mean events per second, following the simulated daily rhythm; "
                             "0 = as fast as possible (default: the original producer's rate, "
                             "tfd 3.6, eta 1.8, ecci 10, paced for --sink and --kafka; --out and "
                             "--delta run as fast as possible, with the simulated clock at that rate)")
    parser.add_argument("--count", type=int, default=None, metavar="N",
                        help="stop after N events (default: run until interrupted)")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="random seed; the same seed and --start replay identical events "
                             "(default: random, logged)")
    parser.add_argument("--fraud-rate", type=float, default=None, metavar="F",
                        help="tfd only: expected share of fraudulent transactions "
                             "(default 0.01)")
    parser.add_argument("--drift-at", type=_non_negative, default=None, metavar="N",
                        help="change the data-generating process after N events, to show drift detection ("
                             + "; ".join(f"{key}: {generator.DRIFT}" for key, generator in GENERATORS.items())
                             + "); default: never")
    parser.add_argument("--steady", action="store_true",
                        help="the same mean rate in every hour (no daily rhythm), from the first event on: "
                             "two hours of simulated history are generated and dropped first (load tests, make soak)")
    parser.add_argument("--start", type=_utc_datetime, default=None, metavar="ISO",
                        help="simulated time of the first event, ISO-8601; no offset means UTC "
                             "(default: now)")
    destination = parser.add_mutually_exclusive_group()
    destination.add_argument("--sink", action="append", default=None, metavar="URL",
                             help="POST binary CloudEvents to URL (default: $K_SINK); repeat it to "
                                  "send each event to several sinks, in order")
    destination.add_argument("--out", default=None, metavar="FILE",
                             help="write structured CloudEvents as JSON lines to FILE "
                                  "('-' = stdout)")
    destination.add_argument("--kafka", action="store_true",
                             help="produce binary CloudEvents to Kafka, keyed by partition key "
                                  "(idempotent, acks=all)")
    destination.add_argument("--delta", action="store_true",
                             help="append the events to the use case's Delta table "
                                  "($COELHO_DELTA_ROOT/<use case>, default $COELHO_DATA_DIR/delta/<use case>) "
                                  "with the delta-sink's row layout, in commits of 100,000 rows: training data "
                                  "at scale (1M rows in about a minute)")
    parser.add_argument("--unordered-sink", action="append", default=[], metavar="URL",
                        help="with --sink (or K_SINK): also POST each event to URL, several at a time and in no "
                             "particular order, as an unordered KafkaSource delivers (delta-sink groups them into "
                             "one Delta commit); repeatable")
    parser.add_argument("--in-flight", type=int, default=50, metavar="N",
                        help="events outstanding per --unordered-sink (default 50, an unordered KafkaSource's "
                             "window here)")
    parser.add_argument("--bootstrap-servers", default=None, metavar="HOSTS",
                        help="with --kafka: host:port[,...] of the brokers "
                             "(default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)")
    parser.add_argument("--topic", default=None, metavar="NAME",
                        help="with --kafka: the topic (default: " + ", ".join(
                            f"{key} {topic}" for key, topic in TOPICS.items()) + ")")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="P",
                        help="serve the kafka_producer_* Prometheus metrics on :P/metrics "
                             "(default: off)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``coelho produce`` with parsed arguments; the process exit code."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        kafka = _kafka_servers(args)
        with _sigterm_interrupts(), serve_metrics(args.metrics_port):
            produce(args.use_case, rate=args.rate, count=args.count, seed=args.seed,
                    sink=args.sink, unordered_sink=args.unordered_sink, in_flight=args.in_flight, out=args.out,
                    kafka=kafka, topic=args.topic, delta=args.delta,
                    fraud_rate=args.fraud_rate, start=args.start, drift_at=args.drift_at, steady=args.steady)
    except SchemaError:
        raise  # a generator bug: keep the traceback
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    except DeliveryError as exc:
        log.error("%s", exc)
        return 1
    return 0


def _kafka_servers(args: argparse.Namespace) -> str | None:
    """The bootstrap servers when --kafka is given: the option, else $KAFKA_BOOTSTRAP_SERVERS."""
    if not args.kafka:
        if args.bootstrap_servers:
            raise ValueError("--bootstrap-servers applies with --kafka only")
        return None
    return args.bootstrap_servers or Settings.from_env().kafka_bootstrap_servers


def _non_negative(text: str) -> int:
    """An integer >= 0 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _utc_datetime(text: str) -> datetime:
    """Parse an ISO-8601 time; a time without offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Let SIGTERM (pod shutdown) stop the run like Ctrl-C: cleanly, with a final summary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
