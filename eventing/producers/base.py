"""What every event generator shares: a seeded random source, schema checks, helpers.

Examples
--------
>>> import random
>>> random_uuid(random.Random(1))
'cd613e30-d8f1-4adf-91b7-584a2265b1f5'
>>> colour = Weighted.of({"red": 3.0, "blue": 1.0})
>>> rng = random.Random(0)
>>> sorted({colour.draw(rng) for _ in range(50)})
['blue', 'red']
"""

from __future__ import annotations

import random
import uuid
from abc import ABC, abstractmethod
from bisect import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, ClassVar, Generic, TypeVar

from coelho.core.usecase import UseCase

__all__ = ["EventGenerator", "Weighted", "random_uuid"]

T = TypeVar("T")


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID string drawn from `rng` (reproducible, unlike uuid.uuid4())."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True)
class Weighted(Generic[T]):
    """A discrete distribution sampled by bisection of cumulative weights."""

    values: tuple[T, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, weights: Mapping[T, float]) -> Weighted[T]:
        """Build from value → relative weight."""
        if not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        return cls(tuple(weights), tuple(accumulate(weights.values())))

    def draw(self, rng: random.Random) -> T:
        """One value."""
        return self.values[bisect(self.cumulative, rng.random() * self.cumulative[-1])]


class EventGenerator(ABC, Iterator[dict[str, Any]]):
    """An endless, reproducible iterator of schema-valid payloads of one use case.

    Subclasses set `use_case` and implement `_next_payload`; every payload is checked against
    the core schema before it is yielded, so a generator bug raises instead of emitting.

    `drift_at` = N changes the data-generating process from the N+1-th event on (each generator
    documents its change, `DRIFT`), so that drift detection can be shown and measured against a
    known change point; None (the default) keeps the stream stationary.
    """

    use_case: ClassVar[UseCase]
    #: What changes after `drift_at` events, in one sentence.
    DRIFT: ClassVar[str] = ""

    def __init__(self, *, seed: int, drift_at: int | None = None) -> None:
        if drift_at is not None and drift_at < 0:
            raise ValueError(f"drift_at must be >= 0, got {drift_at}")
        self._rng = random.Random(seed)
        self._drift_at = drift_at
        self._held: dict[str, Any] | None = None
        self.produced = 0

    @property
    def drifted(self) -> bool:
        """Whether the event being generated comes after the change point."""
        return self._drift_at is not None and self.produced >= self._drift_at

    def __iter__(self) -> EventGenerator:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._held is not None:
            payload, self._held = self._held, None
        else:
            payload = self._next_payload()
            self.use_case.schema.check(payload)
        self.produced += 1
        return payload

    def skip_until(self, timestamp: str) -> int:
        """Drop the events stamped before ISO-8601 `timestamp`; returns how many. `produced` counts
        from the next event on, so `drift_at` counts kept events only."""
        dropped = 0
        while (payload := self._next_payload())["timestamp"] < timestamp:
            dropped += 1
        self.use_case.schema.check(payload)
        self._held = payload
        return dropped

    @abstractmethod
    def _next_payload(self) -> dict[str, Any]:
        """The next payload, in non-decreasing timestamp order."""
