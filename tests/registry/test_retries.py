"""Every MLflow call of a learner is safe to repeat: a retry after a lost answer creates nothing twice."""

from __future__ import annotations

from coelho.adapters.mlflow_registry import MlflowRegistry
from coelho.core import USE_CASES, OnlineModel
from coelho.core.signing import dumps_signed
from support import stream


def test_a_repeated_run_start_or_registration_finds_what_the_first_attempt_created(ml_settings):
    key = ml_settings.resolved_signing_key()
    registry = MlflowRegistry(USE_CASES["tfd"], ml_settings.tracking_uri(), ml_settings.artifact_root(), key)
    tags = {"coelho.holder": "host:1:abcd", "coelho.use_case": "tfd"}
    run_id = registry.start_run("tfd-run", {"preset": "default"}, tags)
    assert registry.start_run("tfd-run", {"preset": "default"}, tags) == run_id
    assert registry.start_run("tfd-run", {"preset": "default"}, {**tags, "coelho.holder": "host:2:ef01"}) != run_id

    model = OnlineModel(USE_CASES["tfd"])
    for event in stream("tfd", 50, seed=3):
        model.learn(event)
    blob = dumps_signed(model, key)
    version = registry.register(run_id, blob, {"coelho.events_applied": "50"}, "model-000000000050")
    assert registry.register(run_id, blob, {"coelho.events_applied": "50"}, "model-000000000050") == version
    assert registry.register(run_id, blob, {"coelho.events_applied": "50"}, "model-000000000051") == version + 1
    assert len(registry.client.search_runs([registry.experiment_id()])) == 2
