"""Numbers as people read them: units, thousands separators, durations, ages; a dash for "no value yet".

Examples
--------
>>> count(1234567), number(0.65312), number(None), percent(0.1234)
('1,234,567', '0.653', '–', '12.3 %')
>>> number(-0.0123), number(3.0), number(2047.6)
('-0.0123', '3', '2,048')
>>> duration(45.4), duration(2052), duration(7385), duration(-3)
('45 s', '34 min 12 s', '2 h 03 min', '0 s')
>>> age(0.4), age(75), age(None)
('just now', '1 min 15 s ago', '–')
>>> value(514.2, "s"), value(13.26, "%"), value(3, ""), value(12.5, "°C")
('8 min 34 s', '13.3 %', '3', '12.5 °C')
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

__all__ = ["DASH", "age", "count", "duration", "number", "percent", "value", "when"]

DASH = "–"


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def count(x: float | None) -> str:
    """An integer with thousands separators."""
    return DASH if _missing(x) else f"{round(x):,}"  # type: ignore[arg-type]


def number(x: float | None, digits: int = 3) -> str:
    """A plain number: integers and values from 1000 up without decimals, others with `digits` significant ones."""
    if _missing(x):
        return DASH
    assert x is not None
    if float(x).is_integer() or abs(x) >= 1000:
        return count(x)
    return f"{x:.{digits}g}"


def percent(x: float | None) -> str:
    """A fraction as a percentage."""
    return DASH if _missing(x) else f"{x * 100:.1f} %"  # type: ignore[operator]


def duration(seconds: float | None) -> str:
    """Seconds as `45 s`, `34 min 12 s` or `2 h 03 min`."""
    if _missing(seconds):
        return DASH
    total = max(0, round(seconds))  # type: ignore[arg-type]
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def age(seconds: float | None) -> str:
    """How long ago something happened."""
    if _missing(seconds):
        return DASH
    return "just now" if seconds < 1 else f"{duration(seconds)} ago"  # type: ignore[operator]


def value(x: float | None, unit: str) -> str:
    """A metric value in its unit: `s` as a duration, others appended (River's MAPE is in percent already)."""
    if unit == "s":
        return duration(x)
    text = number(x)
    return f"{text} {unit}" if unit and text != DASH else text


def when(moment: Any) -> str:
    """An ISO time or epoch milliseconds (MLflow's), to the minute in UTC.

    >>> when("2026-03-02T12:00:59+00:00"), when(1772452800000), when(None)
    ('2026-03-02 12:00', '2026-03-02 12:00', '–')
    """
    if isinstance(moment, int | float) and not isinstance(moment, bool):
        moment = datetime.fromtimestamp(moment / 1000, UTC).isoformat()
    return str(moment)[:16].replace("T", " ") if moment else DASH
