"""batch: training on 100k and 1M rows per use case against a bare fit, peak memory, batch-predict latency, stop.

Per use case and size (`Plan.batch_rows`: 100k and 1M, 100k with --quick):

1. `coelho produce <uc> --count N --delta` writes the rows straight into a fresh Delta table (its own
   COELHO_DELTA_ROOT): `produce_rows_per_s`, the whole command;
2. `coelho train <uc>` runs as a process, exactly as by hand (sqlite MLflow under the section's data dir,
   the store created beforehand as on a running platform; CatBoost capped at `ITERATIONS` = 300, early
   stopping as usual): `train_seconds` (Popen to exit), `rows_per_s`
   (selected rows / train_seconds), `peak_rss_bytes` (the process's VmHWM, polled from /proc);
3. the baseline, in this process, in the same run: the same rows, split and features prepared with the
   training's own code, then only the fit timed — CatBoost (pools + fit with the same parameters and the
   same validation block for early stopping), or for ECCI the KMeans fits of the same K range on the same
   encoded matrix (no scoring): `bare_fit_seconds`; `overhead_ratio = train_seconds / bare_fit_seconds`
   (reading, features, split, evaluation, comparison, diagnostics, logging and start-up). On two shared cores
   one fit can take twice as long as the same fit a minute later, so the run also reports what surrounds its
   own fit — `around_fit_seconds` = train_seconds minus its `training` stage — and
   `overhead_ratio_around_fit = (bare_fit_seconds + around_fit_seconds) / bare_fit_seconds`;
4. the same training requested from the `train` function as the UI does it (the function started and warmed
   up first, as a deployed one is: its forkserver has imported the training, `coelho.runtime.warm_start`):
   POST the request, poll `/status` every 50 ms until it is no longer running: `function_seconds` (the
   request's checks and MLflow run in the function, the forked `coelho train`, up to the final status),
   `overhead_ratio_function = function_seconds / bare_fit_seconds` and, from the run's own stage timings,
   `overhead_ratio_function_around_fit`. The cold CLI's `overhead_ratio` stays: it is what a JobSink's Job
   or a terminal pays.

Before the first size's training, an online model (default preset) learns the rows before the test block and
is registered as a `coelho-<uc>` version, so the run's online-vs-batch table has its online columns (kept in
the results: `runs[].comparison`). Then `<uc>-batch-predict` serves the champion: raw JSON events posted one
by one, percentiles per round, alternating with hello-http on the same requests (`p99_ratio`, the predict
section's method). For tfd a training with effectively unlimited iterations is stopped through Redis once
boosting runs: `stop_seconds` from the request to the final `killed` status.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import measure
import requests
from servers import FunctionProcess, Processes
from workload import predict_request, stream

from coelho.adapters.mlflow_batch import BatchRegistry
from coelho.adapters.training_state import TrainingState
from coelho.config import Settings
from coelho.core import USE_CASES, OnlineModel
from coelho.core.batch import BATCH_SPECS, Encoder
from coelho.core.progress import Progress
from coelho.core.train_request import TrainRequest
from coelho.runtime.batch_fit import catboost_model, catboost_pools, kmeans_model
from coelho.runtime.history import register_replay
from coelho.runtime.trainer import Trainer, fit_options, plan_training

__all__ = ["batch_bench"]

log = logging.getLogger("bench")

START = "2026-03-02T00:00:00+00:00"
ITERATIONS = 300


def batch_bench(processes: Processes, hello_http: FunctionProcess, plan: measure.Plan, keys: list[str],
                seed: int) -> dict[str, Any]:
    """The batch section: per use case, every size, then batch-predict latency (and for tfd the stop)."""
    data_dir = processes.work_dir / "batch"
    # at most 300 boosting iterations (early stopping may end sooner), for our training and the bare fit alike:
    # the ratio is what is measured, and 1000 iterations on 1M rows take most of an hour on 2 shared cores
    env = processes.env() | {"COELHO_MLFLOW": "on", "COELHO_DATA_DIR": str(data_dir),
                             "COELHO_TRAIN_ITERATIONS": str(ITERATIONS)}
    settings = Settings.from_env(env)
    out: dict[str, Any] = {"sizes": list(plan.batch_rows)}
    for key in keys:
        BatchRegistry(USE_CASES[key], settings.tracking_uri(), settings.artifact_root()).experiment_id()
        result: dict[str, Any] = {"runs": []}
        for index, rows in enumerate(plan.batch_rows):
            root = data_dir / f"delta-{rows}"
            result["runs"].append(_one_size(key, rows, env | {"COELHO_DELTA_ROOT": str(root)}, seed,
                                            online=index == 0, processes=processes))
        predict = processes.launch(f"{key}-batch-predict", COELHO_MLFLOW="on", COELHO_DATA_DIR=str(data_dir))
        predict.wait_ready()
        first = predict_request(key, stream(key, 1, seed + 8)[0])
        result["first_answer_seconds"] = measure.first_answer(predict, first, timeout=120)[0]  # loads the model
        result["predict"] = measure.predict_latency(key, stream(key, plan.predict_needed, seed + 7), predict,
                                                    hello_http, plan)
        processes.stop(predict)
        if key == "tfd":
            small = env | {"COELHO_DELTA_ROOT": str(data_dir / f"delta-{plan.batch_rows[0]}")}
            result["stop"] = _stop_latency(key, small, processes.work_dir / "logs")
        out[key] = result
    return out


def _one_size(key: str, rows: int, env: dict[str, str], seed: int, online: bool,
              processes: Processes) -> dict[str, Any]:
    log.info("batch %s %s: producing straight into Delta", key, f"{rows:,}")
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "coelho.cli", "produce", key, "--count", str(rows), "--seed", str(seed),
                    "--start", START, "--delta"], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    produce_seconds = time.perf_counter() - began
    settings = Settings.from_env(env)
    planned = plan_training(settings, TrainRequest(key))
    if online:  # the comparison needs an online version that learned only the rows before the test block
        log.info("batch %s %s: replaying the rows before the test block into an online model", key, f"{rows:,}")
        model = OnlineModel(USE_CASES[key])
        for chunk in planned.rows.events(range(int(planned.split.test.indices[0]))):
            for event in chunk:
                model.learn(event)
        register_replay(settings, model, f"{key}-bench-replay")
    log.info("batch %s %s: produced in %.1f s; training (coelho train)", key, f"{rows:,}", produce_seconds)

    began = time.perf_counter()
    with open(processes.log_dir / f"train-{key}-{rows}.log", "wb") as progress_log:  # the training's progress log
        child = subprocess.Popen([sys.executable, "-m", "coelho.cli", "train", key], env=env, stdout=subprocess.PIPE,
                                 stderr=progress_log, text=True)
    assert child.stdout is not None
    peak = _PeakRss(child.pid)
    output = child.stdout.read()
    child.wait()
    train_seconds = time.perf_counter() - began
    peak.join()
    if child.returncode != 0:
        raise RuntimeError(f"coelho train {key} exited {child.returncode}: {output[-2000:]}")
    outcome = json.loads(output.strip().splitlines()[-1])
    registry = BatchRegistry(USE_CASES[key], settings.tracking_uri(), settings.artifact_root())
    comparison = registry.read_json(outcome["run_id"], "comparison.json")
    function = _function_training(key, env, processes, registry)
    bare = _bare_fit(key, settings, planned)
    selected = planned.rows.rows
    result = {
        "rows": rows, "selected_rows": selected, "produce_seconds": produce_seconds,
        "produce_rows_per_s": rows / produce_seconds, "train_seconds": train_seconds,
        "rows_per_s": selected / train_seconds, "peak_rss_bytes": peak.bytes,
        "bare_fit_seconds": bare, "overhead_ratio": train_seconds / bare,
        # the same without the noise of a second fit: the time around our fit, on top of the bare fit
        "stage_seconds": outcome["stage_seconds"],
        "around_fit_seconds": train_seconds - outcome["stage_seconds"]["training"],
        "overhead_ratio_around_fit": (bare + train_seconds - outcome["stage_seconds"]["training"]) / bare,
        **function, "overhead_ratio_function": function["function_seconds"] / bare,
        "overhead_ratio_function_around_fit": (bare + function["function_seconds"]
                                               - function["function_stage_seconds"]["training"]) / bare,
        "blocks": planned.split.describe()["rows"], "version": outcome["version"],
        "metrics": outcome["metrics"], "comparison": {"online": comparison["online"], "rows": comparison["rows"],
                                                      "test_rows": comparison["test_rows"]},
    }
    log.info("batch %s %s: train %.1f s (bare fit %.1f s, overhead x%.2f; through the function %.1f s, x%.2f), "
             "%.0f rows/s, peak RSS %.2f GiB", key, f"{rows:,}", train_seconds, bare, result["overhead_ratio"],
             function["function_seconds"], result["overhead_ratio_function"], result["rows_per_s"],
             result["peak_rss_bytes"] / 2**30)
    return result


def _function_training(key: str, env: dict[str, str], processes: Processes, registry: BatchRegistry) -> dict[str, Any]:
    """The same training requested from the `train` function as the UI does it: POST the request, then poll
    `/status` every 50 ms until it is no longer running. The function is started first and left to warm up
    (its forkserver imports the training's modules), as a deployed function is before a training request."""
    names = ("COELHO_MLFLOW", "COELHO_DATA_DIR", "COELHO_TRAIN_ITERATIONS", "COELHO_DELTA_ROOT")
    server = processes.launch("train", **{name: env[name] for name in names})
    url = f"http://127.0.0.1:{server.port}"
    try:
        server.wait_ready()
        deadline = time.monotonic() + 300
        while (warm := requests.get(f"{url}/status", timeout=10).json()["warm_start"]) == "starting":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the train function never warmed up\n{server.tail()}")
            time.sleep(0.2)
        log.info("batch %s: the same training through the train function (warm start: %s)", key, warm)
        began = time.perf_counter()
        answer = requests.post(f"{url}/", json={"use_case": key}, timeout=120)
        if answer.status_code != 202:
            raise RuntimeError(f"POST / answered {answer.status_code}: {answer.text}")
        while (status := requests.get(f"{url}/status?use_case={key}", timeout=10).json())["state"] == "running":
            time.sleep(0.05)
        seconds = time.perf_counter() - began
    finally:
        processes.stop(server)
    if status["state"] != "finished":
        raise RuntimeError(f"the function's {key} training ended {status['state']}: {status.get('error')}")
    metrics = registry.client.get_run(status["run_id"]).data.metrics
    return {"function_seconds": seconds, "function_warm_start": warm,
            "function_stage_seconds": {name.removeprefix("stage_seconds."): value for name, value in metrics.items()
                                       if name.startswith("stage_seconds.")}}


class _PeakRss(threading.Thread):
    """The peak resident memory (VmHWM) of a process since its exec, read from /proc every 0.2 s until it exits.

    `wait4`'s ru_maxrss would count the benchmark process's own pages, copied at fork, before the exec.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.path = Path(f"/proc/{pid}/status")
        self.bytes = 0
        self.start()

    def run(self) -> None:
        while True:
            try:
                text = self.path.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.bytes = max(self.bytes, int(line.split()[1]) * 1024)
            if "State:\tZ" in text:
                return
            time.sleep(0.2)


def _bare_fit(key: str, settings: Settings, planned: Any) -> float:
    """Seconds of the fit alone, on the rows, split and features the training prepared the same way."""
    trainer = Trainer(settings, TrainRequest(key), None, "bench", Progress())
    frames, labels, _ = trainer.features(planned.rows, planned.split)
    kind = BATCH_SPECS[key].model
    options = fit_options(settings)
    if kind == "kmeans":
        encoder = Encoder.fit(trainer.columns, frames["train"])
        x_train = encoder.transform(frames["train"])
        low, high = options.k_range
        began = time.perf_counter()
        for k in range(low, high + 1):
            kmeans_model(k).fit(x_train)
        return time.perf_counter() - began
    began = time.perf_counter()
    train_pool, validation_pool = catboost_pools(trainer.columns, frames["train"], labels["train"],
                                                 frames["validation"], labels["validation"])
    catboost_model(kind, options).fit(train_pool, eval_set=validation_pool)
    return time.perf_counter() - began


def _stop_latency(key: str, env: dict[str, str], log_dir: Path) -> dict[str, Any]:
    """Seconds from a stop request (as POST /stop makes it) to the training's final `killed` status."""
    endless = env | {"COELHO_TRAIN_ITERATIONS": "1000000", "COELHO_TRAIN_EARLY_STOPPING": "1000000"}
    state = TrainingState.open(Settings.from_env(env), key)
    with open(log_dir / f"train-{key}-stop.log", "wb") as sink:
        child = subprocess.Popen([sys.executable, "-m", "coelho.cli", "train", key], env=endless, stdout=sink,
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while not ((status := state.read_status() or {}).get("stage") == "training"
                   and "iteration" in status.get("message", "") and status.get("state") == "running"):
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the training to stop never reached boosting: {status}")
            time.sleep(0.05)
        began = time.perf_counter()
        state.request_stop(status["run_id"])
        while (state.read_status() or {}).get("state") == "running":
            time.sleep(0.02)
        stop_seconds = time.perf_counter() - began
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    final = state.read_status() or {}
    log.info("batch %s: stopped %.2f s after the request (%s)", key, stop_seconds, final.get("state"))
    return {"stop_seconds": stop_seconds, "state": final.get("state"), "exit_code": child.returncode}
