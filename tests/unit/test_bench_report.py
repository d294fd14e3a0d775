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
MODULES = ("servers", "workload", "measure", "report")


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
