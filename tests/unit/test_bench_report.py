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
MODULES = ("servers", "workload", "measure", "report", "kafka_e2e", "sql_bench")


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
    """kafka_e2e results with the p99 target on its boundary and every event applied."""
    rate = {"count": 500, "events_per_s": 100.0, "p50_ms": 8.0, "p99_ms": 20.0, "hello_p50_ms": 6.0,
            "hello_p99_ms": 12.0}
    figures: dict[str, Any] = {
        "use_case": "tfd", "partitions": 3,
        "rates": [{"rate": 100, **rate}, {**rate, "rate": 1000, "count": 5000, "events_per_s": 1000.0,
                                          "p99_ms": 50.0}],
        "max_events_per_s": 900.0, "hello_max_events_per_s": 1200.0, "max_ratio": 0.75,
        "backlog": {"count": 10_000}, "produced": 15_560, "applied": 15_560,
    }
    figures.update(changes)
    return figures


def test_kafka_rows_have_the_p99_target_at_1000_events_per_s_only(bench: SimpleNamespace) -> None:
    rows = bench.report.kafka_rows(kafka_result())
    assert [row.figure for row in rows] == [
        "kafka e2e p99 @ 100 ev/s", "kafka e2e p99 @ 1,000 ev/s", "kafka e2e max rate", "kafka e2e applied",
    ]
    assert [row.ok for row in rows] == [None, True, None, True]
    assert rows[1].target == "<= 50 ms" and rows[1].measured == "50.0 ms"
    assert "hello p50/p99 6.0/12.0 ms" in rows[1].detail
    assert "hello 1,200 ev/s (ratio 0.75)" in rows[2].detail
    assert rows[0].as_json() == {"figure": "kafka e2e p99 @ 100 ev/s", "measured": "20.0 ms", "target": "-",
                                 "pass": None}
    lines = bench.report.render(rows).splitlines()
    result_column = lines[0].index("result")
    assert [line[result_column:] for line in lines[2:]] == ["-", "PASS", "-", "PASS"]


def test_kafka_rows_fail_above_50_ms_or_when_an_event_is_missing(bench: SimpleNamespace) -> None:
    slow = kafka_result()
    slow["rates"][1]["p99_ms"] = 50.1
    assert [row.figure for row in bench.report.kafka_rows(slow) if row.ok is False] == ["kafka e2e p99 @ 1,000 ev/s"]
    missing = bench.report.kafka_rows(kafka_result(applied=15_559))
    assert [row.figure for row in missing if row.ok is False] == ["kafka e2e applied"]
    assert missing[-1].measured == "15,559/15,560"


def test_kafka_failure_is_one_failed_row(bench: SimpleNamespace) -> None:
    [row] = bench.report.kafka_rows({"error": "KafkaBrokerError: `java` not found on PATH"})
    assert row.ok is False and row.measured == "n/a" and "java" in row.detail


def test_kafka_plan_produces_fresh_events_for_every_phase(bench: SimpleNamespace) -> None:
    quick, full = bench.measure.QUICK, bench.measure.FULL
    assert 1000 in quick.kafka_rates and quick.kafka_rates == full.kafka_rates
    assert bench.kafka_e2e.needed(quick) == bench.kafka_e2e.WARMUP_EVENTS + 500 + 5_000 + 10_000
    assert bench.kafka_e2e.needed(full) == bench.kafka_e2e.WARMUP_EVENTS + 1_500 + 15_000 + 30_000


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


def test_ui_rows_page_load_without_target_and_round_trip_ratio(bench: SimpleNamespace) -> None:
    result = {"users": 20, "load_p50_ms": 512.3, "load_p99_ms": 1798.0, "hello_load_p50_ms": 99.4,
              "hello_load_p99_ms": 120.2, "load_ratio": 5.16, "fcp_p50_ms": 372.0, "predict_p50_ms": 0.9,
              "predict_p99_ms": 2.0, "ui_http_p50_ms": 0.5, "direct_p50_ms": 0.6, "ratio": 1.5}
    load, ratio = bench.report.ui_rows(result)
    assert (load.measured, load.ok) == ("512/1798 ms", None) and "bare NiceGUI page 99/120 ms (x5.16)" in load.detail
    assert (ratio.measured, ratio.target, ratio.ok) == ("1.50", "<= 1.5", True)
    assert "20 simulated users" in ratio.detail and "direct p50 0.6 ms" in ratio.detail
    assert bench.report.ui_rows({**result, "ratio": 1.51})[1].ok is False
    assert [row.ok for row in bench.report.ui_rows({"error": "RuntimeError: no chromium"})] == [False]
