"""`coelho train`: the JobSink's event-file path (a real process, on the lean MLflow server), exit codes, bad input.

Apart from the JobSink test, the command runs in this process (`coelho.cli.main`): the same code, without
paying an interpreter start per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from coelho.adapters.mlflow_server import MlflowServer
from coelho.adapters.training_state import TrainingState
from coelho.cli import main
from support.servers import free_port


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], *args: str,
          **extra_env: str) -> tuple[int, str]:
    """Exit code and stderr of `coelho train ARGS` run in this process."""
    for name, value in {**env, **extra_env}.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        code = main(["train", *args])
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _train(env: dict[str, str], *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env, **extra_env}
    environment.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.run([sys.executable, "-m", "coelho.cli", "train", *args], env=environment, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def lean_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """The lean MLflow server `coelho up` runs (one worker), on its own sqlite store."""
    server = MlflowServer(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", free_port(),
                          log_path=tmp_path / "mlflow-server.log").start()
    yield server
    server.stop()


def test_jobsink_event_file_trains_and_registers_on_the_lean_server(batch_env, batch_settings, streams, lean_server,
                                                                      tmp_path):
    # what a JobSink mounts: the structured CloudEvent in $K_EVENT_PATH/event
    event_dir = tmp_path / "k-event"
    event_dir.mkdir()
    (event_dir / "event").write_text(json.dumps({
        "specversion": "1.0", "id": "train-1", "source": "/apis/v1/namespaces/coelho/jobsinks/train",
        "type": "io.coelho.train.requested.v1", "datacontenttype": "application/json",
        "data": {"use_case": "ecci", "k": 4, "sample_frac": 0.9}}))
    result = _train(batch_env, "--event-file", str(event_dir), MLFLOW_TRACKING_URI=lean_server.url)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["state"] == "finished" and outcome["version"] == 1 and outcome["champion"] == 1
    client = MlflowClient(lean_server.url, lean_server.url)
    assert client.get_model_version_by_alias("coelho-ecci-batch", "champion").run_id == outcome["run_id"]
    run = client.get_run(outcome["run_id"])
    assert run.data.tags["coelho.trigger"] == "jobsink" and run.data.params["kmeans.n_clusters"] == "4"
    assert json.loads(run.data.tags["coelho.request"]) == {"use_case": "ecci", "sample_frac": 0.9, "k": 4}
    status = TrainingState.open(batch_settings, "ecci").read_status()
    assert status["state"] == "finished" and status["run_id"] == outcome["run_id"] and status["trigger"] == "jobsink"
    assert "K=4" in result.stderr  # the progress log goes to the Job's log


@pytest.mark.parametrize(("args", "message"), [
    ((), "use_case: must be one of"),
    (("tfd", "--k", "3"), "k: applies to ecci only"),
    (("eta", "--sample-frac", "0"), "sample_frac: must be a number in (0, 1]"),
    (("tfd", "--since", "2026-03-02", "--until", "2026-03-01"), "until: must be later than since"),
    (("--event-file", "/nonexistent/event"), "event_file: cannot read"),
    (("tfd", "--event-file", "/nonexistent/event"), "event_file: give either"),
])
def test_bad_arguments_exit_2_naming_the_problem(monkeypatch, capsys, batch_env, args, message):
    code, err = _main(monkeypatch, capsys, batch_env, *args)
    assert code == 2 and message in err, err


def test_an_event_of_another_type_exits_2(monkeypatch, capsys, batch_env, tmp_path):
    path = tmp_path / "event"
    path.write_text(json.dumps({"specversion": "1.0", "id": "1", "source": "/x", "type": "io.coelho.tfd.transaction.v1",
                                "data": {"use_case": "tfd"}}))
    code, err = _main(monkeypatch, capsys, batch_env, "--event-file", str(path))
    assert code == 2 and "type: must be one of io.coelho.train.requested.v1, dev.knative.sources.ping" in err


def test_failures_exit_1_with_a_clear_message(monkeypatch, capsys, batch_env, batch_settings, streams):
    code, err = _main(monkeypatch, capsys, batch_env, "tfd", "--max-rows", "2500")
    assert code == 1 and "validation block has" in err and "test block has" in err
    code, err = _main(monkeypatch, capsys, batch_env, "eta", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "MLflow unreachable at http://127.0.0.1" in err
    state = TrainingState.open(batch_settings, "eta")
    assert state.holder() is None and state.read_status()["state"] == "failed"
    assert state.try_lock("someone-else", "run-123", "2026-03-02T10:00:00+00:00") is None
    try:
        code, err = _main(monkeypatch, capsys, batch_env, "eta")
        assert code == 1 and "eta is already training (run run-123" in err
    finally:
        state.unlock("someone-else")


def test_the_final_status_and_the_lock_release_are_one_step(batch_settings):
    # A client that reads "finished" may start the next training at once (no 409 from a lock not yet released).
    state = TrainingState.open(batch_settings, "tfd")
    assert state.try_lock("mine", "run-1", "2026-03-02T10:00:00+00:00") is None
    assert state.finish("mine", {"state": "finished", "run_id": "run-1"})
    assert state.holder() is None and state.read_status() == {"state": "finished", "run_id": "run-1"}
    assert state.try_lock("next", "run-2", "2026-03-02T10:01:00+00:00") is None
    try:  # a training that lost its lock says nothing over the one that holds it now
        assert not state.finish("mine", {"state": "failed", "run_id": "run-1"})
        assert state.holder()["token"] == "next" and state.read_status()["state"] == "finished"
    finally:
        state.unlock("next")
