"""The MLflow pyfunc flavour of an online model: a signed blob, verified at load, predicted like the function.

`save_pyfunc` writes an MLflow model directory whose only model bytes are the HMAC-signed
checkpoint blob (the same bytes Redis holds); the Python model is declared "from code", so no
cloudpickle is ever written or read. `CoelhoPyfunc.predict` turns each row of a DataFrame of raw
events back into the event dict and calls `OnlineModel.predict`, the very call the predict
function makes, so `mlflow.pyfunc.load_model(...).predict(df)` answers exactly what it answers.
The signing key comes from COELHO_SIGNING_KEY (or the data dir's development key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, ColSpec, Object, Property
from mlflow.types.schema import Schema as MlflowSchema

from coelho.config import Settings
from coelho.core.batch import EXAMPLES
from coelho.core.online import OnlineModel
from coelho.core.schema import Field, Schema
from coelho.core.signing import loads_signed
from coelho.core.usecase import UseCase

__all__ = ["CoelhoPyfunc", "events_from_frame", "load_blob", "save_pyfunc", "signature_of", "validated_events"]

#: The model file MLflow executes at load ("models from code"): nothing is unpickled but our signed blob.
MODEL_CODE = """from __future__ import annotations

import mlflow

from coelho.adapters.mlflow_pyfunc import CoelhoPyfunc

mlflow.models.set_model(CoelhoPyfunc())
"""

_TYPES = {"str": "string", "timestamp": "string", "float": "double", "int": "long", "bool": "boolean"}


def load_blob(blob: bytes, key: bytes) -> OnlineModel:
    """Verify and unpickle a signed model blob."""
    model = loads_signed(blob, key)
    if not isinstance(model, OnlineModel):
        raise TypeError(f"signed blob holds {type(model).__name__}, not an OnlineModel")
    return model


class CoelhoPyfunc(mlflow.pyfunc.PythonModel):
    """Predicts a DataFrame of raw events with the signed online model."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        blob = Path(context.artifacts["model"]).read_bytes()
        self.model = load_blob(blob, Settings.from_env().resolved_signing_key())

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        events = validated_events(model_input, self.model.use_case)
        return pd.DataFrame([self.model.predict(event) for event in events])


def validated_events(frame: pd.DataFrame, use_case: UseCase) -> list[dict[str, Any]]:
    """The raw events of a DataFrame, each checked like a predict request (ValueError naming the row and fields)."""
    events = events_from_frame(frame, use_case.schema)
    for index, event in enumerate(events):
        if problems := use_case.schema.validate(event, optional=use_case.optional_for_predict):
            raise ValueError(f"row {index}: " + "; ".join(f"{p.field} {p.message}" for p in problems))
    return events


def _colspec_type(field: Field) -> Any:
    if field.kind == "float" or (field.kind == "int" and (field.nullable or not field.required)):
        # JSON writes 3.0 as 3 and pandas a missing integer as NaN, which MLflow refuses as a double or a
        # long: these columns are left to the event schema, checked by `predict`.
        return AnyType()
    if field.kind == "object":
        return Object([Property(f.name, _colspec_type(f), required=f.required) for f in field.fields])
    return _TYPES[field.kind]


def signature_of(use_case: UseCase) -> ModelSignature:
    """Input columns from the event schema (label optional), outputs from the prediction fields."""
    optional = use_case.optional_for_predict
    inputs = [
        ColSpec(_colspec_type(f), f.name, required=f.required and not f.nullable and f.name not in optional)
        for f in use_case.schema.fields
    ]
    example = OnlineModel(use_case).predict(EXAMPLES[use_case.key])
    outputs = [ColSpec("long" if isinstance(v, int) else "double", name) for name, v in example.items()]
    return ModelSignature(inputs=MlflowSchema(inputs), outputs=MlflowSchema(outputs))


def _plain(value: Any, field: Field) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if field.kind == "object" and isinstance(value, Mapping):
        members = {f.name: f for f in field.fields}
        return {k: _plain(v, members[k]) if k in members else v for k, v in value.items()}
    if field.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def events_from_frame(frame: pd.DataFrame, schema: Schema) -> list[dict[str, Any]]:
    """The raw events of a DataFrame, with plain Python values; missing optional fields dropped.

    >>> import pandas as pd
    >>> from coelho.core import eta
    >>> rows = events_from_frame(pd.DataFrame([{**eta.EXAMPLE, "day_of_week": 2.0}]), eta.SCHEMA)
    >>> rows[0]["day_of_week"], rows[0] == {**eta.EXAMPLE, "day_of_week": 2}
    (2, True)
    """
    fields = {f.name: f for f in schema.fields}
    events = []
    for row in frame.to_dict(orient="records"):
        event = {}
        for name, value in row.items():
            field = fields.get(str(name))
            plain = _plain(value, field) if field is not None else value
            if plain is not None or (field is not None and field.nullable):
                event[str(name)] = plain
        events.append(event)
    return events


def save_pyfunc(path: Path, blob: bytes, use_case: UseCase) -> Path:
    """Write the MLflow model directory of a signed blob at `path` (which must not exist)."""
    work = path.parent
    (work / "model.bin").write_bytes(blob)
    (work / "coelho_model.py").write_text(MODEL_CODE)
    example = EXAMPLES[use_case.key]
    frame = pd.DataFrame([example], columns=pd.Index(list(example), dtype=object))
    mlflow.pyfunc.save_model(
        path, python_model=str(work / "coelho_model.py"), artifacts={"model": str(work / "model.bin")},
        signature=signature_of(use_case), input_example=frame, pip_requirements=["coelho-realtime"],
    )
    return path
