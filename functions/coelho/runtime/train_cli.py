"""`coelho train`: one batch training in the foreground, with a progress bar; Ctrl-C stops it cleanly.

The same command runs in three places: by hand, as the `train` function's child process (which passes the
MLflow run and the lock it already took: `--run-id`, `--lock-token`, `--delta-version`), and as the
Kubernetes Job a Knative JobSink starts for an `io.coelho.train.requested.v1` event (`--event-file`, the
structured CloudEvent the JobSink mounts at `$K_EVENT_PATH/event`). Exit codes: 0 trained and registered,
1 the training failed, was stopped or could not start (already training, too few rows, MLflow
unreachable), 2 bad arguments or a bad event.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from coelho.config import Settings
from coelho.core.progress import Progress
from coelho.core.train_request import (
    EVENT_TYPES,
    K_MAX,
    K_MIN,
    USE_CASE_KEYS,
    InvalidTrainRequest,
    TrainRequest,
    parse_train_request,
    request_from_event,
)

__all__ = ["DESCRIPTION", "add_train_arguments", "request_from_args", "request_from_event_file",
           "run_train_command"]

DESCRIPTION = f"""\
Train the batch model of a use case on its Delta table (COELHO_DELTA_ROOT/<use case>): CatBoost for tfd
(fraud probability) and eta (seconds), KMeans with a K search for ecci. The rows are split by event time
into train | gap | validation | gap | test (COELHO_TRAIN_GAP_SECONDS); early stopping and the K search
use the validation block, the test block is scored once. The run goes to MLflow (MLFLOW_TRACKING_URI) with
its metrics, the online-vs-batch comparison on the same test rows and the diagnostic figures; the model is
registered as coelho-<use case>-batch and the champion alias re-evaluated.

One training per use case at a time (a lock in Redis); progress is published to Redis, so the train
function's /status shows it. Ctrl-C (or SIGTERM) stops the training within a second or two: the run is
marked KILLED and nothing is registered.

With --event-file, the use case and options come from a structured CloudEvent (what a Knative JobSink
mounts at $K_EVENT_PATH/event; a folder means <folder>/event) of type {EVENT_TYPES[0]} (data: the
request), {EVENT_TYPES[1]} (a PingSource's tick, data as a request) or {EVENT_TYPES[2]} (a
learner's drift detection: its use case, with the defaults).
Exit codes: 0 registered, 1 failed / stopped / could not start, 2 bad arguments or event."""


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Define the options of `coelho train` on `parser`."""
    parser.add_argument("use_case", nargs="?", choices=USE_CASE_KEYS, help="which use case to train")
    parser.add_argument("--sample-frac", type=float, default=None, metavar="F",
                        help="train on a seeded random share F in (0, 1] of the selected rows")
    parser.add_argument("--max-rows", type=int, default=None, metavar="N", help="at most the N newest rows")
    parser.add_argument("--since", default=None, metavar="ISO",
                        help="only rows with event time >= ISO (UTC when it has no offset)")
    parser.add_argument("--until", default=None, metavar="ISO", help="only rows with event time < ISO")
    parser.add_argument("--k", type=int, default=None, metavar="K",
                        help=f"ecci only: fit this K ({K_MIN}..{K_MAX}) instead of searching COELHO_TRAIN_K_RANGE")
    parser.add_argument("--event-file", type=Path, default=None, metavar="PATH",
                        help="read the request from a structured CloudEvent in PATH (a JobSink's $K_EVENT_PATH/event): "
                             "a train request, a PingSource tick or a learner's drift detection")
    internal = parser.add_argument_group("set by the train function for its child process")
    internal.add_argument("--run-id", default=None, help="train into this existing MLflow run")
    internal.add_argument("--lock-token", default=None, help="the training lock already taken for this run")
    internal.add_argument("--delta-version", type=int, default=None, help="the Delta table version checked")


def request_from_args(args: argparse.Namespace) -> TrainRequest:
    """The request the command line asks for (InvalidTrainRequest naming each bad option)."""
    options = {"sample_frac": args.sample_frac, "max_rows": args.max_rows, "since": args.since,
               "until": args.until, "k": args.k}
    if args.event_file is not None:
        if args.use_case or any(v is not None for v in options.values()):
            raise InvalidTrainRequest([_problem("event_file", "give either --event-file or a use case and options")])
        return request_from_event_file(args.event_file)
    return parse_train_request({"use_case": args.use_case} | {k: v for k, v in options.items() if v is not None})


def request_from_event_file(path: Path) -> TrainRequest:
    """The request in a structured CloudEvent file (a folder: its `event` file, the JobSink layout)."""
    path = path / "event" if path.is_dir() else path
    try:
        event = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidTrainRequest([_problem("event_file", f"cannot read a JSON CloudEvent from {path}: {exc}")]) \
            from None
    if not isinstance(event, dict):
        raise InvalidTrainRequest([_problem("event_file", f"{path} does not hold a structured CloudEvent")])
    return request_from_event(str(event.get("type")), event.get("data"))


def _problem(field: str, message: str) -> Any:
    from coelho.core.schema import Problem

    return Problem(field, message)


def run_train_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `coelho train`; returns the exit code."""
    from tqdm import tqdm

    from coelho.runtime.trainer import AlreadyTraining, TrainingFailed, outcome_json, run_training

    try:
        request = request_from_args(args)
    except InvalidTrainRequest as exc:
        for problem in exc.problems:
            print(f"coelho train: {problem.field}: {problem.message}", file=sys.stderr)
        return 2
    progress = Progress()
    result: dict[str, Any] = {}
    trigger = "function" if args.run_id else "jobsink" if args.event_file else "cli"

    def work() -> None:
        try:
            result["outcome"] = run_training(settings, request, progress, run_id=args.run_id,
                                             lock_token=args.lock_token, delta_version=args.delta_version,
                                             trigger=trigger)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            result["error"] = exc

    def stop(signum: int, frame: Any) -> None:
        if not progress.stop.is_set():
            tqdm.write("coelho train: stopping (the run will be KILLED, nothing registered)...", file=sys.stderr)
        progress.stop.set()

    worker = threading.Thread(target=work, name="coelho-train", daemon=True)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    bar = tqdm(total=100, unit="%", desc=request.use_case, disable=not sys.stderr.isatty(),
               bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed} {postfix}")
    seen = 0
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
            lines, seen = progress.lines_since(seen)
            for line in lines:
                tqdm.write(line, file=sys.stderr)
            snapshot = progress.snapshot()
            bar.set_description_str(f"{request.use_case} {snapshot['stage']}")
            bar.set_postfix_str(snapshot["message"][:80])
            bar.update(snapshot["percent"] - bar.n)
    finally:
        bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    error = result.get("error")
    if isinstance(error, AlreadyTraining | TrainingFailed):
        print(f"coelho train: {error}", file=sys.stderr)
        return 1
    if error is not None:
        raise error
    outcome = result["outcome"]
    print(json.dumps(outcome_json(outcome)))
    if outcome.state != "finished":
        print(f"coelho train: {outcome.state}: {outcome.error}", file=sys.stderr)
    return 0 if outcome.state == "finished" else 1
