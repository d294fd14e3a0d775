"""The `coelho produce` plumbing: options, destinations, pacing, clean stops, exit codes."""

from __future__ import annotations

import argparse
import functools
import json
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from coelho.producers import (
    HttpSink,
    add_produce_arguments,
    produce,
    run_from_args,
    to_cloudevent,
)
from coelho.producers import run as run_module


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="coelho produce")
    add_produce_arguments(parser)
    return parser.parse_args(argv)


def test_options_have_help_and_sensible_defaults() -> None:
    parser = argparse.ArgumentParser(prog="coelho produce")
    add_produce_arguments(parser)
    assert all(action.help for action in parser._actions)
    args = _parse("eta")
    assert (args.rate, args.count, args.seed, args.fraud_rate, args.start) == (
        None, None, None, None, None)
    assert _parse("tfd", "--start", "2026-03-02T08:00").start.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("argv", [
    ("tfd", "--sink", "http://x", "--out", "-"),
    ("nope",),
    ("tfd", "--start", "yesterday"),
    ("tfd", "--drift-at", "-1"),
    ("tfd", "--drift-at", "soon"),
])
def test_bad_command_lines_are_refused_by_the_parser(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        _parse(*argv)


def test_run_from_args_writes_events_and_returns_zero(tmp_path: Path) -> None:
    out = tmp_path / "tfd.jsonl"
    previous_handler = signal.getsignal(signal.SIGTERM)
    args = _parse("tfd", "--rate", "0", "--count", "30", "--seed", "1", "--fraud-rate", "0.5",
                  "--start", "2026-03-02T00:00:00+00:00", "--out", str(out))
    assert run_from_args(args) == 0
    assert len(out.read_text().splitlines()) == 30
    assert signal.getsignal(signal.SIGTERM) is previous_handler


@pytest.mark.parametrize("argv", [
    ("eta", "--count", "1"),  # no --sink, --out or K_SINK
    ("eta", "--count", "1", "--out", "-", "--fraud-rate", "0.1"),
    ("eta", "--count", "1", "--out", "-", "--rate", "-2"),
    ("eta", "--count", "1", "--out", "-", "--unordered-sink", "http://127.0.0.1:9/"),
    ("eta", "--count", "1", "--sink", "http://127.0.0.1:9/", "--unordered-sink", "http://x/", "--in-flight", "0"),
])
def test_unusable_settings_exit_with_two(
    monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...],
) -> None:
    monkeypatch.delenv("K_SINK", raising=False)
    assert run_from_args(_parse(*argv)) == 2


def test_an_unreachable_sink_exits_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    impatient = functools.partial(HttpSink, max_attempts=2, initial_backoff=0.0)
    monkeypatch.setattr(run_module, "HttpSink", impatient)
    assert run_from_args(_parse("eta", "--count", "1", "--sink", "http://127.0.0.1:9/")) == 1


def test_paced_runs_keep_simulated_time_in_step_with_the_wall_clock(
    tmp_path: Path, start: datetime,
) -> None:
    out = tmp_path / "eta.jsonl"
    began = time.monotonic()
    produce("eta", rate=40, count=20, seed=2, out=str(out), start=start)
    elapsed = time.monotonic() - began
    last = json.loads(out.read_text().splitlines()[-1])
    simulated = (datetime.fromisoformat(last["time"]) - start).total_seconds()
    assert simulated - 0.05 <= elapsed <= simulated + 1.0


def test_ctrl_c_stops_cleanly_after_the_events_already_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: datetime,
) -> None:
    calls = 0

    def interrupt_on_sixth(key: str, payload: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise KeyboardInterrupt
        return to_cloudevent(key, payload)

    monkeypatch.setattr("coelho.producers.run.to_cloudevent", interrupt_on_sixth)
    out = tmp_path / "ecci.jsonl"
    report = produce("ecci", rate=0, count=100, seed=1, out=str(out), start=start)
    assert report.interrupted and report.produced == 5
    assert len(out.read_text().splitlines()) == 5


def test_a_random_seed_is_drawn_and_reported(tmp_path: Path, start: datetime) -> None:
    first = produce("eta", rate=0, count=3, out=str(tmp_path / "a"), start=start)
    replay = produce("eta", rate=0, count=3, seed=first.seed, out=str(tmp_path / "b"), start=start)
    assert replay.seed == first.seed
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_files_and_delta_tables_are_written_unpaced_unless_a_rate_is_given(
        tmp_path: Path, start: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[str] = []
    monkeypatch.setattr(run_module, "_wait_until", lambda _wall, _sim, timestamp: waits.append(timestamp))
    monkeypatch.setenv("COELHO_DELTA_ROOT", str(tmp_path / "delta"))
    produce("tfd", count=5, seed=1, out=str(tmp_path / "a.jsonl"), start=start)
    produce("tfd", count=5, seed=1, delta=True, start=start)
    assert waits == []  # pacing is for live sinks
    produce("tfd", count=5, seed=1, rate=2.0, out=str(tmp_path / "b.jsonl"), start=start)
    assert len(waits) == 5


def test_delta_output_appends_the_delta_sink_rows(tmp_path: Path, start: datetime,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from deltalake import DeltaTable

    from coelho.core import USE_CASES
    from coelho.core.table import layout_for
    from coelho.producers.run import make_generator

    monkeypatch.setenv("COELHO_DELTA_ROOT", str(tmp_path / "delta"))
    report = produce("eta", count=250, seed=3, delta=True, start=start)
    assert report.produced == 250
    rows = DeltaTable(str(tmp_path / "delta" / "eta")).to_pyarrow_table().to_pylist()
    layout = layout_for(USE_CASES["eta"])
    generator = make_generator("eta", seed=3, start=start)
    expected = [layout.row(next(generator), ce_id="", ce_source="/coelho/producers/eta", ingested_at=start)
                for _ in range(250)]
    assert [c.name for c in layout.columns] == list(rows[0])
    for row, want in zip(rows, expected, strict=True):
        assert row["ce_id"] == row["trip_id"] and row["kafka_partition"] is None
        assert {k: v for k, v in row.items() if k not in ("ce_id", "ingested_at")} == \
            {k: v for k, v in want.items() if k not in ("ce_id", "ingested_at")}


@pytest.mark.parametrize("key", ["tfd", "eta", "ecci"])
def test_a_steady_stream_keeps_its_rate_from_the_first_event_on(key: str, start: datetime) -> None:
    """`--steady`: no daily rhythm and no warm-up climb (ECCI's returning customers), so a soak's load is flat."""
    rate, windows, minutes = 20.0, 6, 5
    generator = run_module.make_generator(key, seed=3, start=start, rate=rate, steady=True)
    counts = [0] * windows
    for payload in generator:
        minute = (datetime.fromisoformat(payload["timestamp"]) - start).total_seconds() / 60
        if minute >= windows * minutes:
            break
        counts[int(minute // minutes)] += 1
    per_second = [count / (minutes * 60) for count in counts]
    assert all(abs(measured - rate) / rate < 0.1 for measured in per_second), per_second
    assert generator.produced == sum(counts) + 1  # the dropped history is not counted: drift_at counts from here
    assert not run_module.make_generator(key, seed=3, start=start, steady=True, drift_at=5).drifted
