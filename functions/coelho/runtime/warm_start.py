"""Warm starts for the `train` function: each training forked from a process that has imported the training already.

`coelho train` as a fresh process spends two to three seconds before it reads a row — the interpreter, then
CatBoost, scikit-learn, MLflow, matplotlib, River and pyarrow — and more at its exit. The train function
instead starts a `multiprocessing` **forkserver** once: a separate process, started by fork+exec (so it
inherits none of the function's threads, sockets, Redis or MLflow clients), that imports `PRELOAD` and
nothing else, opens no connection and runs no Python thread. Each training is forked from it: the child
gets the request's command line, the function's current environment and working directory, becomes the
leader of its own session (as `start_new_session` did) and runs `coelho train` as the command line would, in
its main thread (so SIGTERM still stops it cleanly: run KILLED, nothing registered). Everything a training
connects to (Redis, MLflow, the Delta table) it opens itself, after the fork.

Native libraries keep their own threads in the forkserver (OpenBLAS's pool, jemalloc's background thread):
both re-initialise themselves in a forked child (`pthread_atfork`), which is what makes numpy and pyarrow
usable after `fork` at all. The exit code reaches the function through the forkserver (`ForkedTraining`, a
`subprocess.Popen` look-alike: `pid`, `poll`, `wait`, `terminate`, `kill`).

`COELHO_TRAIN_WARM_START=off` goes back to one fresh `python -m coelho.cli train` process per training.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from multiprocessing import forkserver, resource_tracker
from typing import Any

__all__ = ["PRELOAD", "READY_WAIT_S", "ForkedTraining", "WarmStarter"]

log = logging.getLogger("coelho.functions")

#: What the forkserver imports once: the parent's main module (as multiprocessing expects) and everything a
#: training imports on its way (the CLI, the trainer and its fit, evaluation, figures and MLflow adapters).
PRELOAD = (
    "__main__", "coelho.cli", "coelho.producers", "coelho.runtime.train_cli", "coelho.runtime.trainer",
    "coelho.runtime.batch_fit", "coelho.runtime.batch_evaluate", "coelho.runtime.history",
    "coelho.adapters.mlflow_batch", "coelho.adapters.batch_pyfunc", "coelho.adapters.figure_png",
    "coelho.adapters.training_state", "catboost", "sklearn.cluster", "sklearn.metrics", "sklearn.inspection",
    "mlflow.pyfunc", "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store",
    "pandas", "tqdm",
)
#: How long a training request waits for a forkserver still importing before it starts a fresh process instead.
READY_WAIT_S = 15.0


def _train(argv: Sequence[str], environ: Mapping[str, str], cwd: str) -> None:
    """The forked child: the function's environment and folder, its own session, then `coelho train ARGV`."""
    os.setsid()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environ)
    from coelho.cli import main

    code = main(["train", *argv])
    atexit._run_exitfuncs()  # what `coelho train` runs before it leaves without the interpreter's teardown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (every forkserver child needs it) keeping this thread's signal
    mask: Python 3.11 starts it with SIGINT and SIGTERM blocked and then *unblocks* them in the calling thread.
    In a function's worker only the lifecycle thread may take them; a thread that took a SIGTERM instead let
    the server stop without the drain (about one stop in ten, while the forkserver warmed up)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class ForkedTraining:
    """One training forked from the forkserver, seen like a `subprocess.Popen`; one thread waits for its exit."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.pid: int = process.pid
        self.returncode: int | None = None
        self._ended = threading.Event()
        threading.Thread(target=self._wait_exit, name=f"train-child-{self.pid}", daemon=True).start()

    def _wait_exit(self) -> None:
        self.process.join()  # the only joiner: multiprocessing's poll is not safe from two threads
        self.returncode = self.process.exitcode
        self.process.close()
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"coelho train (pid {self.pid})", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class WarmStarter:
    """The function process's forkserver: started in the background on first use, then one fork per training."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._lock = threading.Lock()
        self._owner: int | None = None  # the pid that started it (a server may fork after the app is built)
        self.ready = threading.Event()
        self.error: str | None = None

    def start(self) -> None:
        """Start the forkserver (once per process) and mark it ready once its imports are done; returns at once."""
        with self._lock:
            if self._owner == os.getpid():
                return
            self._owner = os.getpid()
        threading.Thread(target=self._warm_up, name="train-forkserver", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            forkserver.set_forkserver_preload(list(PRELOAD))
            _ensure_resource_tracker()
            probe = self._context.Process(target=os.getpid, name="coelho-train-warm-up")
            probe.start()  # returns once the forkserver, its imports done, has forked it
            probe.join()
            if probe.exitcode != 0:
                raise RuntimeError(f"the forkserver's first child exited with code {probe.exitcode}")
            log.info("train: forkserver ready, trainings start warm")
        except Exception as exc:  # noqa: BLE001 - the function falls back to fresh processes
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("train: no forkserver (%s); each training starts a fresh process", self.error)
        finally:
            self.ready.set()

    @property
    def state(self) -> str:
        """starting | ready | failed: what `/status` shows."""
        return "starting" if not self.ready.is_set() else "failed" if self.error else "ready"

    def spawn(self, argv: Sequence[str], wait_s: float = READY_WAIT_S) -> ForkedTraining:
        """Fork `coelho train ARGV` from the forkserver, waiting at most `wait_s` for its imports (the first
        training after the function starts); RuntimeError when it is not ready then or could not start."""
        self.start()
        if not self.ready.wait(wait_s):
            raise RuntimeError(f"the forkserver is still importing after {wait_s:g} s")
        if self.error:
            raise RuntimeError(self.error)
        process = self._context.Process(target=_train, args=(list(argv), dict(os.environ), os.getcwd()),
                                        name=f"coelho-train-{argv[0]}")
        _ensure_resource_tracker()
        process.start()
        return ForkedTraining(process)
