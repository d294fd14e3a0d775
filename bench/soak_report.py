"""The soak's verdicts and plots: pure arithmetic over the samples, then one small PNG per series.

Each series is judged on the samples after the warm-up only (caches filled, TTLs reached):

- memory (RSS of each process; Valkey's `used_memory` net of the WAL streams, which are bounded by their trim
  and judged as counts): the slope, extrapolated to an hour, must be at most `MEMORY_GROWTH_MAX` of the
  process's size (the median RSS; Valkey's for `used_memory`). The slope is Theil–Sen's (the median of the
  slopes between every two samples): a leak raises every later sample, while one sample caught in a
  transient (a commit's buffers, a burst of requests) would tilt a least-squares line but not the median.
  The verdict reads Sen's `CONFIDENCE` interval around it: PASS when its upper end is within the limit,
  FAIL when its lower end is above it, and INCONCLUSIVE in between: the samples are too few or too noisy
  to tell a slope that small from none (a worker whose RSS moves ±6 MiB between samples needs about an hour
  of samples to decide 5 % of 250 MiB per hour), and the run should be longer;
- counts with a bound from a setting (WAL length, dedup keys, Redis keys, active Delta files): every sample
  at most the bound;
- open file descriptors other than sockets (a server's sockets follow its clients' keep-alive connections;
  they are plotted, not judged): the same slope and interval, extrapolated to an hour, against
  `max(FDS_GROWTH_MIN, 5 % of the median)`;
- p99 latencies, as ratios to the no-op `BASELINE` function's p99 in the same window (the machine is shared:
  its load moves every latency together): the median ratio of the last third at most `LATENCY_DRIFT_MAX`
  times the first third's, plus `LATENCY_RATIO_SLACK` (single windows are noisy, a trend is not);
- each Delta table's log (its bytes: checkpoints and commit entries, bounded by the log retention, the
  removed files' retention and the checkpoint interval): flat, the last third's median at most
  `LOG_GROWTH_MAX` times the first third's (a checkpoint written or dropped moves it in steps: a sawtooth);
- errors: none, over the whole run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["BASELINE", "Verdict", "bounded", "drift", "growth", "judge", "memory_growth", "plot", "slope_interval",
           "slope_per_hour"]

MEMORY_GROWTH_MAX = 0.05
FDS_GROWTH_MIN = 5.0
LATENCY_DRIFT_MAX = 1.5
LATENCY_RATIO_SLACK = 0.5
LOG_GROWTH_MAX = 1.25
#: Two-sided confidence of the slope's interval: each of PASS and FAIL is decided at 95 %.
CONFIDENCE = 0.90
#: The p99 series of the no-op function every other latency is divided by.
BASELINE = "baseline hello-http"


@dataclass(frozen=True)
class Verdict:
    """One series' judgement: what was measured against what it had to stay under.

    `low` and `high` bound a slope's measurement (Sen's interval); `outcome` is "pass", "fail" or
    "inconclusive" (the interval holds the limit: run longer).
    """

    series: str
    rule: str
    measured: float
    limit: float
    outcome: str
    low: float | None = None
    high: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "pass"


def _outcome(ok: bool) -> str:
    return "pass" if ok else "fail"


def _pairwise_slopes(times: Sequence[float], values: Sequence[float]) -> list[float]:
    return sorted((values[j] - values[i]) / (times[j] - times[i])
                  for i in range(len(times)) for j in range(i + 1, len(times)) if times[j] != times[i])


def slope_per_hour(times: Sequence[float], values: Sequence[float]) -> float:
    """Theil–Sen slope of `values` over `times` (seconds), in units per hour: the median pairwise slope.

    >>> slope_per_hour([0, 1800, 3600], [100, 105, 110])
    10.0
    >>> slope_per_hour([0, 30], [7, 7])
    0.0
    >>> slope_per_hour([0, 600, 1200, 1800, 2400], [50, 50, 50, 50, 90])  # one transient at the end: flat
    0.0
    """
    slopes = _pairwise_slopes(times, values)
    return statistics.median(slopes) * 3600 if slopes else 0.0


def slope_interval(times: Sequence[float], values: Sequence[float],
                   confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Sen's distribution-free confidence interval of the Theil–Sen slope, in units per hour.

    The ranks of the interval's ends among the sorted pairwise slopes come from the variance of Kendall's S
    statistic, n(n-1)(2n+5)/18 (as `scipy.stats.theilslopes` computes them, ties not corrected). Samples
    are taken as independent: the soak draws its pauses at random so that they do not follow the
    processes' own periods.

    >>> low, high = slope_interval(range(0, 3600, 60), [100 + t / 360 for t in range(0, 3600, 60)])
    >>> round(low, 6), round(high, 6)   # exact line: 10 per hour, no doubt
    (10.0, 10.0)
    >>> low, high = slope_interval([0, 600, 1200, 1800], [50, 60, 40, 55])
    >>> low < 0 < high                  # four noisy samples: could be anything
    True
    """
    slopes = _pairwise_slopes(times, values)
    if not slopes:
        return 0.0, 0.0
    n = len(values)
    spread = statistics.NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    upper = min(round((len(slopes) + spread) / 2) - 1, len(slopes) - 1)
    lower = max(min(round((len(slopes) - spread) / 2), upper), 0)
    return slopes[lower] * 3600, slopes[max(upper, lower)] * 3600


def growth(series: str, times: Sequence[float], values: Sequence[float], limit: float,
           rule: str = "growth/h") -> Verdict:
    """Theil–Sen growth per hour, extrapolated, against `limit`, decided by its confidence interval.

    >>> samples = range(0, 1800, 30)
    >>> growth("rss", samples, [100 + t / 3600 for t in samples], 5.0).outcome       # 1 per hour
    'pass'
    >>> growth("rss", samples, [100 + t / 60 for t in samples], 5.0).outcome         # 60 per hour
    'fail'
    >>> noisy = [100 + 1.2 * ((37 * i) % 11 - 5) + t / 720 for i, t in enumerate(samples)]
    >>> growth("rss", samples, noisy, 5.0).outcome   # 5 per hour under ±6 of noise, for 30 minutes: cannot tell
    'inconclusive'
    """
    low, high = slope_interval(times, values)
    outcome = "pass" if high <= limit else "fail" if low > limit else "inconclusive"
    return Verdict(series, rule, slope_per_hour(times, values), limit, outcome, low, high)


def memory_growth(series: str, times: Sequence[float], values: Sequence[float],
                  size: float | None = None) -> Verdict:
    """`growth` against `MEMORY_GROWTH_MAX` of the process's `size` (default: the series' median).

    >>> memory_growth("rss", range(0, 1800, 30), [100.0] * 60).limit
    5.0
    """
    size = statistics.median(values) if size is None else size
    return growth(series, times, values, MEMORY_GROWTH_MAX * size, f"growth/h <= {MEMORY_GROWTH_MAX:.0%} of size")


def bounded(series: str, values: Sequence[float], bound: float) -> Verdict:
    """Every value at most `bound`.

    >>> bounded("wal", [10, 4000, 9000], 10000).ok, bounded("wal", [10, 12000], 10000).ok
    (True, False)
    """
    return Verdict(series, "max <= bound", max(values), bound, _outcome(max(values) <= bound))


def drift(series: str, values: Sequence[float], factor: float = LATENCY_DRIFT_MAX,
          slack: float = LATENCY_RATIO_SLACK) -> Verdict:
    """The last third's median at most `factor` × the first third's, plus `slack`.

    >>> drift("p99", [5, 6, 5, 6, 5, 7]).ok, drift("p99", [5, 5, 5, 20, 25, 30]).ok
    (True, False)
    >>> drift("log", [2.0, 2.3, 2.1, 2.2, 2.4, 2.0], LOG_GROWTH_MAX, 0).ok   # a sawtooth, flat
    True
    """
    third = max(1, len(values) // 3)
    first, last = statistics.median(values[:third]), statistics.median(values[-third:])
    limit = factor * first + slack
    rule = f"last third <= {factor:g} x first third" + (f" + {slack:g}" if slack else "")
    return Verdict(series, rule, last, limit, _outcome(last <= limit))


def judge(samples: Sequence[Mapping[str, Any]], warmup_s: float, bounds: Mapping[str, float]) -> list[Verdict]:
    """Every verdict of a soak: `samples` as `bench/soak.py` records them, `bounds` per bounded count series."""
    steady = [s for s in samples if s["t"] >= warmup_s]
    if len(steady) < 3:
        raise ValueError(f"only {len(steady)} samples after the {warmup_s:.0f} s warm-up: run longer")
    times = [s["t"] for s in steady]
    verdicts: list[Verdict] = []
    for name in steady[-1]["rss_mib"]:
        values = [s["rss_mib"].get(name) for s in steady]
        if None not in values:  # a process that was not there all along (restarted) is reported, not judged
            verdicts.append(memory_growth(f"rss {name}", times, values))
    valkey_size = statistics.median(s["rss_mib"]["valkey"] for s in steady) if "valkey" in steady[-1]["rss_mib"] \
        else None
    verdicts.append(memory_growth("valkey used_memory net of the WAL", times, [
        s["valkey"]["used_memory_mib"] - s["valkey"].get("wal_mib", 0.0) for s in steady], valkey_size))
    for series, bound in bounds.items():
        verdicts.append(bounded(series, [_lookup(s, series) for s in steady], bound))
    for key, files in steady[-1]["delta"].items():
        if "log_mib" in files:
            log_mib = [s["delta"][key]["log_mib"] for s in steady]
            verdicts.append(drift(f"delta log_mib {key}", log_mib, LOG_GROWTH_MAX, slack=0))
    for name in steady[-1]["fds"]:
        values = [s["fds"].get(name) for s in steady]
        if None not in values:
            limit = max(FDS_GROWTH_MIN, MEMORY_GROWTH_MAX * statistics.median(values))
            verdicts.append(growth(f"fds {name}", times, values, limit, "growth/h small"))
    for name in steady[-1]["p99_ms"]:
        if name == BASELINE:
            continue
        ratios = [s["p99_ms"][name] / s["p99_ms"][BASELINE] for s in steady
                  if s["p99_ms"].get(name) is not None and s["p99_ms"].get(BASELINE)]
        if len(ratios) >= 3:
            verdicts.append(drift(f"p99 {name} / {BASELINE}", ratios))
    errors = sum(sum(s["errors"].values()) for s in samples)
    verdicts.append(Verdict("errors", "none", errors, 0, _outcome(errors == 0)))
    return verdicts


def _lookup(sample: Mapping[str, Any], dotted: str) -> float:
    """`sample["a"]["b"]` for "a.b".

    >>> _lookup({"wal": {"tfd": 3}}, "wal.tfd")
    3
    """
    value: Any = sample
    for part in dotted.split("."):
        value = value[part]
    return value


def as_json(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [asdict(v) for v in verdicts]


def plot(samples: Sequence[Mapping[str, Any]], warmup_s: float, folder: Path) -> list[Path]:
    """One PNG per series group in `folder`: RSS, Valkey, WAL, checkpoints, dedup keys, Delta files, fds, sql, latency,
    errors."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    minutes = [s["t"] / 60 for s in samples]
    groups = {
        "rss": ("RSS (MiB) per process", lambda s: s["rss_mib"]),
        "valkey": ("Valkey used_memory (MiB) and keys (thousands)", lambda s: {
            "used_memory MiB": s["valkey"]["used_memory_mib"], "keys (k)": s["valkey"]["keys"] / 1000}),
        "wal": ("WAL length (entries) per use case", lambda s: s["wal"]),
        "checkpoint": ("checkpoint (the model) in Valkey, KiB per use case", lambda s: s.get("checkpoint_kib", {})),
        "dedup": ("dedup keys per use case", lambda s: s["dedup_keys"]),
        "delta": ("Delta files per table (active, on disk)", lambda s: {
            f"{key} {kind}": files[kind] for key, files in s["delta"].items() for kind in ("active", "on_disk")}),
        "fds": ("open file descriptors per process (sockets apart)", lambda s: s["fds"]),
        "sockets": ("open sockets per process", lambda s: s.get("sockets", {})),
        "sql": ("sql worker: RSS and what DuckDB holds in it (MiB)", lambda s: {
            "worker RSS": s["rss_mib"].get("sql worker"), "DuckDB": s.get("sql_duckdb_mib")}),
        "latency": ("p99 latency (ms) per window", lambda s: s["p99_ms"]),
        "errors": ("errors per window", lambda s: s["errors"]),
    }
    written = []
    for name, (title, pick) in groups.items():
        figure, axes = plt.subplots(figsize=(7, 3.2))
        labels = sorted({label for s in samples for label in pick(s)})
        for label in labels:
            points = [(m, pick(s).get(label)) for m, s in zip(minutes, samples, strict=True)]
            xs, ys = zip(*[(m, v) for m, v in points if v is not None], strict=True) if any(
                v is not None for _, v in points) else ((), ())
            axes.plot(xs, ys, label=label, linewidth=1)
        axes.axvline(warmup_s / 60, color="grey", linestyle=":", linewidth=1)
        axes.set_title(title, fontsize=9)
        axes.set_xlabel("minutes (dotted: end of warm-up)", fontsize=8)
        axes.tick_params(labelsize=7)
        if labels:
            axes.legend(fontsize=6, ncol=3, loc="upper left")
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        written.append(path)
    return written
