"""make soak: the three pipelines for MINUTES (default 30) through `coelho up`, sampled every 30 s, then judged.

The platform runs exactly as `make up` runs it (embedded Valkey, the lean MLflow server, the functions under
functions-framework, the three producers over HTTP, or with --kafka through a local broker and
`coelho dispatch`), in a temporary data folder, with the producers steady (`coelho produce --steady`: the same
rate in every hour, from the first event on), their rates multiplied by --rate-scale, and six
bounds shortened so that they are reached within the warm-up: COELHO_DEDUP_TTL_SECONDS and
COELHO_SINK_DEDUP_SECONDS (300 s instead of 7 days and 1 hour), COELHO_DELTA_LOG_RETENTION_HOURS and
COELHO_SINK_RETENTION_HOURS (0.1 h instead of 2 h: the Delta logs keep 6 minutes of checkpoints, each carrying
6 minutes of removed files, so they stop growing after about 12; the vacuum, in whole hours, keeps removed
files on disk for an hour), COELHO_CHECKPOINT_EVERY (1,000 events instead of 5,000:
the WAL, trimmed at each checkpoint, stops growing after 3 minutes instead of 15 at eta's rate) and
COELHO_SQL_LOAD_MAX_ROWS (2,000 instead of 1,000,000: the sql function scans the tfd table from its files after
3 minutes instead of holding a copy that grows with the stream). Meanwhile the soak asks each predict function
for a prediction every 0.2 s (and the baseline as often) and the sql function for a count every second (a
steady load: its worker's memory settles within the warm-up, not after hours of one query a sample). Every
`--interval` seconds on average (each pause drawn between 0.5 and 1.5 times it, so that samples do not alias
with the processes' own periods) it records:

- the resident memory (RSS) and open file descriptors of every process (function masters and workers,
  producers, dispatcher, Valkey, MLflow server and its workers, Kafka broker), from /proc; the RSS as the
  lowest of three reads 0.2 s apart, taken before the sample's own requests (a leak raises that floor, a
  commit's or a query's buffers do not);
- Valkey's `used_memory`, the memory of the WAL streams within it (`MEMORY USAGE`) and key count, each use
  case's WAL length, checkpoint size (the model) and dedup keys;
- each Delta table's active files (its current snapshot), files on disk and the log's bytes;
- p99 latency per window: learn from each learner's `coelho_learn_duration_seconds` histogram, predict as the soak's
  requests saw it, and the same requests to a no-op `hello-http` function started beside the platform (the
  machine's own load in that window: latencies are judged as ratios to it);
- errors per window: rejected or refused events (function counters), failed probes, WARNING/ERROR lines in
  the functions', producers' and dispatcher's logs, and processes that died.

It writes bench/soak.json (samples, settings, verdicts) and one PNG per series in bench/soak/ (with --kafka:
bench/soak-kafka.json and bench/soak-kafka/), prints the verdicts (see soak_report.py for the rules) and exits 1
when one fails, 2 when none fails but a slope is inconclusive (too few or too noisy samples for its limit: run
longer), 0 when every verdict passes.

    .venv/bin/python bench/soak.py [--minutes 30] [--kafka] [--rate-scale 3] [--interval 30] [--warmup-minutes M]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families
from servers import FunctionProcess
from soak_report import BASELINE, as_json, judge, plot

from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.runtime.catalog import FUNCTIONS
from coelho.runtime.launcher import DEFAULT_RATES, Platform

log = logging.getLogger("soak")

HERE = Path(__file__).resolve().parent
#: Where a run writes its samples and plots: bench/soak.json and bench/soak/, or with --kafka
#: bench/soak-kafka.json and bench/soak-kafka/ (each path keeps its own last run).
OUTPUT = {False: (HERE / "soak.json", HERE / "soak"), True: (HERE / "soak-kafka.json", HERE / "soak-kafka")}
#: Bounds shortened so that the plateau is reached within the warm-up (seconds).
SOAK_ENV = {"COELHO_DEDUP_TTL_SECONDS": "300", "COELHO_SINK_DEDUP_SECONDS": "300",
            "COELHO_DELTA_LOG_RETENTION_HOURS": "0.1", "COELHO_SINK_RETENTION_HOURS": "0.1",
            "COELHO_CHECKPOINT_EVERY": "1000",
            "COELHO_SQL_LOAD_MAX_ROWS": "2000"}
LEARN_HISTOGRAM = "coelho_learn_duration_seconds"
PROBE_EVERY_S = 0.2  # one predict request every 0.2 s, the three use cases in turn
SQL_EVERY_ROUNDS = 5  # and one sql count every fifth round (about once a second)
SQL_PROBE = "sql tfd count"
SQL_BODY = {"use_case": "tfd", "query": "SELECT count(*) AS n FROM data"}
#: Each sample's RSS is the lowest of this many reads, this far apart.
RSS_READS, RSS_READ_PAUSE_S = 3, 0.2
LOG_TROUBLE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|\[(WARNING|ERROR|CRITICAL)\]|^Traceback")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the platform runs (default 30)")
    parser.add_argument("--kafka", action="store_true", help="through the Kafka broker and the dispatcher")
    parser.add_argument("--rate-scale", type=float, default=3.0,
                        help="multiply the producers' rates (3.6, 1.8, 8 ev/s; default x3: about 40 ev/s in all)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="samples judged after this (default: a third of the run, at least 6 minutes)")
    return parser.parse_args(argv)


# processes -------------------------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    """`pid`'s children, grandchildren and so on (from /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def open_fds(pid: int) -> tuple[int, int] | tuple[None, None]:
    """(descriptors other than sockets, sockets) open in process `pid`; a server's sockets come and go with its
    clients' keep-alive connections, so a leak is judged on the others (files, pipes, event fds)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None, None
    sockets = 0
    for fd in fds:
        with contextlib.suppress(OSError):  # closed since the listing
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return len(fds) - sockets, sockets


def processes(platform: Platform) -> dict[str, int]:
    """Name → pid of every process the platform runs (a server's workers as `<name> worker`, `worker2`, …)."""
    roots: list[tuple[str, int]] = [(name, child.pid) for name, child in platform.children if child.poll() is None]
    if platform.valkey is not None and platform.valkey.process is not None:
        roots.append(("valkey", platform.valkey.process.pid))
    if platform.mlflow_server is not None and platform.mlflow_server.process is not None:
        roots.append(("mlflow", platform.mlflow_server.process.pid))
    if platform.broker is not None and (broker := platform.broker.running_pid()) is not None:
        roots.append(("kafka", broker))
    named = {}
    for name, pid in roots:
        named[name] = pid
        for number, child in enumerate(descendants(pid), start=1):
            named[f"{name} {'worker' if number == 1 else f'worker{number}'}"] = child
    return named


# what the functions say -----------------------------------------------------------------------------------
def scrape(url: str) -> dict[str, Any]:
    """Prometheus families of one function, by name."""
    text = requests.get(url + "/metrics", timeout=10).text
    return {family.name: family for family in text_string_to_metric_families(text)}


def counter(families: dict[str, Any], name: str, **labels: str) -> float:
    """Sum of a counter's samples whose labels include `labels`."""
    family = families.get(name)
    if family is None:
        return 0.0
    return sum(s.value for s in family.samples if s.name.endswith("_total")
               and all(s.labels.get(k) == v for k, v in labels.items()))


def buckets(families: dict[str, Any], name: str) -> list[tuple[float, float]]:
    """A histogram's cumulative buckets (upper bound, count)."""
    family = families.get(name)
    if family is None:
        return []
    return [(float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")]


def window_p99_ms(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float | None:
    """The 99th percentile of what a histogram counted between two scrapes, interpolated within its bucket (ms).

    >>> window_p99_ms([(0.001, 0), (0.01, 0), (float("inf"), 0)], [(0.001, 50), (0.01, 100), (float("inf"), 100)])
    9.82
    """
    old = dict(before)
    deltas = [(bound, count - old.get(bound, 0.0)) for bound, count in after]
    total = deltas[-1][1] if deltas else 0.0
    if total <= 0:
        return None
    target, lower, below = 0.99 * total, 0.0, 0.0
    for bound, cumulative in deltas:
        if cumulative >= target:
            if bound == float("inf"):
                return lower * 1000
            share = (target - below) / (cumulative - below) if cumulative > below else 1.0
            return round((lower + share * (bound - lower)) * 1000, 3)
        lower, below = bound, cumulative
    return None


class Prober(threading.Thread):
    """Asks the predict functions for a prediction in turn, and the sql function for a count every
    `SQL_EVERY_ROUNDS` rounds, recording latency and failures per series."""

    def __init__(self, urls: dict[str, str], sql: str) -> None:
        super().__init__(name="soak-prober", daemon=True)
        self.urls = urls | {SQL_PROBE: sql}
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.failures: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        examples = HERE.parent / "eventing" / "samples"
        self.bodies = {key: json.loads((examples / f"{'tfd' if key == BASELINE else key}.json").read_text())
                       for key in urls} | {SQL_PROBE: SQL_BODY}

    def run(self) -> None:
        session = requests.Session()
        rounds = 0
        while not self.stopping.wait(PROBE_EVERY_S):
            rounds += 1
            for key, url in self.urls.items():
                if key == SQL_PROBE and rounds % SQL_EVERY_ROUNDS:
                    continue
                began = time.perf_counter()
                try:
                    ok = session.post(url, json=self.bodies[key], timeout=10).status_code == 200
                except requests.RequestException:
                    ok = False
                with self.lock:
                    if ok:
                        self.samples[key].append((time.perf_counter() - began) * 1000)
                    else:
                        self.failures[key] += 1

    def window(self) -> tuple[dict[str, float | None], dict[str, int]]:
        """p99 (ms) and failures per use case since the previous call."""
        with self.lock:
            samples, failures = self.samples, self.failures
            self.samples, self.failures = defaultdict(list), defaultdict(int)
        p99 = {_series(key): (sorted(v)[min(len(v) - 1, int(0.99 * len(v)))] if v else None)
               for key, v in ((k, samples.get(k, [])) for k in self.urls)}
        return p99, {_series(key): failures.get(key, 0) for key in self.urls}


def _series(key: str) -> str:
    return key if key in (BASELINE, SQL_PROBE) else f"predict {key}"


class LogWatch:
    """Counts new WARNING/ERROR lines in each log since the previous call."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths
        self.offsets = {name: path.stat().st_size if path.exists() else 0 for name, path in paths.items()}

    def new_trouble(self) -> dict[str, int]:
        found = {}
        for name, path in self.paths.items():
            if not path.exists():
                continue
            with open(path, "rb") as handle:
                handle.seek(self.offsets[name])
                text = handle.read().decode(errors="replace")
                self.offsets[name] = handle.tell()
            lines = [line for line in text.splitlines() if LOG_TROUBLE.search(line)]
            if lines:
                log.warning("%s logged: %s", name, lines[-1][:300])
            found[f"log {name}"] = len(lines)
        return found


# one sample ------------------------------------------------------------------------------------------------
class Sampler:
    """Everything the soak records, one sample at a time."""

    def __init__(self, platform: Platform, settings: Settings, prober: Prober) -> None:
        self.platform = platform
        self.settings = settings
        self.prober = prober
        self.redis = redis.Redis.from_url(platform.valkey.url if platform.valkey else settings.redis_url or "")
        served = [f for f in FUNCTIONS if f.role != "baseline"]
        self.learners = {f.name: platform.url(f) for f in served if f.role == "learn"}
        self.counted = {f.name: platform.url(f) for f in served if f.role in ("learn", "sink")}
        self.sql_status = prober.urls[SQL_PROBE] + "status"
        logs = settings.data_dir.resolve() / "logs"
        self.logs = LogWatch({name: logs / f"{name}.log" for name, _ in platform.children})
        self.histograms = {name: buckets(scrape(url), LEARN_HISTOGRAM) for name, url in self.learners.items()}
        self.refused = {name: self._refused(url) for name, url in self.counted.items()}
        self.pids: dict[str, int] = {}

    def _refused(self, url: str) -> float:
        families = scrape(url)
        return sum(counter(families, family, outcome=outcome) for family in (
            "coelho_learn_events", "coelho_sink_events") for outcome in ("rejected", "unavailable"))

    def sample(self, t: float) -> dict[str, Any]:
        named = processes(self.platform)
        # memory first, before this sample's own requests (the sql query) raise it, as the lowest of a few
        # reads: a leak raises the floor, a transient (a commit's or a query's buffers) does not
        rss = {name: rss_mib(pid) for name, pid in named.items()}
        for _ in range(RSS_READS - 1):
            time.sleep(RSS_READ_PAUSE_S)
            rss = {name: min((v for v in (old, rss_mib(named[name])) if v is not None), default=None)
                   for name, old in rss.items()}
        descriptors = {name: open_fds(pid) for name, pid in named.items()}
        errors: dict[str, int] = {}
        for name, pid in named.items():
            if name in self.pids and self.pids[name] != pid:
                errors[f"restart {name}"] = 1
        self.pids = named
        errors.update({f"died {name}": 1 for name, child in self.platform.children if child.poll() is not None})
        p99, failed = self.prober.window()
        errors.update(failed)
        for name, url in self.learners.items():
            now = buckets(scrape(url), LEARN_HISTOGRAM)
            p99[f"learn {name}"] = window_p99_ms(self.histograms[name], now)
            self.histograms[name] = now
        for name, url in self.counted.items():
            refused = self._refused(url)
            errors[f"refused {name}"] = int(refused - self.refused[name])
            self.refused[name] = refused
        errors.update(self.logs.new_trouble())
        info = self.redis.info("memory")
        prefix = self.settings.key_prefix
        return {
            "t": round(t, 1),
            "rss_mib": rss,
            "fds": {name: fds[0] for name, fds in descriptors.items()},
            "sockets": {name: fds[1] for name, fds in descriptors.items()},
            "valkey": {"used_memory_mib": info["used_memory"] / 2**20, "keys": self.redis.dbsize(),
                       "wal_mib": sum(self.redis.memory_usage(f"{prefix}:{key}:wal", samples=0) or 0
                                      for key in USE_CASES) / 2**20},
            "wal": {key: self.redis.xlen(f"{prefix}:{key}:wal") for key in USE_CASES},
            "checkpoint_kib": {key: self.redis.strlen(f"{prefix}:{key}:ckpt") / 1024 for key in USE_CASES},
            "dedup_keys": {key: sum(1 for _ in self.redis.scan_iter(f"{prefix}:{key}:seen:*", count=10_000))
                           for key in USE_CASES},
            "delta": {key: delta_files(self.settings.delta_uri(key)) for key in USE_CASES},
            "applied": {name: requests.get(url + "/status", timeout=30).json().get("events_applied")
                        for name, url in self.learners.items()},
            # what DuckDB itself holds (its tables and running queries), beside the sql worker's RSS
            "sql_duckdb_mib": requests.get(self.sql_status, timeout=30).json()["memory_bytes"] / 2**20,
            "p99_ms": p99,
            "errors": errors,
        }


def delta_files(uri: str) -> dict[str, float]:
    """The table's active data files (its current snapshot), the data files on disk, the log's commit entries
    and the log's size in MiB (its checkpoints carry every removed file until the retention)."""
    from deltalake import DeltaTable

    root = Path(uri)
    on_disk = sum(1 for _ in root.glob("**/*.parquet"))
    try:
        active = len(DeltaTable(uri).file_uris())
    except Exception:  # noqa: BLE001 - no table yet
        active = 0
    log = [path for path in (root / "_delta_log").glob("*") if path.is_file()]
    return {"active": active, "on_disk": on_disk, "log": sum(1 for path in log if path.suffix == ".json"),
            "log_mib": round(sum(path.stat().st_size for path in log) / 2**20, 3)}


# the run -----------------------------------------------------------------------------------------------
def free_block(size: int) -> int:
    """A first port such that `size` consecutive loopback ports are free."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + size < 65535 and all(_free(port) for port in range(base, base + size)):
            return base
    raise RuntimeError(f"no {size} consecutive free ports found")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def bounds(settings: Settings, rate_scale: float) -> dict[str, float]:
    """What each bounded count may reach, from the settings that bound it."""
    ttl = int(SOAK_ENV["COELHO_DEDUP_TTL_SECONDS"])
    out: dict[str, float] = {}
    for key, rate in DEFAULT_RATES.items():
        out[f"wal.{key}"] = 2 * settings.checkpoint_every  # trimmed to one interval at every checkpoint
        out[f"dedup_keys.{key}"] = 1.5 * rate * rate_scale * ttl  # one marker per event, for the TTL (±50 %)
        out[f"delta.{key}.active"] = settings.sink_compact_every + 5  # compacted every that many commits
    out["valkey.keys"] = sum(out[f"dedup_keys.{key}"] for key in DEFAULT_RATES) + 100
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="soak %(asctime)s %(message)s", datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # like Ctrl-C: everything started is stopped
    warmup_s = 60 * (args.warmup_minutes if args.warmup_minutes is not None else max(6.0, args.minutes / 3))
    with tempfile.TemporaryDirectory(prefix="coelho-soak-") as tmp:
        for name in ("REDIS_URL", "MLFLOW_TRACKING_URI", "PORT"):
            os.environ.pop(name, None)
        os.environ.update(SOAK_ENV, COELHO_DATA_DIR=str(Path(tmp) / "data"))
        settings = Settings.from_env()
        served = len([f for f in FUNCTIONS if f.role != "baseline"])
        # the web UI on the port below the functions', MLflow on the one after them
        platform = Platform(settings, base_port=free_block(served + 2) + 1, rate_scale=args.rate_scale,
                            steady=True, kafka=args.kafka)
        baseline = FunctionProcess("hello-http", dict(os.environ), Path(tmp))
        samples: list[dict[str, Any]] = []
        try:
            platform.start()
            baseline.launch().wait_ready()
            predictors = {f.use_case: platform.url(f) + "/" for f in FUNCTIONS if f.role == "predict"}
            sql = next(platform.url(f) for f in FUNCTIONS if f.role == "query") + "/"
            prober = Prober({**{key: url for key, url in predictors.items() if key},
                             BASELINE: f"http://127.0.0.1:{baseline.port}/"}, sql)
            log.info("platform up; waiting for every predictor's first answer")
            for key, url in prober.urls.items():
                _wait(lambda u=url, k=key: requests.post(u, json=prober.bodies[k], timeout=10).ok, f"{key} model")
            prober.start()
            sampler = Sampler(platform, settings, prober)
            began = time.monotonic()
            while (elapsed := time.monotonic() - began) < args.minutes * 60:
                # at random intervals (0.5-1.5 x --interval): fixed ones alias with the processes' own periods
                # (a learner checkpoints every 30 s; at exactly 30 s its WAL length drifted as the periods beat)
                pause = args.interval * random.uniform(0.5, 1.5)
                time.sleep(max(0.0, pause - (time.monotonic() - began - elapsed)))
                samples.append(sampler.sample(time.monotonic() - began))
                last = samples[-1]
                log.info("%4.1f min: applied %s, valkey %.1f MiB / %d keys, errors %d", last["t"] / 60,
                         last["applied"], last["valkey"]["used_memory_mib"], last["valkey"]["keys"],
                         sum(last["errors"].values()))
            prober.stopping.set()
        except KeyboardInterrupt:
            log.info("interrupted: stopping everything, judging what was sampled")
        finally:
            baseline.stop()
            platform.stop()
    verdicts = judge(samples, warmup_s, bounds(settings, args.rate_scale))
    results, plots = OUTPUT[args.kafka]
    results.write_text(json.dumps({
        "minutes": args.minutes, "kafka": args.kafka, "rate_scale": args.rate_scale, "interval_s": args.interval,
        "warmup_s": warmup_s, "rates": {k: r * args.rate_scale for k, r in DEFAULT_RATES.items()},
        "settings": SOAK_ENV, "bounds": bounds(settings, args.rate_scale), "verdicts": as_json(verdicts),
        "samples": samples}, indent=1) + "\n")
    plot(samples, warmup_s, plots)
    width = max(len(v.series) for v in verdicts)
    for v in verdicts:
        interval = f"[{v.low:.3f}, {v.high:.3f}]" if v.low is not None and v.high is not None else ""
        print(f"{v.series:<{width}}  {v.rule:<40}  {v.measured:>12.3f} {interval:>22}  limit {v.limit:>12.3f}  "
              f"{v.outcome.upper()}")
    log.info("wrote %s and %s/*.png", results, plots)
    outcomes = {v.outcome for v in verdicts}
    if "inconclusive" in outcomes and "fail" not in outcomes:
        log.info("INCONCLUSIVE: a slope's confidence interval holds its limit; run longer (MINUTES=90)")
    return 1 if "fail" in outcomes else 2 if "inconclusive" in outcomes else 0


def _wait(predicate: Any, what: str, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {timeout:.0f} s")
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
