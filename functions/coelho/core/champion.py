"""Choosing the champion: the one rule that says which registered model version serves and restores.

A candidate is a registered version with its score on the use case's rolling window (the ranking
metric over its last `window` events). Only like-for-like candidates compete: scored on the same
window definition, with at least a full window of events seen and a finite score. The best score
wins (max or min per the rule); a tie goes to the newest version, so the choice is deterministic.

Batch models (`coelho-<uc>-batch`) are ranked by the same rule on their test block: the rule's metric
over the whole held-out block (`test_window`), which must hold at least `rule.window` rows.

Examples
--------
>>> from coelho.core.usecase import ChampionRule
>>> rule = ChampionRule("MAE", "min", rolling="RollingMAE", window=100)
>>> candidates = [
...     Candidate(1, 40.0, window_of(rule), events=500),
...     Candidate(2, 35.0, window_of(rule), events=50),        # fewer events than the window
...     Candidate(3, 30.0, Window("RollingMAE", 10), events=500),  # another window definition
...     Candidate(4, 40.0, window_of(rule), events=900),       # ties with 1: newer wins
... ]
>>> choose(candidates, rule).version
4
>>> choose([], rule) is None
True
>>> batch = [Candidate(1, 41.0, test_window(rule), events=5000), Candidate(2, 39.5, test_window(rule), events=80),
...          Candidate(3, 40.2, test_window(rule), events=1200)]
>>> choose(batch, rule, test_window(rule)).version   # version 2 scored on too few test rows
3
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from coelho.core.usecase import ChampionRule

__all__ = ["Candidate", "Window", "candidate_from", "choose", "test_window", "window_of"]


@dataclass(frozen=True)
class Window:
    """How a score was computed: `metric` over the last `size` events.

    >>> Window.parse(str(Window("RollingFBeta", 1000)))
    Window(metric='RollingFBeta', size=1000)
    """

    metric: str
    size: int

    def __str__(self) -> str:
        return f"{self.metric}/{self.size}"

    @classmethod
    def parse(cls, text: str) -> Window:
        """The inverse of `str()`, as stored in registry tags."""
        metric, size = text.rsplit("/", 1)
        return cls(metric, int(size))


@dataclass(frozen=True)
class Candidate:
    """One registered version as the rule sees it."""

    version: int
    score: float | None
    window: Window
    events: int


def window_of(rule: ChampionRule) -> Window:
    """The window definition `rule` ranks on."""
    return Window(rule.rolling, rule.window)


def test_window(rule: ChampionRule) -> Window:
    """How batch runs are ranked: the rule's metric over the test block, of at least `rule.window` rows.

    >>> from coelho.core.usecase import ChampionRule
    >>> str(test_window(ChampionRule("FBeta", "max", rolling="RollingFBeta")))
    'test.FBeta/1000'
    """
    return Window(f"test.{rule.metric}", rule.window)


def candidate_from(version: int, metrics: Mapping[str, Any], events: int, rule: ChampionRule) -> Candidate:
    """A candidate scored from a metric report (`rule.rolling` read from it).

    >>> from coelho.core.usecase import ChampionRule
    >>> rule = ChampionRule("FBeta", "max", rolling="RollingFBeta")
    >>> candidate_from(7, {"RollingFBeta": 0.8, "FBeta": 0.5}, 2000, rule)
    Candidate(version=7, score=0.8, window=Window(metric='RollingFBeta', size=1000), events=2000)
    """
    score = metrics.get(rule.rolling)
    return Candidate(version, None if score is None else float(score), window_of(rule), events)


def eligible(candidate: Candidate, window: Window) -> bool:
    """Scored on `window`, with at least a full window of events (or test rows) and a finite score."""
    return (
        candidate.window == window
        and candidate.events >= window.size
        and candidate.score is not None
        and math.isfinite(candidate.score)
    )


def choose(candidates: Iterable[Candidate], rule: ChampionRule, window: Window | None = None) -> Candidate | None:
    """The champion among `candidates` scored on `window` (default: the rule's rolling window), or None."""
    sign = 1.0 if rule.mode == "max" else -1.0
    window = window or window_of(rule)
    ranked = [c for c in candidates if eligible(c, window)]
    if not ranked:
        return None
    return max(ranked, key=lambda c: (sign * c.score, c.version))  # type: ignore[operator]
