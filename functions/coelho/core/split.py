"""Honest splits for batch models: by event time, train | gap | validation | gap | test, labels known in time.

Rows are sorted by event time. The train block holds the oldest `fractions[0]` of the rows, the
validation block the next `fractions[1]`, the test block the rest; rows whose event time falls within
`gap` after a block's end are dropped, so every train row is older than every validation row by more
than the gap, and likewise validation and test. When a row's label only becomes known later than its
event (an ETA trip's actual duration is known when it arrives), `label_times_us` says when: a row of an
earlier block whose label is not known before the next block starts is purged from it, so no model is
fitted or tuned on a label from the next block's period. Early stopping and tuning see the validation
block only; the test block is scored once, after fitting (scikit-learn's `TimeSeriesSplit(gap=)` and the
Fraud Detection Handbook's "Validation strategies" make the same point: any other scheme trains on the
future).

Examples
--------
>>> times = [s * 1_000_000 for s in range(100)]          # one row per second
>>> split = time_split(times, gap_seconds=2)
>>> [(b.name, b.rows, int(b.indices[0]), int(b.indices[-1])) for b in split.blocks]
[('train', 70, 0, 69), ('validation', 13, 72, 84), ('test', 13, 87, 99)]
>>> split.dropped, split.purged
(4, 0)
>>> split.blocks[1].first_us - split.blocks[0].last_us > 2_000_000
True
>>> too_small(split, min_rows=14)
['validation block has 13 rows, fewer than the minimum of 14', 'test block has 13 rows, fewer than the minimum of 14']

Labels known 10 s after each event: the last train and validation rows are purged.

>>> purged = time_split(times, gap_seconds=2, label_times_us=[t + 10_000_000 for t in times])
>>> [(b.name, b.rows) for b in purged.blocks], purged.purged
([('train', 62), ('validation', 5), ('test', 13)], 16)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

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


@dataclass(frozen=True, eq=False)
class Block:
    """The positions (in the time-sorted rows, ascending) of one block's rows, and their time range."""

    name: str
    indices: np.ndarray
    first_us: int | None
    last_us: int | None

    @property
    def rows(self) -> int:
        return len(self.indices)

    def time_range(self) -> list[str | None]:
        """[first, last] event time, ISO-8601."""
        return [iso_from_us(self.first_us), iso_from_us(self.last_us)]


@dataclass(frozen=True)
class Split:
    """The three blocks of one split, its settings, and the rows left out (in the gaps, or purged)."""

    train: Block
    validation: Block
    test: Block
    gap_seconds: float
    fractions: tuple[float, float, float]
    dropped: int
    purged: int

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
            "purged_labels_not_yet_known": self.purged,
        }


def time_split(
    times_us: Sequence[int], gap_seconds: float, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    label_times_us: Sequence[int] | None = None,
) -> Split:
    """Split rows sorted by event time (`times_us`, microseconds, ascending) into train | validation | test."""
    times = np.asarray(times_us, dtype=np.int64)
    if len(times) > 1 and bool(np.any(np.diff(times) < 0)):
        raise ValueError("times_us must be sorted ascending")
    if gap_seconds < 0 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError("gap_seconds must be >= 0 and the fractions positive, summing to 1")
    n = len(times)
    if n == 0:
        empty = [Block(name, np.empty(0, np.int64), None, None) for name in ("train", "validation", "test")]
        return Split(*empty, gap_seconds, fractions, 0, 0)
    gap_us = round(gap_seconds * 1e6)
    first_cut = times[min(n - 1, int(n * fractions[0]))]
    second_cut = times[min(n - 1, int(n * (fractions[0] + fractions[1])))]
    positions = np.arange(n)
    masks = {"train": times < first_cut,
             "validation": (times >= first_cut + gap_us) & (times < second_cut),
             "test": times >= second_cut + gap_us}
    in_blocks = int(sum(int(mask.sum()) for mask in masks.values()))
    if label_times_us is not None:  # each block must know its labels before the next one starts
        labels = np.asarray(label_times_us, dtype=np.int64)
        masks["train"] &= labels < first_cut + gap_us
        masks["validation"] &= labels < second_cut + gap_us
    blocks = []
    for name, mask in masks.items():
        indices = positions[mask]
        blocks.append(Block(name, indices, int(times[indices[0]]) if len(indices) else None,
                            int(times[indices[-1]]) if len(indices) else None))
    kept = sum(b.rows for b in blocks)
    return Split(*blocks, gap_seconds, fractions, n - in_blocks, in_blocks - kept)


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
    values = np.asarray(labels)
    problems = []
    for b in split.blocks:
        present = {int(value) for value in np.unique(values[b.indices])}
        for cls in (0, 1):
            if b.rows and cls not in present:
                problems.append(f"{b.name} block has no {label}={cls} row ({b.rows} rows)")
    return problems
