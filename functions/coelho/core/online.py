"""The online model of a use case: prequential learning and side-effect-free prediction.

`OnlineModel.learn` is the one place where an event changes a model: it predicts, updates the
metrics and the drift monitor with that prediction, and only then learns (predict → metric →
learn). Replaying the same events in the same order from the same state gives the same model, the
same metrics and the same drift detections, which is what makes checkpoint + write-ahead-log
recovery exact.

Examples
--------
>>> from coelho.core import USE_CASES
>>> from coelho.core.tfd import EXAMPLE
>>> om = OnlineModel(USE_CASES["tfd"])
>>> om.learn(EXAMPLE)["proba"]
0.5
>>> om.events_applied, om.predict(EXAMPLE)["prediction"]
(1, 0)
>>> om.status()["drift"]["detections"]
0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coelho.core.drift import DriftMonitor
from coelho.core.usecase import UseCase

__all__ = ["OnlineModel"]

THRESHOLD = 0.5


class OnlineModel:
    """A River model, its metric suite, its drift monitor and its counters; pure, no I/O."""

    def __init__(self, use_case: UseCase, preset: str = "default") -> None:
        self.use_case = use_case
        self.preset = preset
        self.model = use_case.make_model(preset)
        self.metrics = use_case.make_metrics()
        self.drift = DriftMonitor(use_case.drift)
        self.events_applied = 0
        self.last_event_time: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["use_case"] = self.use_case.key
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from coelho.core import USE_CASES

        state["use_case"] = USE_CASES[state["use_case"]]
        state.setdefault("drift", DriftMonitor(state["use_case"].drift))  # checkpoints from before drift detection
        self.__dict__.update(state)

    def learn(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one validated, labelled event prequentially; returns the pre-learning outcome."""
        uc = self.use_case
        x = uc.features(event)
        outcome = self._infer(x)
        if uc.label_field is not None:
            outcome["y"] = event[uc.label_field]
        self.metrics.update(event, x, outcome)
        self.drift.update(uc.drift.error(outcome), self.events_applied + 1, event["timestamp"])
        if uc.label_field is None:
            self.model.learn_one(x)
        else:
            self.model.learn_one(x, event[uc.label_field])
        self.events_applied += 1
        self.last_event_time = event["timestamp"]
        return outcome

    def predict(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The use case's prediction fields for one event; the model is not changed."""
        outcome = self._infer(self.use_case.features(event))
        task = self.use_case.task
        if task == "classification":
            return {"prediction": outcome["y_pred"], "fraud_probability": outcome["proba"]}
        if task == "regression":
            seconds = max(0.0, outcome["y_pred"])
            return {"prediction": seconds, "eta_seconds": seconds}
        return {"prediction": outcome["cluster"], "cluster": outcome["cluster"]}

    def _infer(self, x: dict[str, Any]) -> dict[str, Any]:
        task = self.use_case.task
        if task == "classification":
            proba = float(self.model.predict_proba_one(x).get(1, 0.0)) if self.events_applied else 0.5
            return {"proba": proba, "y_pred": int(proba >= THRESHOLD) if self.events_applied else 0}
        if task == "regression":
            return {"y_pred": float(self.model.predict_one(x) or 0.0)}
        return self._infer_cluster(x)

    def _infer_cluster(self, x: dict[str, Any]) -> dict[str, Any]:
        steps = list(self.model.steps.values())
        transformed = x
        for step in steps[:-1]:
            transformed = step.transform_one(transformed)
        clusterer = steps[-1]
        cluster = clusterer.predict_one(transformed) if self.events_applied else 0
        return {
            "cluster": int(cluster),
            "x_transformed": transformed,
            "centers": clusterer.centers,
            "n_micro_clusters": len(clusterer.micro_clusters),
        }

    def status(self) -> dict[str, Any]:
        """Counters, current metric values and drift detections."""
        return {
            "events_applied": self.events_applied,
            "last_event_time": self.last_event_time,
            "preset": self.preset,
            "metrics": self.metrics.report(),
            "drift": self.drift.status(),
        }
