"""The stateless predictor: a cached replica of the learner's model, refreshed by version.

At most every `predict_refresh_ms` a request checks Redis: when the checkpoint is far ahead it
reloads it, otherwise it replays the few new WAL entries. An event acknowledged by the learner
is therefore visible to predictions within one refresh interval (`model_source: "live"`).

When Redis holds no trained model (a flushed or new Redis, a learner not started yet), the
predictor serves the MLflow champion instead (`model_source: "mlflow"`, `model_version` = the
registered version), looked up at most every `CHAMPION_REFRESH_S` and cached by version. It
never serves a model that has not learned anything: with no model anywhere it answers "no
model" with the reason.

While Redis is unreachable the predictor keeps answering from the model it holds, marked
`stale: true` with `replica_age_seconds` (how long since it last caught up); only without any
model does it refuse, naming Redis.

A request may name a registered version instead (`?version=N`): that version is loaded from MLflow
once, verified, kept among the last `VERSIONS_KEPT` asked for, and answers with
`model_source: "mlflow"`, `model_version: N`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from coelho.adapters.redis_state import RedisState
from coelho.config import Settings
from coelho.core.usecase import UseCase
from coelho.runtime.history import open_registry
from coelho.runtime.recovery import Replica

if TYPE_CHECKING:
    from coelho.adapters.mlflow_registry import Champion, MlflowRegistry

__all__ = ["ChampionSource", "NoModel", "Predictor", "VersionSource"]

log = logging.getLogger(__name__)

#: How often (seconds) a predictor without a live model asks MLflow which version is the champion.
CHAMPION_REFRESH_S = 10.0

#: Reload the checkpoint instead of replaying when it is this many events ahead.
RELOAD_GAP = 2_000

#: Registered versions (`?version=N`) a predictor keeps loaded.
VERSIONS_KEPT = 4


class NoModel(LookupError):
    """No trained model exists yet for this use case."""


class ChampionSource:
    """The MLflow champion of one use case, cached by version; `reason` says why there is none."""

    def __init__(self, use_case: UseCase, settings: Settings) -> None:
        self.use_case = use_case
        self.settings = settings
        self.champion: Champion | None = None
        self.checked_at = float("-inf")
        self.reason = "MLflow is disabled (COELHO_MLFLOW=off)" if not settings.mlflow else "not looked up yet"
        self._registry: MlflowRegistry | None = None

    def registry(self) -> MlflowRegistry:
        """The use case's MLflow registry, opened on first use."""
        if self._registry is None:
            self._registry = open_registry(self.use_case, self.settings)
        return self._registry

    def get(self) -> Champion | None:
        """The current champion (MLflow asked at most every CHAMPION_REFRESH_S); None with `reason` set."""
        if not self.settings.mlflow:
            return None
        now = time.monotonic()
        if now - self.checked_at >= CHAMPION_REFRESH_S:
            self.checked_at = now
            try:
                self.champion = self.registry().load_champion(self.champion)
                if self.champion is None:
                    self.reason = f"no version of {self.registry().name} holds the champion alias"
            except Exception as exc:  # noqa: BLE001 - MLflow down: keep the cached champion, if any
                self.reason = f"MLflow unreachable: {type(exc).__name__}: {exc}"[:300]
                log.warning("%s champion lookup failed: %s", self.use_case.key, self.reason)
        return self.champion


class VersionSource:
    """Registered MLflow versions of one use case, each loaded once and kept (the newest few)."""

    def __init__(self, champion: ChampionSource) -> None:
        self.champion = champion
        self.loaded: OrderedDict[int, Champion] = OrderedDict()
        self.lock = threading.Lock()

    def predict(self, version: int, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Version `version`'s answer; NoModel when MLflow is off or down, LookupError when no such version."""
        if not self.champion.settings.mlflow:
            raise NoModel("MLflow is disabled (COELHO_MLFLOW=off): no registered versions to serve")
        with self.lock:
            if version not in self.loaded:
                try:
                    self.loaded[version] = self.champion.registry().load_version(version)
                except LookupError:
                    raise
                except Exception as exc:  # noqa: BLE001 - MLflow down: a clear 503, not a crash
                    raise NoModel(f"MLflow unreachable: {type(exc).__name__}: {exc}"[:300]) from exc
                while len(self.loaded) > VERSIONS_KEPT:
                    self.loaded.popitem(last=False)
            self.loaded.move_to_end(version)
            model = self.loaded[version].model
            return {**model.predict(payload), "model_version": version, "model_source": "mlflow"}

    def listing(self) -> dict[str, Any]:
        """`{"versions": [...]}` newest first, or an empty list with `error` when MLflow is off or unreachable."""
        if not self.champion.settings.mlflow:
            return {"versions": [], "error": "MLflow is disabled (COELHO_MLFLOW=off)"}
        try:
            return {"versions": self.champion.registry().versions()}
        except Exception as exc:  # noqa: BLE001 - MLflow down: say so, answer anyway
            return {"versions": [], "error": f"MLflow unreachable: {type(exc).__name__}: {exc}"[:300]}


class Predictor:
    """Serves predictions from a replica that follows the learner, else from the MLflow champion."""

    def __init__(self, use_case: UseCase, state: RedisState, settings: Settings) -> None:
        self.use_case = use_case
        self.replica = Replica(state, settings.resolved_signing_key())
        self.champion = ChampionSource(use_case, settings)
        self.versions = VersionSource(self.champion)
        self.refresh_s = settings.predict_refresh_ms / 1000
        self.lock = threading.Lock()
        self.refreshed_at = float("-inf")
        self.current_at: float | None = None  # when the replica last caught up with Redis
        self.redis_error: str | None = None  # why the last refresh failed, while Redis is unreachable

    def predict(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Prediction fields plus `model_version` and `model_source` (and `stale` while Redis is unreachable)."""
        with self.lock:
            now = time.monotonic()
            if now - self.refreshed_at >= self.refresh_s:
                self.refreshed_at = now
                try:
                    self.refresh()
                    self.current_at, self.redis_error = now, None
                except redis.RedisError as exc:
                    if self.redis_error is None:
                        log.warning("%s predictor: Redis unreachable, answering from the model held: %s",
                                    self.use_case.key, exc)
                    self.redis_error = f"{type(exc).__name__}: {exc}"[:300]
            model = self.replica.model
            if model is None or model.events_applied == 0:
                return self._from_champion(payload)
            answer = {**model.predict(payload), "model_version": self.replica.seq, "model_source": "live"}
            if self.redis_error is not None and self.current_at is not None:
                answer.update(stale=True, replica_age_seconds=round(now - self.current_at, 3))
            return answer

    def _from_champion(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        champion = self.champion.get()
        if champion is None:
            if self.redis_error is not None:
                raise NoModel(f"Redis is unreachable ({self.redis_error}) and this predictor holds no "
                              f"{self.use_case.key} model; no MLflow champion either: {self.champion.reason}")
            raise NoModel(f"no {self.use_case.key} model has learned any event yet and there is no MLflow "
                          f"champion to serve: {self.champion.reason}")
        answer = {**champion.model.predict(payload), "model_version": champion.version, "model_source": "mlflow"}
        if self.redis_error is not None:
            answer["stale"] = True  # Redis may hold a newer model: it could not be asked
        return answer

    def refresh(self) -> int:
        """Bring the replica up to the newest accepted event; returns events replayed.

        When Redis holds no model any more (flushed, or a new one), the replica is dropped and the champion
        served; when its log went back (a learner started over on an emptied Redis), the replica reloads.
        """
        replica = self.replica
        checkpoint_seq, last_seq = replica.state.heads()
        if checkpoint_seq is None:
            replica.model, replica.seq = None, 0
            return 0
        if replica.model is None or checkpoint_seq > replica.seq + RELOAD_GAP or last_seq < replica.seq:
            replica.load_checkpoint()
        try:
            return replica.catch_up()
        except LookupError:  # the log was trimmed past us: jump to the newest checkpoint
            replica.load_checkpoint()
            return replica.catch_up()

    def status(self) -> dict[str, Any]:
        """The replica's version, whether Redis answers, and the learner's published status."""
        with self.lock:
            status = {
                "use_case": self.use_case.key,
                "role": "predictor",
                "model_version": self.replica.seq,
                "champion": {"version": self.champion.champion.version if self.champion.champion else None,
                             "reason": None if self.champion.champion else self.champion.reason},
            }
        try:
            learner = self.replica.state.read_status()
            redis_status: dict[str, Any] = {"ok": True}
        except redis.RedisError as exc:
            learner, redis_status = {}, {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        if self.current_at is not None:
            redis_status["replica_age_seconds"] = round(time.monotonic() - self.current_at, 3)
        return {**status, "redis": redis_status, "learner": learner}

    def health(self) -> dict[str, Any]:
        """Ready unless it can do nothing: Redis unreachable and no model held (`ok`), with the reasons."""
        try:
            self.replica.state.client.ping()
            error = None
        except redis.RedisError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        model = self.replica.model
        holds_model = (model is not None and model.events_applied > 0) or self.champion.champion is not None
        return {"ok": error is None or holds_model, "redis": {"ok": error is None, "error": error},
                "holds_model": holds_model}
