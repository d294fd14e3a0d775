"""The train function's warm starts: trainings forked from a forkserver that imported the training once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from coelho.adapters.training_state import TrainingState
from coelho.runtime.warm_start import ForkedTraining, WarmStarter


@pytest.fixture(scope="module")
def warm() -> WarmStarter:
    starter = WarmStarter()
    starter.start()
    assert starter.ready.wait(300) and starter.state == "ready", starter.error
    return starter


def test_a_forked_training_runs_coelho_train_with_the_current_environment_and_reports_its_exit_code(warm, tmp_path,
                                                                                                    monkeypatch):
    # an empty Delta root: `coelho train` checks the rows first and exits 1 saying the table is empty
    monkeypatch.setenv("COELHO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COELHO_DELTA_ROOT", str(tmp_path / "nowhere"))
    child = warm.spawn(["eta"])
    assert isinstance(child, ForkedTraining) and child.pid != os.getpid()
    assert child.wait(120) == 1 and child.poll() == 1
    assert warm.spawn(["--k", "1", "ecci"]).wait(120) == 2  # a bad argument: exit code 2, as on the command line


def test_sigterm_stops_a_forked_training_in_its_own_session_run_killed(warm, batch_settings, batch_env, streams,
                                                                        monkeypatch):
    for name, value in {**batch_env, "COELHO_TRAIN_ITERATIONS": "200000",
                        "COELHO_TRAIN_EARLY_STOPPING": "200000"}.items():
        monkeypatch.setenv(name, value)
    state = TrainingState.open(batch_settings, "tfd")
    child = warm.spawn(["tfd"])
    try:
        deadline = time.monotonic() + 240
        while not ((status := state.read_status() or {}).get("stage") == "training"
                   and status.get("state") == "running" and "iteration" in status.get("message", "")):
            assert child.poll() is None and time.monotonic() < deadline, status
            time.sleep(0.1)
        assert os.getsid(child.pid) == child.pid  # its own session: a Ctrl-C to the function's terminal is not for it
        child.terminate()  # what the function's own stop does
        assert child.wait(60) == 1
    finally:
        child.kill()
    final = state.read_status() or {}
    assert final["run_id"] == status["run_id"] and final["state"] == "killed"
    client = MlflowClient(batch_settings.tracking_uri(), batch_settings.tracking_uri())
    assert client.get_run(status["run_id"]).info.status == "KILLED"


def test_starting_the_forkserver_keeps_the_calling_threads_stop_signals_blocked():
    # Python 3.11 starts multiprocessing's resource tracker and then unblocks SIGINT and SIGTERM in the calling
    # thread; in a worker only the lifecycle thread may take them. A fresh process, so that the tracker starts.
    probe = (
        "import signal\n"
        "from multiprocessing import resource_tracker\n"
        "from coelho.runtime.warm_start import _ensure_resource_tracker\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})\n"
        "_ensure_resource_tracker()\n"
        "kept = signal.pthread_sigmask(signal.SIG_BLOCK, [])\n"
        "resource_tracker.ResourceTracker().ensure_running()\n"
        "bare = signal.pthread_sigmask(signal.SIG_BLOCK, [])\n"
        "print(sorted(int(s) for s in kept), sorted(int(s) for s in bare))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    kept, bare = out.stdout.split("] [")
    assert kept == f"[{int(signal.SIGINT)}, {int(signal.SIGTERM)}"  # kept blocked
    assert bare == "]\n"  # what the bare call does: both unblocked
