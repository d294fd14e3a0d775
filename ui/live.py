"""Replies shared by every open tab for a moment (twenty tabs polling a status cost one request a second), and
what a predict function's /status says about its model.

Examples
--------
>>> import asyncio
>>> calls = []
>>> async def fetch():
...     calls.append(1)
...     await asyncio.sleep(0.01)
...     return len(calls)
>>> async def twenty_tabs():
...     cache = SharedReplies(ttl=60)
...     return await asyncio.gather(*(cache.get("tfd", fetch) for _ in range(20)))
>>> set(asyncio.run(twenty_tabs())), len(calls)
({1}, 1)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

from coelho_ui import fmt
from coelho_ui.client import Reply, functions

__all__ = ["SharedReplies", "model_card", "reset", "status", "statuses"]

T = TypeVar("T")

#: How long a predict function's /status is shared by every open tab.
STATUS_TTL_S = 1.0


class SharedReplies(Generic[T]):
    """Results of `fetch` kept for `ttl` seconds per key; callers arriving meanwhile share the request in flight.

    The request runs as its own task, so a tab that closes while waiting does not cancel it for the others.
    """

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self.kept: dict[Hashable, tuple[float, T]] = {}
        self.pending: dict[Hashable, asyncio.Task[T]] = {}

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        """The result for `key`: kept if fresh, else the request in flight, else a new request."""
        kept = self.kept.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.ttl:
            return kept[1]
        task = self.pending.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self.pending[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(task)

    def _settle(self, key: Hashable, task: asyncio.Task[T]) -> None:
        self.pending.pop(key, None)
        if not task.cancelled() and task.exception() is None:
            self.kept[key] = (time.monotonic(), task.result())


statuses: SharedReplies[Reply] = SharedReplies(ttl=STATUS_TTL_S)


async def status(use_case: str) -> Reply:
    """The use case's predict /status, shared by every tab for STATUS_TTL_S."""
    return await statuses.get(("status", use_case), lambda: functions().status(use_case))


def reset() -> None:
    """Forget kept replies (at start-up: requests in flight belong to the previous event loop)."""
    statuses.kept.clear()
    statuses.pending.clear()


def model_card(status: Mapping[str, Any], now: datetime) -> dict[str, str]:
    """What the predict function's /status says about the model, as the model card shows it.

    >>> from datetime import UTC
    >>> learner = {"model_version": 1200, "events_applied": 1200, "holder": "pod-a:7", "leader": True,
    ...            "updated_at": "2026-03-02T12:00:00+00:00", "mlflow": {"run_id": "0123456789abcdef"},
    ...            "last_checkpoint": {"seq": 1000, "created_at": "2026-03-02T11:59:00+00:00"}}
    >>> card = model_card({"model_version": 1199, "champion": {"version": 3}, "learner": learner},
    ...                   datetime(2026, 3, 2, 12, 0, 2, tzinfo=UTC))
    >>> card["Served from"], card["Events applied"], card["Last checkpoint"], card["Freshness"]
    ('live model, seq 1,199', '1,200', 'seq 1,000, 1 min 2 s ago', 'updated 2 s ago')
    >>> model_card({"model_version": 0, "champion": {"version": None, "reason": "no champion"}, "learner": {}},
    ...            datetime(2026, 3, 2, tzinfo=UTC))["Served from"]
    'no model yet (no champion)'
    """
    learner = status.get("learner") or {}
    champion = status.get("champion") or {}
    checkpoint = learner.get("last_checkpoint") or {}
    if status.get("model_version") or "seq" in checkpoint:  # the predictor follows the learner once it checkpointed
        served = f"live model, seq {fmt.count(status.get('model_version') or learner.get('model_version'))}"
    elif champion.get("version") is not None:
        served = f"MLflow champion, version {champion['version']}"
    else:
        served = f"no model yet ({champion.get('reason') or 'nothing learned'})"
    mlflow = learner.get("mlflow") or {}
    return {
        "Served from": served,
        "Model version": f"seq {fmt.count(learner['model_version'])}" if "model_version" in learner else fmt.DASH,
        "Events applied": fmt.count(learner.get("events_applied")),
        "Leader": f"{learner['holder']}{'' if learner.get('leader') else ' (follower)'}"
        if learner.get("holder") else fmt.DASH,
        "Last checkpoint": f"seq {fmt.count(checkpoint['seq'])}, {fmt.age(_seconds_since(checkpoint, now))}"
        if "seq" in checkpoint else "none yet",
        "Freshness": f"updated {fmt.age(_seconds_since(learner, now, 'updated_at'))}"
        if learner.get("updated_at") else fmt.DASH,
        "MLflow run": str(mlflow["run_id"])[:12] if mlflow.get("run_id") else "–",
    }


def _seconds_since(record: Mapping[str, Any], now: datetime, key: str = "created_at") -> float | None:
    try:
        return (now - datetime.fromisoformat(str(record[key]))).total_seconds()
    except (KeyError, ValueError):
        return None
