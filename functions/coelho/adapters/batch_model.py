"""A fitted batch model and how it answers for raw events; saved in safe formats only.

`BatchModel` wraps a CatBoost classifier (TFD: fraud probability, decided at the threshold chosen on the
validation block), a CatBoost regressor (ETA: seconds) or a scikit-learn KMeans with its `Encoder` (ECCI:
cluster). Two entry points, one feature function:

- `predict_events(events)`: raw events → `feature_rows` → the model → the prediction fields, shaped like
  `OnlineModel.predict` (the batch-predict function and the MLflow pyfunc call it);
- `scores(frame)`: the training code's feature DataFrame (`FeatureBuilder`) → probabilities, seconds or
  clusters (training, evaluation and diagnostics call it).

Files: `model.cbm` (CatBoost's own format) or `model.skops` (skops, no pickle), and `spec.json` (use case,
kind, feature columns, threshold or encoder). Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coelho.core import USE_CASES
from coelho.core.batch import BATCH_SPECS, Encoder, feature_columns, feature_rows
from coelho.core.batch_metrics import nearest_centre
from coelho.core.usecase import UseCase

__all__ = ["MODEL_FILES", "SPEC_FILE", "BatchModel"]

SPEC_FILE = "spec.json"
MODEL_FILES = {"classifier": "model.cbm", "regressor": "model.cbm", "kmeans": "model.skops"}


class BatchModel:
    """A fitted batch model of one use case."""

    def __init__(self, use_case: UseCase, model: Any, threshold: float | None = None,
                 encoder: Encoder | None = None) -> None:
        self.use_case = use_case
        self.kind = BATCH_SPECS[use_case.key].model
        self.model = model
        self.threshold = threshold
        self.encoder = encoder
        self.columns = feature_columns(use_case)
        if self.kind == "classifier" and threshold is None:
            raise ValueError("a classifier needs its decision threshold")
        if self.kind == "kmeans" and encoder is None:
            raise ValueError("KMeans needs its encoder")

    @property
    def centres(self) -> np.ndarray:
        return np.asarray(self.model.cluster_centers_, dtype=np.float32)

    def scores(self, frame: Any) -> np.ndarray:
        """Fraud probabilities, seconds or clusters for the rows of a feature DataFrame (the training path)."""
        if self.kind == "classifier":
            return np.asarray(self.model.predict_proba(frame)[:, 1], dtype=float)
        if self.kind == "regressor":
            return np.maximum(np.asarray(self.model.predict(frame), dtype=float), 0.0)
        assert self.encoder is not None
        return nearest_centre(self.encoder.transform(frame), self.centres)[0]

    def predict_events(self, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The prediction fields of each raw event (the serving path: features row by row, no pandas)."""
        rows = feature_rows(self.use_case, events)
        if not rows:
            return []
        if self.kind in ("classifier", "regressor"):
            from catboost import Pool

            # An explicit Pool: handing the rows to predict_* directly converts them with a thread pool per call,
            # which stalls one call in fifty for milliseconds.
            pool = Pool(rows, cat_features=list(self.columns.categorical_indices))
            if self.kind == "classifier":
                probabilities = self.model.predict_proba(pool, thread_count=1)[:, 1]
                assert self.threshold is not None
                return [{"prediction": int(p >= self.threshold), "fraud_probability": float(p)}
                        for p in probabilities]
            seconds = np.maximum(np.asarray(self.model.predict(pool, thread_count=1), dtype=float), 0.0)
            return [{"prediction": float(s), "eta_seconds": float(s)} for s in seconds]
        assert self.encoder is not None
        columns = {name: [row[i] for row in rows] for i, name in enumerate(self.columns.names)}
        clusters = nearest_centre(self.encoder.transform(columns), self.centres)[0]
        return [{"prediction": int(c), "cluster": int(c)} for c in clusters]

    # files --------------------------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {"use_case": self.use_case.key, "kind": self.kind, "features": list(self.columns.names),
                "categorical": list(self.columns.categorical), "threshold": self.threshold,
                "encoder": self.encoder.to_json() if self.encoder else None}

    def save(self, folder: Path) -> dict[str, Path]:
        """Write the model file and spec.json into `folder`; returns artifact name → path."""
        folder.mkdir(parents=True, exist_ok=True)
        model_path = folder / MODEL_FILES[self.kind]
        if self.kind == "kmeans":
            import skops.io

            skops.io.dump(self.model, model_path)
        else:
            self.model.save_model(str(model_path), format="cbm")
        spec_path = folder / SPEC_FILE
        spec_path.write_text(json.dumps(self.spec(), indent=2))
        return {"model": model_path, "spec": spec_path}

    @classmethod
    def load(cls, model_path: Path, spec_path: Path) -> BatchModel:
        """Read a model written by `save` (the spec must name a known use case and kind)."""
        spec = json.loads(spec_path.read_text())
        use_case = USE_CASES[spec["use_case"]]
        kind = BATCH_SPECS[use_case.key].model
        if spec["kind"] != kind or spec["features"] != list(feature_columns(use_case).names):
            raise ValueError(f"{spec_path}: a {spec['kind']} on {spec['features']} does not fit {use_case.key}'s "
                             "current features; retrain")
        if kind == "kmeans":
            import skops.io

            return cls(use_case, skops.io.load(model_path), encoder=Encoder.from_json(spec["encoder"]))
        from catboost import CatBoostClassifier, CatBoostRegressor

        model = CatBoostClassifier() if kind == "classifier" else CatBoostRegressor()
        model.load_model(str(model_path), format="cbm")
        return cls(use_case, model, threshold=spec["threshold"])
