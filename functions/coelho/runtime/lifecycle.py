"""A function process's life under functions-framework's gunicorn: serving, draining, stopped.

On Knative every scale-down, roll-out and node drain ends a function with SIGTERM (and SIGKILL after the
grace period); `Ctrl-C` of `coelho fn serve` sends SIGINT to the whole process group. Neither of
functions-framework's servers gives a function the chance to finish its own work: uvicorn (the ASGI
targets) drains its connections and then re-raises the signal with its default disposition, so the
worker dies without running any exit hook; gunicorn's gthread worker (the Flask targets) exits at once
on SIGINT and SIGQUIT; and neither knows about work that is not a request (a learner's final
checkpoint, its lease, its MLflow run; a Delta micro-batch; a running SQL query).

So every function takes its stop signals itself, the same way whatever the server:

* `Lifecycle.install()` runs when the entry module is imported, in gunicorn's master, and registers a
  fork hook. In each worker that hook blocks SIGTERM, SIGINT and SIGQUIT in the main thread (threads
  started later inherit the mask) and starts a `lifecycle` thread that waits for them (`sigwait`): a
  signal sent to the master (which forwards SIGTERM, or SIGQUIT for SIGINT) or to the whole group
  reaches that thread only.
* On the first one, `stop()`: new requests get a JSON 503 with `Retry-After` (`GET /status` and
  `/metrics` still answer, `/healthz` fails); each function's `begin` hook runs (sql interrupts its
  running queries); the requests in flight finish (at most `DRAIN_S`); then each function's `finish`
  hook cleans up and one line per function says what it did and how long the stop took.
* Only then does the thread hand the server a SIGTERM (`_thread.interrupt_main`, which runs the
  server's own handler in the main thread), and the server stops as it always does. When the worker
  then exits, the exit handlers run and the process ends without tearing the interpreter down, which
  with River models, MLflow and pandas loaded takes seconds that Knative's grace period would pay for.

Outside a gunicorn worker (the functions' in-process tests, `functions-framework --debug`) nothing is
installed; `close_all()` runs the `finish` hooks from threading's exit hooks instead, and tests call it.
"""

from __future__ import annotations

import _thread
import atexit
import concurrent.futures.thread  # noqa: F401 - registers its exit hook before ours (see close_all)
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from coelho.config import Settings
from coelho.runtime import telemetry

__all__ = ["DRAIN_S", "LIFECYCLE", "Draining", "Lifecycle"]

log = logging.getLogger("coelho.lifecycle")

#: The signals a worker takes itself: Knative's SIGTERM, Ctrl-C's SIGINT, and gunicorn master's SIGQUIT.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
#: Longest wait for the requests in flight when a stop begins.
DRAIN_S = 10.0
#: What a refused request is told: the sender retries (a KafkaSource does) and finds a successor.
RETRY_AFTER_S = 1


class Draining(RuntimeError):
    """The process is stopping: the request is refused, to be retried elsewhere."""


@dataclass(frozen=True)
class _Function:
    name: str
    finish: Callable[[], str]
    begin: Callable[[], None] | None


class Lifecycle:
    """One process's stop: refuse new requests, let the ones in flight finish, clean up every function."""

    def __init__(self) -> None:
        self.draining = threading.Event()
        self.cond = threading.Condition()
        self.in_flight = 0
        self.functions: list[_Function] = []
        self.stop_reason: str | None = None
        self.is_master = False  # gunicorn's master: it forks the workers and serves nothing itself
        self.in_worker = False  # a gunicorn worker whose stop signals the lifecycle thread takes
        self._fork_hook = False
        self._recycle_reason: str | None = None

    # what functions register ---------------------------------------------------------------------
    def on_stop(self, name: str, finish: Callable[[], str], begin: Callable[[], None] | None = None) -> None:
        """Register a function's clean-up: `begin` when the stop begins, `finish` (→ what it did) once drained."""
        with self.cond:
            self.functions.append(_Function(name, finish, begin))

    def enter(self) -> None:
        """Count one more request in flight; `Draining` when the process is stopping."""
        with self.cond:
            if self.draining.is_set():
                raise Draining(f"the function is stopping ({self.stop_reason}); retry in {RETRY_AFTER_S} s")
            self.in_flight += 1

    def leave(self) -> None:
        """One request in flight less."""
        with self.cond:
            self.in_flight -= 1
            self.cond.notify_all()

    @contextmanager
    def request(self) -> Iterator[None]:
        """`enter` … `leave` around one request."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

    # stopping ------------------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Drain, then clean up every registered function; each logs one line (runs once per process)."""
        started = time.monotonic()
        with self.cond:
            if self.draining.is_set():
                return
            self.stop_reason = reason
            self.draining.set()
            functions = list(self.functions)
        for function in functions:
            if function.begin is not None:
                _guarded(function.name, function.begin)
        with self.cond:
            if not self.cond.wait_for(lambda: self.in_flight == 0, DRAIN_S):
                log.warning("%d request(s) still in flight after %.0f s; stopping anyway", self.in_flight, DRAIN_S)
        if not functions:  # a function made on its first request (the learn functions) never was
            log.info("worker %d stopped (%s) in %.2f s: no request was served", os.getpid(), reason,
                     time.monotonic() - started)
        self.close_all(reason, started)

    def close_all(self, reason: str = "exit", started: float | None = None) -> None:
        """Run every registered `finish` hook once (newest first), each logging what it did and how long it took."""
        if self.is_master:
            return
        started = time.monotonic() if started is None else started
        while True:
            with self.cond:
                if not self.functions:
                    return
                function = self.functions.pop()
            summary = _guarded(function.name, function.finish) or "clean-up failed (see above)"
            log.info("%s stopped (%s) in %.2f s: %s", function.name, reason, time.monotonic() - started, summary)

    def recycle(self, reason: str) -> bool:
        """Stop this worker as SIGTERM would (drain, clean up, exit); gunicorn's master then forks a fresh one.

        For a worker whose libraries keep memory it cannot give back: its replacement starts from the
        state the function keeps outside the process. Only in a gunicorn worker (elsewhere there is no
        one to start the next process): False, and nothing happens.

        >>> Lifecycle().recycle("a test process")
        False
        """
        if not self.in_worker or self.draining.is_set():
            return False
        self._recycle_reason = reason
        os.kill(os.getpid(), signal.SIGTERM)  # taken by the lifecycle thread: every other thread blocks it
        return True

    # the worker's signals ----------------------------------------------------------------------------
    def install(self) -> None:
        """In gunicorn's master, before it forks: every worker it forks will take its stop signals itself."""
        if not self._fork_hook:
            self._fork_hook = True
            telemetry.configure_logging(Settings.from_env().log_level)  # every worker logs how it stopped
            os.register_at_fork(after_in_parent=self._forked_worker, after_in_child=self._in_worker)

    def _forked_worker(self) -> None:
        self.is_master = self.is_master or "gunicorn.arbiter" in sys.modules

    def _in_worker(self) -> None:
        if "gunicorn.arbiter" not in sys.modules:  # forked by something else than gunicorn's master
            return
        self.is_master = False
        self.in_worker = True
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        threading.Thread(target=self._wait_for_signal, name="lifecycle", daemon=True).start()

    def _wait_for_signal(self) -> None:
        received = signal.Signals(signal.sigwait(STOP_SIGNALS))
        self.stop(self._recycle_reason or received.name)
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler):
            _thread.interrupt_main(signal.SIGTERM)  # the server's own graceful stop, in the main thread
        else:  # the server has not installed its handler yet: end as the default disposition would
            os._exit(128 + signal.SIGTERM)

    def at_exit(self) -> None:
        """threading's exit hook: clean up what is left; after a signalled stop, end the worker at once."""
        self.close_all()
        if self.draining.is_set() and not self.is_master:
            atexit._run_exitfuncs()  # type: ignore[attr-defined] # what the interpreter would run next (logging too)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)


def _guarded(name: str, hook: Callable[[], str | None]) -> str | None:
    try:
        return hook()
    except Exception:
        log.exception("%s: clean-up failed", name)
        return None


#: The process's lifecycle.
LIFECYCLE = Lifecycle()

# Functions used in-process (no gunicorn worker) still clean up at exit. A learner's last checkpoint and
# MLflow registration need concurrent.futures (MLflow uploads with a thread pool), which refuses new work
# once the interpreter starts exiting — before plain `atexit` hooks run. So threading's exit hooks, which
# run first and in reverse order of registration: registered after concurrent.futures' own, ours runs first.
threading._register_atexit(LIFECYCLE.at_exit)  # type: ignore[attr-defined]
