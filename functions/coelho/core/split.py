"""Honest splits for batch models: by event time, train | gap | validation | gap | test.

Rows are sorted by event time. The train block holds the oldest `fractions[0]` of the rows, the
validation block the next `fractions[1]`, the test block the rest; rows whose event time falls within
`gap` after a block's end are dropped, so every train row is older than every validation row by more
than the gap, and likewise validation and test (the gap is at least the label delay: a model must not
train on rows whose labels were not known when the next block starts). Early stopping and tuning see
the validation block only; the test block is scored once, after fitting (scikit-learn's
`TimeSeriesSplit(gap=)` and the Fraud Detection Handbook's "Validation strategies" make the same point:
any other scheme trains on the future).

Examples
--------
>>> times = [s * 1_000_000 for s in range(100)]          # one row per second
>>> split = time_split(times, gap_seconds=2)
>>> [(b.name, b.start, b.stop) for b in split.blocks]
[('train', 0, 70), ('validation', 72, 85), ('test', 87, 100)]
>>> split.dropped
4
>>> split.blocks[1].first_us - split.blocks[0].last_us > 2_000_000
True
>>> too_small(split, min_rows=14)
['validation block has 13 rows, fewer than the minimum of 14', 'test block has 13 rows, fewer than the minimum of 14']
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["DEFAULT_FRACTIONS", "Block", "Split", "iso_from_us", "missing_classes", "time_split", "too_small"]

#: Shares of the rows in the train, validation and test blocks (before the gaps are dropped).
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_from_us(us: int | None) -> str | None:
    """Microseconds since the epoch as ISO-8601 UTC text.

    >>> iso_from_us(1_772_409_600_000_000)
    '2026-03-02T00:00:00+00:00'
    """
    return None if us is None else (_EPOCH + timedelta(microseconds=int(us))).isoformat()


@dataclass(frozen=True)
class Block:
    """Rows `start` (inclusive) to `stop` (exclusive) of the time-sorted rows, and their time range."""

    name: str
    start: int
    stop: int
    first_us: int | None
    last_us: int | None

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def time_range(self) -> list[str | None]:
        """[first, last] event time, ISO-8601."""
        return [iso_from_us(self.first_us), iso_from_us(self.last_us)]


@dataclass(frozen=True)
class Split:
    """The three blocks of one split, its settings, and how many rows fell into the gaps."""

    train: Block
    validation: Block
    test: Block
    gap_seconds: float
    fractions: tuple[float, float, float]
    dropped: int

    @property
    def blocks(self) -> tuple[Block, Block, Block]:
        return self.train, self.validation, self.test

    def describe(self) -> dict[str, Any]:
        """Rows and time ranges per block, the gap and the fractions (what a run records)."""
        return {
            "rows": {b.name: b.rows for b in self.blocks},
            "time_range": {b.name: b.time_range() for b in self.blocks},
            "gap_seconds": self.gap_seconds,
            "fractions": list(self.fractions),
            "dropped_in_gaps": self.dropped,
        }


def time_split(
    times_us: Sequence[int], gap_seconds: float, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> Split:
    """Split rows sorted by event time (`times_us`, microseconds, ascending) into train | validation | test."""
    if any(later < earlier for earlier, later in zip(times_us, times_us[1:], strict=False)):
        raise ValueError("times_us must be sorted ascending")
    if gap_seconds < 0 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError("gap_seconds must be >= 0 and the fractions positive, summing to 1")
    n = len(times_us)
    gap_us = round(gap_seconds * 1e6)

    def block(name: str, start: int, stop: int) -> Block:
        stop = max(start, stop)
        return Block(name, start, stop, times_us[start] if stop > start else None,
                     times_us[stop - 1] if stop > start else None)

    if n == 0:
        empty = [block(name, 0, 0) for name in ("train", "validation", "test")]
        return Split(*empty, gap_seconds, fractions, 0)
    first_cut = times_us[min(n - 1, int(n * fractions[0]))]
    second_cut = times_us[min(n - 1, int(n * (fractions[0] + fractions[1])))]
    train_stop = bisect.bisect_left(times_us, first_cut)
    validation_start = bisect.bisect_left(times_us, first_cut + gap_us)
    validation_stop = max(validation_start, bisect.bisect_left(times_us, second_cut))
    test_start = max(validation_stop, bisect.bisect_left(times_us, second_cut + gap_us))
    blocks = (block("train", 0, train_stop), block("validation", validation_start, validation_stop),
              block("test", test_start, n))
    return Split(*blocks, gap_seconds, fractions, n - sum(b.rows for b in blocks))


def too_small(split: Split, min_rows: int) -> list[str]:
    """One message per block with fewer than `min_rows` rows."""
    return [f"{b.name} block has {b.rows} rows, fewer than the minimum of {min_rows}"
            for b in split.blocks if b.rows < min_rows]


def missing_classes(split: Split, labels: Sequence[float], label: str) -> list[str]:
    """One message per block that lacks one of the two classes of a binary label.

    >>> split = time_split([s * 1_000_000 for s in range(10)], gap_seconds=0, fractions=(0.6, 0.2, 0.2))
    >>> missing_classes(split, [0, 1, 0, 1, 0, 1, 0, 0, 1, 1], "is_fraud")
    ['validation block has no is_fraud=1 row (2 rows)', 'test block has no is_fraud=0 row (2 rows)']
    """
    problems = []
    for b in split.blocks:
        present = {int(value) for value in labels[b.start : b.stop]}
        for cls in (0, 1):
            if b.rows and cls not in present:
                problems.append(f"{b.name} block has no {label}={cls} row ({b.rows} rows)")
    return problems
