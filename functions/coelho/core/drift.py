"""Concept-drift detection on a model's prequential error stream.

Every learned event yields one error value, computed from what the model said *before* learning it
(the use case's `DriftRule.error`: TFD the 0/1 error of the fraud decision, ETA the absolute error
relative to the actual travel time, ECCI the distance to the assigned cluster centre). A River
detector (ADWIN by default) watches that stream; a change counts as a detection only when the error
went **up** (the window's mean after the cut is above the mean before it): a model that improves is
not news. The monitor is part of the model's state, checkpointed and replayed with it, and keys its
detections on event numbers and event times, never on the wall clock, so a crash replay reproduces
exactly the same detections.

Examples
--------
>>> monitor = DriftMonitor(DriftRule("0/1 error", lambda outcome: outcome["error"], delta=0.002))
>>> for n in range(1, 3001):
...     error = (n % 10 == 0) if n <= 2000 else (n % 2 == 0)  # 10 % errors, then 50 %
...     _ = monitor.update(float(error), n, f"t{n}")
>>> status = monitor.status()
>>> status["detections"], 2000 < status["last_detected_event"] < 2100, status["detector"]
(1, True, 'ADWIN(delta=0.002)')
>>> monitor.recent[0]["error_before"] < monitor.recent[0]["error_after"]
True
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from river.drift import ADWIN

__all__ = ["DriftMonitor", "DriftRule"]

#: How many detections `status()` lists (the count itself is unbounded).
RECENT = 20


@dataclass(frozen=True)
class DriftRule:
    """What a use case watches: the per-event error (from the learn outcome) and the detector's sensitivity.

    `error` returns None when the error is not defined for an event (ECCI before two clusters exist).
    `delta` is ADWIN's significance: smaller means fewer false detections and later true ones.
    """

    name: str
    error: Callable[[Mapping[str, Any]], float | None]
    delta: float = 0.002

    def make_detector(self) -> ADWIN:
        """A fresh detector."""
        return ADWIN(delta=self.delta)

    def describe(self) -> str:
        """The detector and its parameters, as `/status` shows them."""
        return f"ADWIN(delta={self.delta:g})"


class DriftMonitor:
    """A drift detector over one model's error stream, with its detections; pure, picklable."""

    def __init__(self, rule: DriftRule) -> None:
        self.detector_name = rule.describe()
        self.error_name = rule.name
        self.detector = rule.make_detector()
        self.detections = 0
        self.last_detected_at: str | None = None
        self.last_detected_event: int | None = None
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)

    def update(self, error: float | None, event_number: int, event_time: str) -> bool:
        """Account for the error of event number `event_number`; True when it completes a detection."""
        if error is None:
            return False
        before = self.detector.estimation
        self.detector.update(error)
        if not self.detector.drift_detected or self.detector.estimation <= before:
            return False
        self.detections += 1
        self.last_detected_at, self.last_detected_event = event_time, event_number
        self.recent.append({"detection": self.detections, "event": event_number, "at": event_time,
                            "error_before": before, "error_after": self.detector.estimation})
        return True

    def status(self) -> dict[str, Any]:
        """Detector, error stream, detection count, the last detection and the recent ones."""
        return {
            "detector": self.detector_name,
            "error": self.error_name,
            "detections": self.detections,
            "last_detected_at": self.last_detected_at,
            "last_detected_event": self.last_detected_event,
            "error_mean": self.detector.estimation,
            "window": int(self.detector.width),
            "recent": list(self.recent),
        }
