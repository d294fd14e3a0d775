"""The MLflow pyfunc flavour of a batch model: raw events in, the batch-predict function's fields out.

`save_batch_pyfunc` writes an MLflow model directory whose artifacts are the model file (`model.cbm` or
`model.skops`) and `spec.json`; the Python model is declared "from code" (no cloudpickle). Its `predict`
turns a DataFrame of raw events into events and calls `BatchModel.predict_events`, the very call the
batch-predict function makes, so `mlflow.pyfunc.load_model("models:/coelho-tfd-batch@champion").predict(df)`
answers what the function answers: for TFD a `fraud_probability` (and the decision), never just classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from coelho.adapters.batch_model import BatchModel
from coelho.adapters.mlflow_pyfunc import signature_of, validated_events
from coelho.core.batch import EXAMPLES

__all__ = ["BatchPyfunc", "save_batch_pyfunc"]

MODEL_CODE = """from __future__ import annotations

import mlflow

from coelho.adapters.batch_pyfunc import BatchPyfunc

mlflow.models.set_model(BatchPyfunc())
"""


class BatchPyfunc(mlflow.pyfunc.PythonModel):
    """Predicts a DataFrame of raw events with a batch model."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = BatchModel.load(Path(context.artifacts["model"]), Path(context.artifacts["spec"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return pd.DataFrame(self.model.predict_events(validated_events(model_input, self.model.use_case)))


def save_batch_pyfunc(path: Path, model: BatchModel) -> Path:
    """Write the MLflow model directory of `model` at `path` (which must not exist)."""
    work = path.parent / "files"
    artifacts = model.save(work)
    (work / "batch_model.py").write_text(MODEL_CODE)
    example = EXAMPLES[model.use_case.key]
    frame = pd.DataFrame([example], columns=pd.Index(list(example), dtype=object))
    mlflow.pyfunc.save_model(
        path, python_model=str(work / "batch_model.py"), artifacts={k: str(v) for k, v in artifacts.items()},
        signature=signature_of(model.use_case), input_example=frame, pip_requirements=["coelho-realtime"],
    )
    return path
