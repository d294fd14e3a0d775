"""Progress of one training: stage, percent, message and a bounded log, plus the stop request.

The training code calls `enter(stage)` and `step(fraction, message)`; `step` adds the message to the
log at most once per `log_every` seconds (always with `log=True`), so a fast loop does not flood it.
`check()` raises `Stopped` once `stop` was requested: the training calls it between steps (and the
CatBoost callback returns False instead). Thread-safe: a reporter thread publishes `snapshot()`.

Examples
--------
>>> clock = iter(range(100)).__next__
>>> progress = Progress(clock=lambda: float(clock()))
>>> progress.enter("training", "fitting CatBoostClassifier")
>>> progress.step(0.5, "iteration 50/100")
>>> snapshot = progress.snapshot()
>>> snapshot["stage"], snapshot["percent"], snapshot["message"]
('training', 43.0, 'iteration 50/100')
>>> [line.split(" ", 1)[1] for line in snapshot["log"]]
['[training] fitting CatBoostClassifier', 'iteration 50/100']
>>> progress.enter("evaluating", "scoring the test block")
>>> progress.seconds
{'training': 4.0}
>>> progress.stop.set()
>>> progress.check()
Traceback (most recent call last):
...
coelho.core.progress.Stopped: stop requested
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["LOG_LINES", "STAGES", "Progress", "Stopped"]

#: Each stage's share of the percent bar: (from, to).
STAGES: dict[str, tuple[float, float]] = {
    "starting": (0.0, 2.0),
    "loading": (2.0, 14.0),
    "splitting": (14.0, 16.0),
    "training": (16.0, 70.0),
    "evaluating": (70.0, 75.0),
    "comparing": (75.0, 82.0),
    "diagnostics": (82.0, 92.0),
    "registering": (92.0, 99.0),
    "finished": (100.0, 100.0),
}
#: Lines the log keeps (the newest).
LOG_LINES = 200


class Stopped(Exception):
    """A stop was requested: the training ends without registering anything."""


class Progress:
    """Where one training is; safe to read from another thread."""

    def __init__(self, log_every: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._clock = clock
        self._log_every = log_every
        self._log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._logged_at = float("-inf")
        self.logged = 0  # lines ever added (the log keeps the newest LOG_LINES)
        self.stage = "starting"
        self.percent = 0.0
        self.message = "starting"
        self.seconds: dict[str, float] = {}  # how long each finished stage took
        self._entered: tuple[str, float] | None = None

    def enter(self, stage: str, message: str) -> None:
        """Start `stage` (its percent range begins) and log `message`; the previous stage's time is kept."""
        with self._lock:
            now = self._clock()
            if self._entered is not None:
                self.seconds[self._entered[0]] = round(now - self._entered[1], 3)
            self._entered = (stage, now)
            self.stage = stage
            self.percent = STAGES[stage][0]
            self.message = message
            self._append(f"[{stage}] {message}")

    def step(self, fraction: float, message: str, log: bool = False) -> None:
        """`fraction` (0..1) of the current stage is done; the message goes to the log when due (or `log`)."""
        low, high = STAGES[self.stage]
        with self._lock:
            self.percent = round(low + (high - low) * min(max(fraction, 0.0), 1.0), 1)
            self.message = message
            if log or self._clock() - self._logged_at >= self._log_every:
                self._append(message)

    def log(self, message: str) -> None:
        """Add a line to the log without moving the bar."""
        with self._lock:
            self._append(message)

    def check(self) -> None:
        """Raise Stopped when a stop was requested."""
        if self.stop.is_set():
            raise Stopped("stop requested")

    def snapshot(self) -> dict[str, Any]:
        """stage, percent, message and the log (oldest first)."""
        with self._lock:
            return {"stage": self.stage, "percent": self.percent, "message": self.message, "log": list(self._log)}

    def lines_since(self, seen: int) -> tuple[list[str], int]:
        """Log lines added after the first `seen` ones (those still kept), and the new count."""
        with self._lock:
            fresh = min(self.logged - seen, len(self._log))
            return (list(self._log)[-fresh:] if fresh > 0 else []), self.logged

    def _append(self, message: str) -> None:
        now = self._clock()
        self._logged_at = now
        self.logged += 1
        stamp = datetime.fromtimestamp(now, UTC).strftime("%H:%M:%S")
        self._log.append(f"{stamp} {message}")
