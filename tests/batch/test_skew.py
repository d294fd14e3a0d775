"""No train/serve skew: the batch-predict function, the MLflow pyfunc and the training code answer the same."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import numpy as np
import pandas as pd
import pytest

from coelho.adapters.mlflow_batch import BatchRegistry
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.core.batch import feature_frame
from support.batch import events
from support.registry import global_mlflow

KEYS = ["tfd", "eta", "ecci"]
FIELD = {"tfd": "fraud_probability", "eta": "eta_seconds", "ecci": "cluster"}


@pytest.fixture
def global_uri(batch_settings: Settings) -> Iterator[str]:
    """MLflow's global tracking and registry URIs on the session store (for `mlflow.pyfunc.load_model`)."""
    with global_mlflow(batch_settings.tracking_uri()) as uri:
        yield uri


@pytest.mark.parametrize("key", KEYS)
def test_function_pyfunc_and_training_code_agree_on_fresh_events(batch_settings, trained, function_client,
                                                                  global_uri, key):
    fresh = events(key, 60, seed=4242)  # never in the table (other seed)
    champion = trained[key].outcome.version
    app = function_client(f"{key}_batch_predict")
    served = []
    for event in fresh:
        response = app.post("/", json={k: v for k, v in event.items() if k != USE_CASES[key].label_field})
        assert response.status_code == 200, response.get_json()
        served.append(response.get_json())
    assert {(a["model_source"], a["model_version"], a["run_id"]) for a in served} == {
        ("batch", champion, trained[key].outcome.run_id)}

    pyfunc = mlflow.pyfunc.load_model(f"models:/coelho-{key}-batch@champion").predict(pd.DataFrame(fresh))

    model, _ = BatchRegistry(USE_CASES[key], batch_settings.tracking_uri(),
                             batch_settings.artifact_root()).load_version(champion)
    training_code = model.scores(feature_frame(USE_CASES[key], fresh))

    field = FIELD[key]
    from_function = np.array([a[field] for a in served])
    np.testing.assert_array_equal(from_function, pyfunc[field].to_numpy())
    np.testing.assert_allclose(from_function, training_code, rtol=1e-12, atol=0)
    np.testing.assert_array_equal([a["prediction"] for a in served], pyfunc["prediction"].to_numpy())
    if key == "tfd":  # probabilities, not classes; the decision is the validation-chosen threshold
        assert 0 < from_function.min() < from_function.max() < 1
        np.testing.assert_array_equal(pyfunc["prediction"], (from_function >= model.threshold).astype(int))
