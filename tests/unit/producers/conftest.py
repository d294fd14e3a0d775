"""Shared fixtures of the producer tests: a fixed simulated start and a payload taker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from coelho.producers import make_generator

Events = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def start() -> datetime:
    """A Monday, 00:00 UTC (Sunday 18:00 in Houston)."""
    return datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture
def events(start: datetime) -> Events:
    """`events(key, n, **options)`: the first n payloads of a generator (seed 7, `start`)."""

    def take(key: str, n: int, **options: Any) -> list[dict[str, Any]]:
        options.setdefault("seed", 7)
        options.setdefault("start", start)
        generator = make_generator(key, **options)
        return [next(generator) for _ in range(n)]

    return take
