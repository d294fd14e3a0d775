"""A feature selector whose output order is the declared order.

River's `compose.Select` iterates a set, so the order of its output (and therefore the order
of floating-point sums downstream) depends on the process's string-hash seed. A model rebuilt
from a checkpoint in another process must compute bit-for-bit the same numbers, so we keep
the order fixed.

>>> Select("b", "a").transform_one({"a": 1, "b": 2, "c": 3})
{'b': 2, 'a': 1}
"""

from __future__ import annotations

from typing import Any

from river import compose

__all__ = ["Select"]


class Select(compose.Select):
    """`compose.Select` with a deterministic output order."""

    def __init__(self, *keys: Any) -> None:
        super().__init__(*keys)
        self.ordered_keys = tuple(keys)

    def transform_one(self, x: dict[str, Any]) -> dict[str, Any]:
        return {k: x[k] for k in self.ordered_keys}
