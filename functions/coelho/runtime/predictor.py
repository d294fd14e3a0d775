"""The stateless predictor: a cached replica of the learner's model, refreshed by version.

At most every `predict_refresh_ms` a request checks Redis: when the checkpoint is far ahead it
reloads it, otherwise it replays the few new WAL entries. An event acknowledged by the learner
is therefore visible to predictions within one refresh interval, and a predictor never serves a
model that has not learned anything (it answers "no model" instead).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from coelho.adapters.redis_state import RedisState
from coelho.config import Settings
from coelho.core.usecase import UseCase
from coelho.runtime.recovery import Replica

__all__ = ["NoModel", "Predictor"]

#: Reload the checkpoint instead of replaying when it is this many events ahead.
RELOAD_GAP = 2_000


class NoModel(LookupError):
    """No trained model exists yet for this use case."""


class Predictor:
    """Serves predictions from a replica that follows the learner."""

    def __init__(self, use_case: UseCase, state: RedisState, settings: Settings) -> None:
        self.use_case = use_case
        self.replica = Replica(state, settings.resolved_signing_key())
        self.refresh_s = settings.predict_refresh_ms / 1000
        self.lock = threading.Lock()
        self.refreshed_at = float("-inf")

    def predict(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Prediction fields plus `model_version` and `model_source`."""
        with self.lock:
            now = time.monotonic()
            if now - self.refreshed_at >= self.refresh_s:
                self.refresh()
                self.refreshed_at = now
            model = self.replica.model
            if model is None or model.events_applied == 0:
                raise NoModel(f"no {self.use_case.key} model has learned any event yet")
            return {
                **model.predict(payload),
                "model_version": self.replica.seq,
                "model_source": "live",
            }

    def refresh(self) -> int:
        """Bring the replica up to the newest accepted event; returns events replayed."""
        replica = self.replica
        checkpoint_seq = replica.state.checkpoint_seq()
        if checkpoint_seq is None:
            return 0
        if replica.model is None or checkpoint_seq > replica.seq + RELOAD_GAP:
            replica.load_checkpoint()
        try:
            return replica.catch_up()
        except LookupError:  # the log was trimmed past us: jump to the newest checkpoint
            replica.load_checkpoint()
            return replica.catch_up()

    def status(self) -> dict[str, Any]:
        """The replica's version and the learner's published status."""
        with self.lock:
            return {
                "use_case": self.use_case.key,
                "role": "predictor",
                "model_version": self.replica.seq,
                "learner": self.replica.state.read_status(),
            }
