"""The benchmark's arithmetic and table (bench/): no servers, no timing."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
MODULES = ("servers", "workload", "measure", "report", "kafka_e2e", "sql_bench", "lifecycle", "soak_report", "soak",
           "batch_bench")


@pytest.fixture(scope="module")
def bench() -> Iterator[SimpleNamespace]:
    """bench/ modules, imported the way bench/run.py imports them (its folder first on sys.path)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))
        loaded: dict[str, ModuleType] = {name: importlib.import_module(name) for name in MODULES}
        yield SimpleNamespace(**loaded)
    for name in MODULES:
        sys.modules.pop(name, None)


def result(**changes: Any) -> dict[str, Any]:
    """One use case's results with every figure on the passing side of its target."""
    figures: dict[str, Any] = {
        "learn": {"events_per_s": 800.0, "raw_events_per_s": 15_000.0, "hello_events_per_s": 1_400.0,
                  "efficiency": 0.7},
        "predict": {"p50_ms": 0.6, "p99_ms": 1.0, "hello_p50_ms": 0.5, "hello_p99_ms": 0.8, "p99_ratio": 1.25},
        "cold_start": {"seconds": 1.5, "hello_seconds": 0.2, "events": 20_000},
        "checkpoint": {"bytes": 10 * 1024 * 1024, "serialize_ms": 100.0, "events": 20_000},
        "quality": {"metric": "MAE", "mode": "min", "events": 5_000, "default": 500.0, "original_config": 520.0,
                    "default_is_at_least_original": True},
    }
    for path, value in changes.items():
        section, field = path.split("__")
        figures[section][field] = value
    return figures


def kafka_result(**changes: Any) -> dict[str, Any]:
    """kafka_e2e results with the p99 and max-rate targets on their boundaries and every event applied."""
    rate = {"count": 500, "events_per_s": 100.0, "p50_ms": 8.0, "p99_ms": 20.0, "hello_p50_ms": 6.0,
            "hello_p99_ms": 12.0}
    figures: dict[str, Any] = {
        "use_case": "tfd", "partitions": 3,
        "rates": [{"rate": 100, **rate}, {**rate, "rate": 1000, "count": 5000, "events_per_s": 1000.0,
                                          "p99_ms": 50.0, "hello_p99_ms": 25.0}],
        "max_events_per_s": 5_000.0, "hello_max_events_per_s": 6_000.0, "max_ratio": 0.83,
        "backlog": {"count": 10_000}, "produced": 15_560, "applied": 15_560,
    }
    figures.update(changes)
    return figures


def test_kafka_rows_have_the_p99_target_at_1000_events_per_s_only(bench: SimpleNamespace) -> None:
    rows = bench.report.kafka_rows(kafka_result())
    assert [row.figure for row in rows] == [
        "kafka e2e p99 @ 100 ev/s", "kafka e2e p99 @ 1,000 ev/s", "kafka e2e max rate", "kafka e2e applied",
    ]
    assert [row.ok for row in rows] == [None, True, True, True]
    assert rows[1].target == "<= 50 ms and <= 2 x hello" and rows[1].measured == "50.0 ms"
    assert "hello p50/p99 6.0/25.0 ms" in rows[1].detail
    assert rows[2].target == ">= 5,000" and "hello 6,000 ev/s (ratio 0.83)" in rows[2].detail
    assert rows[0].as_json() == {"figure": "kafka e2e p99 @ 100 ev/s", "measured": "20.0 ms", "target": "-",
                                 "pass": None}
    lines = bench.report.render(rows).splitlines()
    result_column = lines[0].index("result")
    assert [line[result_column:] for line in lines[2:]] == ["-", "PASS", "PASS", "PASS"]


def test_kafka_rows_fail_above_50_ms_twice_hello_or_below_5000_events_per_s(bench: SimpleNamespace) -> None:
    slow = kafka_result()
    slow["rates"][1] |= {"p99_ms": 50.1, "hello_p99_ms": 40.0}
    assert [row.figure for row in bench.report.kafka_rows(slow) if row.ok is False] == ["kafka e2e p99 @ 1,000 ev/s"]
    slower_than_twice_hello = kafka_result()
    slower_than_twice_hello["rates"][1] |= {"p99_ms": 30.0, "hello_p99_ms": 14.9}
    assert [row.figure for row in bench.report.kafka_rows(slower_than_twice_hello) if row.ok is False] == [
        "kafka e2e p99 @ 1,000 ev/s"]
    drained_slowly = bench.report.kafka_rows(kafka_result(max_events_per_s=4_999.0))
    assert [row.figure for row in drained_slowly if row.ok is False] == ["kafka e2e max rate"]


def test_kafka_rows_show_the_unordered_lever_without_a_target(bench: SimpleNamespace) -> None:
    lever = {"rate": 1000, "p50_ms": 5.0, "p99_ms": 30.0, "p99_ratio": 1.2, "max_events_per_s": 4_000.0,
             "max_ratio": 0.67}
    rows = bench.report.kafka_rows(kafka_result(unordered=lever))
    [row] = [row for row in rows if "unordered" in row.figure]
    assert row.ok is None and row.measured == "30.0 ms" and "drains 4,000 ev/s" in row.detail


def test_kafka_rows_fail_when_an_event_is_missing(bench: SimpleNamespace) -> None:
    missing = bench.report.kafka_rows(kafka_result(applied=15_559))
    assert [row.figure for row in missing if row.ok is False] == ["kafka e2e applied"]
    assert missing[-1].measured == "15,559/15,560"


def test_kafka_failure_is_one_failed_row(bench: SimpleNamespace) -> None:
    [row] = bench.report.kafka_rows({"error": "KafkaBrokerError: `java` not found on PATH"})
    assert row.ok is False and row.measured == "n/a" and "java" in row.detail


def test_kafka_plan_produces_fresh_events_for_every_phase(bench: SimpleNamespace) -> None:
    quick, full = bench.measure.QUICK, bench.measure.FULL
    assert 1000 in quick.kafka_rates and quick.kafka_rates == full.kafka_rates
    # warm-up, the paced rates, the backlog, then the unordered lever's paced top rate and backlog
    assert bench.kafka_e2e.needed(quick) == bench.kafka_e2e.WARMUP_EVENTS + 500 + 5_000 + 10_000 + 5_000 + 10_000
    assert bench.kafka_e2e.needed(full) == bench.kafka_e2e.WARMUP_EVENTS + 1_500 + 15_000 + 30_000 + 15_000 + 30_000


def test_efficiency_is_the_share_of_ml_plus_http_cost(bench: SimpleNamespace) -> None:
    assert bench.measure.efficiency(500.0, 10_000.0, 1_000.0) == pytest.approx(0.55)
    assert bench.measure.efficiency(1_000.0, 2_000.0, 2_000.0) == pytest.approx(1.0)


def test_percentile_interpolates_between_ranks(bench: SimpleNamespace) -> None:
    samples = [float(v) for v in range(1, 102)]
    assert bench.measure.percentile(samples, 50) == 51.0
    assert bench.measure.percentile(samples, 99) == 100.0


def test_targets_pass_on_their_boundaries(bench: SimpleNamespace) -> None:
    rows = bench.report.rows("eta", result())
    assert [row.figure for row in rows] == [
        "learn efficiency", "predict p99 ratio", "cold start", "checkpoint size", "checkpoint serialize",
        "quality MAE (min)",
    ]
    assert all(row.ok for row in rows)
    assert rows[-1].target == "<= original"


@pytest.mark.parametrize(
    ("change", "figure"),
    [
        ({"learn__efficiency": 0.69}, "learn efficiency"),
        ({"predict__p99_ratio": 2.01}, "predict p99 ratio"),
        ({"cold_start__seconds": 1.51}, "cold start"),
        ({"checkpoint__bytes": 10 * 1024 * 1024 + 1}, "checkpoint size"),
        ({"checkpoint__serialize_ms": 100.1}, "checkpoint serialize"),
        ({"quality__default_is_at_least_original": False}, "quality MAE (min)"),
    ],
)
def test_each_target_fails_alone(bench: SimpleNamespace, change: dict[str, Any], figure: str) -> None:
    failed = [row.figure for row in bench.report.rows("eta", result(**change)) if not row.ok]
    assert failed == [figure]


def test_table_has_aligned_columns_and_a_result_column(bench: SimpleNamespace) -> None:
    rows = bench.report.rows("tfd", result(quality__metric="FBeta", quality__mode="max", quality__default=None,
                                           quality__default_is_at_least_original=False))
    lines = bench.report.render(rows).splitlines()
    assert lines[0].split() == ["use", "case", "figure", "measured", "baseline", "/", "detail", "target", "result"]
    assert set(lines[1]) == {"-", " "}
    assert len(lines) == 2 + len(rows)
    assert lines[-1].endswith("FAIL") and "n/a" in lines[-1] and ">= original" in lines[-1]
    assert all(line.endswith("PASS") for line in lines[2:-1])
    result_column = lines[0].index("result")
    assert all(line[result_column:] in ("PASS", "FAIL") for line in lines[2:])
    assert rows[0].as_json() == {"figure": "learn efficiency", "measured": "0.70", "target": ">= 0.7", "pass": True}


def test_plans_generate_enough_events(bench: SimpleNamespace) -> None:
    for plan in (bench.measure.QUICK, bench.measure.FULL):
        assert plan.stream_needed > plan.cold_events >= plan.quality_events
        assert plan.stream_needed >= plan.learn_needed + plan.predict_needed
    assert bench.measure.FULL.cold_events == 100_000


def test_results_are_rounded_to_significant_digits(bench: SimpleNamespace) -> None:
    value = {"a": 0.123456789, "b": [1234.5678, 3], "c": {"d": True, "e": "x"}}
    assert bench.report.rounded(value) == {"a": 0.1235, "b": [1235.0, 3], "c": {"d": True, "e": "x"}}


def test_sql_row_passes_at_ratio_1_5_and_fails_above_or_on_error(bench: SimpleNamespace) -> None:
    result = {"rows": 1_000_000, "p50_ms": 30.0, "native_p50_ms": 20.0, "ratio": 1.5}
    [row] = bench.report.sql_rows(result)
    assert (row.figure, row.measured, row.target, row.ok) == ("sql GROUP BY ratio", "1.50", "<= 1.5", True)
    assert "native 20.0 ms; 1,000,000 rows" in row.detail
    assert bench.report.sql_rows({**result, "ratio": 1.51})[0].ok is False
    assert bench.report.sql_rows({"error": "RuntimeError: boom"})[0].ok is False


def test_synthetic_sql_rows_have_the_tfd_table_schema(bench: SimpleNamespace) -> None:
    from coelho.adapters.delta_store import arrow_schema
    from coelho.core import tfd
    from coelho.core.table import layout_for

    table = bench.sql_bench.synthetic_tfd(1000, seed=1)
    assert table.schema == arrow_schema(layout_for(tfd.USE_CASE)) and table.num_rows == 1000
    assert len(set(table.column("merchant_id").to_pylist())) <= 200


def test_lifecycle_rows_pass_at_two_seconds_and_sit_next_to_hello(bench: SimpleNamespace) -> None:
    figures = {"stop_seconds": 2.0, "cleanup_seconds": 0.4, "successor_lead_seconds": 2.0,
               "hello_stop_seconds": 0.7, "hello_ready_seconds": 0.9}
    rows = bench.report.lifecycle_rows({"events": 2000, "lease_seconds": 10.0, "tfd": figures,
                                        "eta": {**figures, "stop_seconds": 2.01, "successor_lead_seconds": 2.01}})
    assert [(row.use_case, row.figure, row.ok) for row in rows] == [
        ("tfd", "stop (SIGTERM)", True), ("tfd", "successor leads", True),
        ("eta", "stop (SIGTERM)", False), ("eta", "successor leads", False)]
    assert "hello-event 0.70 s; clean-up in the worker 0.40 s after 2,000 events" in rows[0].detail
    assert "hello-event first answer 0.90 s; lease 10 s" in rows[1].detail
    [row] = bench.report.lifecycle_rows({"error": "RuntimeError: no stop line"})
    assert row.ok is False and row.measured == "n/a"


def soak_sample(t: float, rss: float, used: float = 10.0, p99: float = 5.0, errors: int = 0,
                baseline: float = 2.0, wal: float = 1.0, log_mib: float = 2.0) -> dict[str, Any]:
    return {"t": t, "rss_mib": {"tfd-learn worker": rss, "valkey": 20.0}, "fds": {"tfd-learn worker": 20},
            "delta": {"tfd": {"active": 10, "on_disk": 50, "log": 300, "log_mib": log_mib}},
            "valkey": {"used_memory_mib": used, "wal_mib": wal, "keys": 1000}, "wal": {"tfd": 4000},
            "p99_ms": {"learn tfd-learn": p99, "baseline hello-http": baseline},
            "errors": {"refused tfd-learn": errors}}


def test_soak_judges_growth_after_the_warm_up_bounds_latency_and_errors(bench: SimpleNamespace) -> None:
    # Memory grows during the warm-up (caches, TTLs), then is flat: only the part after the warm-up is judged.
    samples = [soak_sample(t, 100 + min(t, 600) / 10) for t in range(0, 1800, 30)]
    verdicts = {v.series: v for v in bench.soak_report.judge(samples, 600, {"wal.tfd": 10_000})}
    assert all(v.ok for v in verdicts.values()), [v for v in verdicts.values() if not v.ok]
    assert set(verdicts) == {"rss tfd-learn worker", "rss valkey", "valkey used_memory net of the WAL", "wal.tfd",
                             "fds tfd-learn worker", "p99 learn tfd-learn / baseline hello-http", "delta log_mib tfd",
                             "errors"}
    sawtooth = [soak_sample(t, 100, log_mib=2.0 + 0.4 * (t // 30 % 4 == 0)) for t in range(0, 1800, 30)]
    assert {v.series: v for v in bench.soak_report.judge(sawtooth, 600, {})}["delta log_mib tfd"].ok
    log_grows = [soak_sample(t, 100, log_mib=2.0 + t / 600) for t in range(0, 1800, 30)]  # a retention not reached
    assert not {v.series: v for v in bench.soak_report.judge(log_grows, 600, {})}["delta log_mib tfd"].ok
    growing = [soak_sample(t, 100 + t / 60) for t in range(0, 1800, 30)]  # 60 MiB/h on about 120
    assert not {v.series: v for v in bench.soak_report.judge(growing, 600, {})}["rss tfd-learn worker"].ok
    slower = [soak_sample(t, 100, p99=5 if t < 1200 else 30) for t in range(0, 1800, 30)]
    latency = "p99 learn tfd-learn / baseline hello-http"
    assert not {v.series: v for v in bench.soak_report.judge(slower, 600, {})}[latency].ok
    loaded = [soak_sample(t, 100, p99=5 if t < 1200 else 30, baseline=2 if t < 1200 else 12)
              for t in range(0, 1800, 30)]  # the whole machine slower: the ratio holds
    assert {v.series: v for v in bench.soak_report.judge(loaded, 600, {})}[latency].ok
    failed = [soak_sample(t, 100, errors=int(t == 60)) for t in range(0, 1800, 30)]  # during the warm-up too
    assert not {v.series: v for v in bench.soak_report.judge(failed, 600, {})}["errors"].ok
    assert not {v.series: v for v in bench.soak_report.judge(samples, 600, {"wal.tfd": 3_999})}["wal.tfd"].ok


def test_soak_judges_valkey_net_of_its_wal_against_its_process_size(bench: SimpleNamespace) -> None:
    # The WAL swings between checkpoints (bounded by its trim, judged as a count): not a leak.
    sawtooth = [soak_sample(t, 100, used=5 + (t % 300) / 300, wal=1 + (t % 300) / 300) for t in range(0, 1800, 30)]
    [valkey] = [v for v in bench.soak_report.judge(sawtooth, 600, {}) if v.series.startswith("valkey")]
    assert valkey.outcome == "pass" and valkey.limit == pytest.approx(1.0)  # 5 % of Valkey's 20 MiB RSS
    growing = [soak_sample(t, 100, used=5 + t / 1800) for t in range(0, 1800, 30)]  # 2 MiB/h
    [valkey] = [v for v in bench.soak_report.judge(growing, 600, {}) if v.series.startswith("valkey")]
    assert valkey.outcome == "fail" and valkey.low > valkey.limit


def test_soak_calls_a_noisy_slope_near_its_limit_inconclusive(bench: SimpleNamespace) -> None:
    rng = __import__("random").Random(3)
    noisy = [soak_sample(t, 250 + 4 * t / 3600 + rng.gauss(0, 6)) for t in range(0, 1800, 30)]  # 4 MiB/h, ±6
    [rss] = [v for v in bench.soak_report.judge(noisy, 600, {}) if v.series == "rss tfd-learn worker"]
    assert rss.outcome == "inconclusive" and rss.low < rss.limit < rss.high  # limit 12.5 MiB/h
    longer = [soak_sample(t, 250 + 4 * t / 3600 + rng.gauss(0, 6)) for t in range(0, 7200, 30)]
    [rss] = [v for v in bench.soak_report.judge(longer, 600, {}) if v.series == "rss tfd-learn worker"]
    assert rss.outcome == "pass" and rss.high < rss.limit


def test_soak_window_p99_comes_from_histogram_deltas(bench: SimpleNamespace) -> None:
    before = [(0.001, 10.0), (0.01, 10.0), (float("inf"), 10.0)]
    after = [(0.001, 10.0), (0.01, 110.0), (float("inf"), 110.0)]  # 100 new requests, all within 1..10 ms
    assert bench.soak.window_p99_ms(before, after) == pytest.approx(9.91)
    assert bench.soak.window_p99_ms(after, after) is None


@pytest.mark.parametrize("name", ["soak_report", "soak", "report"])
def test_docstring_examples(bench: SimpleNamespace, name: str) -> None:
    import doctest

    results = doctest.testmod(getattr(bench, name), optionflags=doctest.ELLIPSIS)
    assert results.attempted and results.failed == 0


def test_batch_rows_check_overhead_memory_at_1m_latency_and_stop(bench: SimpleNamespace) -> None:
    def run(rows: int, **changes: Any) -> dict[str, Any]:
        return {"rows": rows, "selected_rows": rows, "train_seconds": 13.0, "rows_per_s": rows / 13.0,
                "bare_fit_seconds": 10.0, "overhead_ratio": 1.3, "produce_rows_per_s": 17_000.0,
                "around_fit_seconds": 3.0, "overhead_ratio_around_fit": 1.3, "function_seconds": 12.0,
                "overhead_ratio_function": 1.2, "overhead_ratio_function_around_fit": 1.1,
                "function_warm_start": "ready",
                "peak_rss_bytes": 4 * 2**30, "blocks": {"train": 1, "validation": 1, "test": 1}, **changes}

    predict = {"p99_ratio": 2.0, "p50_ms": 0.5, "p99_ms": 1.0, "hello_p50_ms": 0.3, "hello_p99_ms": 0.5}
    result = {"sizes": [100_000, 1_000_000], "tfd": {
        "runs": [run(100_000, peak_rss_bytes=5 * 2**30), run(1_000_000)], "predict": predict,
        "stop": {"stop_seconds": 2.0, "state": "killed", "exit_code": 1}}}
    rows = bench.report.batch_rows(result)
    assert [(r.figure, r.ok) for r in rows] == [
        ("batch train 100k overhead", True), ("batch train 100k via function", True),
        ("batch train 100k peak RSS", None),  # the memory target is at 1M rows
        ("batch train 1,000k overhead", True), ("batch train 1,000k via function", True),
        ("batch train 1,000k peak RSS", True),
        ("batch-predict p99 ratio", True), ("batch stop", True)]
    slow = run(1_000_000, overhead_ratio=1.31, overhead_ratio_function=1.31, peak_rss_bytes=5 * 2**30)
    failing = {"sizes": [1_000_000], "tfd": {"runs": [slow], "predict": {**predict, "p99_ratio": 2.1}}}
    assert [r.ok for r in bench.report.batch_rows(failing)] == [False, False, False, False]
    assert bench.report.batch_rows({"error": "RuntimeError: boom"})[0].ok is False


def test_ui_rows_page_load_without_target_and_round_trip_ratio(bench: SimpleNamespace) -> None:
    parts = {"browser_out": 0.2, "server": 8.5, "browser_in": 0.7, "round_trip": 9.2, "to_frame": 7.4,
             "handler": 2.6, "ui_http": 2.29, "handler_own": 0.31, "nicegui": 3.94}
    result = {"users": 20, "load_p50_ms": 512.3, "load_p99_ms": 1798.0, "hello_load_p50_ms": 99.4,
              "hello_load_p99_ms": 120.2, "load_ratio": 5.16, "fcp_p50_ms": 372.0, "predict_p50_ms": 0.9,
              "predict_p99_ms": 2.0, "ui_http_p50_ms": 0.5, "direct_p50_ms": 0.6, "ratio": 1.5,
              "paced_direct_p50_ms": 2.29, "paced_ratio": 4.02, "parts_p50_ms": parts, "hello_click_p50_ms": 3.4,
              "server_ratio": 6.95, "handler_ratio": 2.12, "ui_http_ratio": 1.87, "paced_call_ratio": 1.0,
              "alone_predict_p50_ms": 11.1, "ui_cpu_users": 0.01, "ui_cpu_alone": 0.008}
    load, ratio, split, server = bench.report.ui_rows(result)
    assert (load.measured, load.ok) == ("512/1798 ms", None) and "bare NiceGUI page 99/120 ms (x5.16)" in load.detail
    assert (ratio.measured, ratio.target, ratio.ok) == ("1.50", "<= 1.5", True)
    assert "20 simulated users" in ratio.detail and "direct p50 0.60 ms back to back" in ratio.detail
    assert "2.29 ms paced like the clicks (x4.02)" in ratio.detail
    assert (split.measured, split.ok) == ("9.2 ms", None) and "call 2.29 + own 0.31" in split.detail
    assert "bare NiceGUI click 3.4 ms" in split.detail
    assert (server.measured, server.ok) == ("6.95", None) and "(x1.00 paced)" in server.detail
    assert "1.0% of a core with the users, 0.8% without" in server.detail
    assert bench.report.ui_rows({**result, "ratio": 1.51})[1].ok is False
    assert [row.ok for row in bench.report.ui_rows({"error": "RuntimeError: no chromium"})] == [False]
