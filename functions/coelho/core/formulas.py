"""Feature formulas written once, evaluated on one event (scalars) or on a chunk of events (column arrays).

A use case's `formulas(event, ops)` is its one feature definition. The event is a mapping shaped like the
payload: for one event the event itself, for many events the same nesting with a column array where each
value was (timestamp fields hold the instant, microseconds since the epoch in UTC: the tables' `event_time`).
Arithmetic and comparisons (`+ - * < >= & |`) work on both; everything else goes through `ops`:

- `SCALAR` (`ScalarOps`) is plain Python — `features(event)`, the online and serving path, pays microseconds;
- `COLUMNS` (`ColumnOps`) is numpy over whole columns — batch training builds its feature columns in one pass.

Each operation gives the same value either way (`log1p` maps `math.log1p` over the column, since numpy's own
differs in the last bit on some inputs); tests/batch/test_formulas.py checks both on generated events.

>>> import numpy as np
>>> def formulas(event, ops):
...     return {"log_amount": ops.log1p(event["amount"]), "big": ops.num(event["amount"] > 100),
...             "kind": ops.fill(event["kind"], "none")}
>>> formulas({"amount": 250.0, "kind": None}, SCALAR)
{'log_amount': 5.525..., 'big': 1.0, 'kind': 'none'}
>>> columns = formulas({"amount": np.array([250.0, 3.0]), "kind": np.array([None, "a"], dtype=object)}, COLUMNS)
>>> columns["log_amount"].tolist(), columns["big"].tolist(), columns["kind"].tolist()
([5.525..., 1.386...], [1.0, 0.0], ['none', 'a'])
"""

from __future__ import annotations

import math
from collections.abc import Collection
from functools import reduce
from typing import Any

import numpy as np

from coelho.core.timeparts import local_time, local_time_us

__all__ = ["COLUMNS", "SCALAR", "ColumnOps", "Ops", "ScalarOps"]


class ScalarOps:
    """The operations on the values of one event."""

    @staticmethod
    def num(value: Any) -> float:
        """The value as a float (True → 1.0)."""
        return float(value)

    @staticmethod
    def log1p(value: float) -> float:
        return math.log1p(value)

    @staticmethod
    def fill(value: Any, default: Any) -> Any:
        """`default` where the value is missing or empty (None, "", 0), else the value."""
        return value or default

    @staticmethod
    def isin(value: Any, choices: Collection[Any]) -> bool:
        return value in choices

    @staticmethod
    def where(condition: Any, yes: Any, no: Any) -> Any:
        return yes if condition else no

    @staticmethod
    def text(value: int, width: int = 1) -> str:
        """An integer as decimal text, zero-padded to `width` digits."""
        return f"{value:0{width}d}"

    @staticmethod
    def join(*parts: str) -> str:
        return "".join(parts)

    @staticmethod
    def local_time(timestamp: str, longitude: float) -> tuple[int, int]:
        """(local hour, day of week) of an ISO-8601 timestamp (`coelho.core.timeparts.local_time`)."""
        return local_time(timestamp, longitude)


class ColumnOps:
    """The same operations on column arrays (numpy; strings as object or unicode arrays, nulls as None / NaN)."""

    @staticmethod
    def num(value: Any) -> np.ndarray:
        return np.asarray(value, dtype=np.float64)

    @staticmethod
    def log1p(value: Any) -> np.ndarray:
        values = np.asarray(value, dtype=np.float64)
        return np.fromiter(map(math.log1p, values.tolist()), np.float64, count=len(values))

    @staticmethod
    def fill(value: Any, default: Any) -> np.ndarray:
        values = np.asarray(value)
        if values.dtype.kind == "f":  # a numeric column's nulls are NaN
            missing = np.isnan(values) | (values == 0)
        else:
            missing = np.fromiter((not v for v in values.tolist()), bool, count=len(values))
        return np.where(missing, default, values)

    @staticmethod
    def isin(value: Any, choices: Collection[Any]) -> np.ndarray:
        return np.isin(np.asarray(value), list(choices))

    @staticmethod
    def where(condition: Any, yes: Any, no: Any) -> np.ndarray:
        return np.where(condition, yes, no)

    @staticmethod
    def text(value: Any, width: int = 1) -> np.ndarray:
        return np.char.zfill(np.asarray(value, dtype=np.int64).astype(str), width)

    @staticmethod
    def join(*parts: Any) -> np.ndarray:
        return reduce(np.char.add, (np.asarray(part, dtype=str) for part in parts))

    @staticmethod
    def local_time(timestamp: Any, longitude: Any) -> tuple[np.ndarray, np.ndarray]:
        """(local hour, day of week) of instants in microseconds since the epoch (`timeparts.local_time_us`)."""
        return local_time_us(np.asarray(timestamp, dtype=np.int64), np.asarray(longitude, dtype=np.float64))


Ops = ScalarOps | ColumnOps
SCALAR = ScalarOps()
COLUMNS = ColumnOps()
