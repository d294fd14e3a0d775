"""Rebuilding a model from its checkpoint and write-ahead log: shared by learners and predictors.

Learners and predictors apply logged events with the very same function, so a predictor that
replays the log holds exactly the learner's model at the same sequence number.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from coelho.adapters.redis_state import RedisState, WalEntry
from coelho.core.online import OnlineModel
from coelho.core.signing import loads_signed

__all__ = ["Replica", "apply_event"]

log = logging.getLogger(__name__)


def apply_event(model: OnlineModel, payload: dict[str, Any]) -> bool:
    """Learn one logged event; a model error is logged and skipped the same way on every replay."""
    try:
        model.learn(payload)
    except Exception:  # noqa: BLE001 - a logged event must never wedge the log
        log.exception("model failed on a logged event; skipped deterministically")
        return False
    return True


class Replica:
    """A model at a known WAL sequence number, kept current from Redis."""

    def __init__(self, state: RedisState, signing_key: bytes) -> None:
        self.state = state
        self.signing_key = signing_key
        self.model: OnlineModel | None = None
        self.seq = 0
        self.apply_errors = 0

    def load_checkpoint(self) -> bool:
        """Replace the model with the stored checkpoint; False when there is none."""
        checkpoint = self.state.read_checkpoint()
        if checkpoint is None:
            return False
        model = loads_signed(checkpoint.blob, self.signing_key)
        if not isinstance(model, OnlineModel):
            raise TypeError(f"checkpoint holds {type(model).__name__}, not an OnlineModel")
        self.model, self.seq = model, checkpoint.seq
        log.info("loaded checkpoint at seq %d (%d bytes)", checkpoint.seq, len(checkpoint.blob))
        return True

    def apply(self, entries: Iterable[WalEntry]) -> int:
        """Apply WAL entries that follow `seq` contiguously; returns how many were applied."""
        return sum(self.apply_one(entry.seq, entry.payload) for entry in entries)

    def apply_one(self, seq: int, payload: dict[str, Any]) -> int:
        """Apply the WAL entry `seq` when it follows `seq` (1), skip it when applied already (0)."""
        assert self.model is not None
        if seq <= self.seq:
            return 0
        if seq != self.seq + 1:
            raise LookupError(f"WAL gap: at seq {self.seq}, next entry is {seq}")
        if not apply_event(self.model, payload):
            self.apply_errors += 1
        self.seq = seq
        return 1

    def catch_up(self, batch: int = 5_000) -> int:
        """Apply every logged event after `seq`; returns how many were applied."""
        total = 0
        while True:
            entries = self.state.read_wal(self.seq, count=batch)
            if not entries:
                return total
            total += self.apply(entries)
