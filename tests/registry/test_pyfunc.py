"""`models:/coelho-<uc>@champion`, loaded with plain MLflow, predicts exactly what the predict function answers."""

from __future__ import annotations

import pandas as pd
import pytest

from coelho.adapters.mlflow_registry import MlflowRegistry
from coelho.adapters.redis_state import RedisState
from coelho.core import USE_CASES
from coelho.runtime.predictor import Predictor
from support import stream
from support.registry import feed, flush_redis, open_learner

PREDICTION_FIELDS = {"tfd": ("prediction", "fraud_probability"), "eta": ("prediction", "eta_seconds"),
                     "ecci": ("prediction", "cluster")}


@pytest.mark.parametrize("key", ["tfd", "eta", "ecci"])
def test_champion_pyfunc_predicts_what_the_function_predicts(key, ml_settings, learners, global_uri):
    import mlflow

    events = stream(key, 1_300, seed=3)
    learner = open_learner(key, ml_settings, learners)
    feed(learner, events[:1_200])
    learner.close()
    status = learner.status()["mlflow"]
    assert status["ok"] and status["pending"] == 0, status
    assert status["champion_version"] == status["last_version"] >= 1

    label = USE_CASES[key].label_field
    probes = [{k: v for k, v in e.items() if k != label} for e in events[1_200:]]
    predictor = Predictor(USE_CASES[key], RedisState.from_url(ml_settings.redis_url, ml_settings.key_prefix, key),
                          ml_settings)
    live = [predictor.predict(p) for p in probes]
    assert {r["model_source"] for r in live} == {"live"}

    pyfunc = mlflow.pyfunc.load_model(f"models:/coelho-{key}@champion")
    frame = pyfunc.predict(pd.DataFrame(probes))
    fields = PREDICTION_FIELDS[key]
    assert frame[list(fields)].to_dict(orient="records") == [{f: r[f] for f in fields} for r in live]

    # Redis loses everything: the predictor serves the champion, with the same answers.
    flush_redis(ml_settings)
    fallback = Predictor(USE_CASES[key], RedisState.from_url(ml_settings.redis_url, ml_settings.key_prefix, key),
                         ml_settings)
    served = [fallback.predict(p) for p in probes]
    assert {(r["model_source"], r["model_version"]) for r in served} == {("mlflow", status["champion_version"])}
    assert [{f: r[f] for f in fields} for r in served] == [{f: r[f] for f in fields} for r in live]


def test_tampered_blob_is_refused(ml_settings, learners):
    from coelho.adapters.mlflow_pyfunc import load_blob
    from coelho.core.signing import TamperedError, dumps_signed

    registry = MlflowRegistry(USE_CASES["eta"], ml_settings.tracking_uri(), ml_settings.artifact_root(),
                              ml_settings.resolved_signing_key())
    blob = dumps_signed({"not": "a model"}, b"another key" * 3)
    with pytest.raises(TamperedError):
        load_blob(blob, registry.signing_key)
    with pytest.raises(TamperedError):
        registry.register("no-run", blob, {}, "model")
