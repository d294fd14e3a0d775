"""The champion alias follows the one rule across runs; a learner on an empty Redis continues from it."""

from __future__ import annotations

import random

import pytest

from coelho.adapters.mlflow_registry import MlflowRegistry
from coelho.core import USE_CASES, OnlineModel
from coelho.runtime.history import History
from support import stream
from support.registry import feed, flush_redis, open_learner


def _registry(settings) -> MlflowRegistry:
    return MlflowRegistry(USE_CASES["eta"], settings.tracking_uri(), settings.artifact_root(),
                          settings.resolved_signing_key())


def _run(settings, model: OnlineModel, holder: str) -> int:
    """One run that registers `model` as a version, as a learner's close() does."""
    history = History(USE_CASES["eta"], settings, holder)
    history.started(model)
    assert "FINISHED" in history.close(model, model.events_applied, settings.resolved_signing_key())
    assert history.last_version is not None
    return history.last_version


def _trained(events, label_shuffle: bool = False) -> OnlineModel:
    model = OnlineModel(USE_CASES["eta"])
    label = USE_CASES["eta"].label_field
    labels = [e[label] for e in events]
    if label_shuffle:
        random.Random(7).shuffle(labels)
    for event, y in zip(events, labels, strict=True):
        model.learn({**event, label: y})
    return model


def test_champion_is_the_best_like_for_like_version(ml_settings):
    events = stream("eta", 1_500, seed=5)
    good = _trained(events[:1_200])
    noisy = _trained(events[:1_200], label_shuffle=True)  # same window, worse MAE: must lose
    short = _trained(events[:400])  # fewer events than the window: not comparable, must lose
    assert good.metrics.report()["RollingMAE"] < noisy.metrics.report()["RollingMAE"]

    v_noisy = _run(ml_settings, noisy, "noisy")
    assert _registry(ml_settings).champion_version() == v_noisy  # the only eligible version so far
    v_good = _run(ml_settings, good, "good")
    v_short = _run(ml_settings, short, "short")
    registry = _registry(ml_settings)
    assert registry.champion_version() == v_good
    assert {c.version for c in registry.candidates()} == {v_noisy, v_good, v_short}


def test_restore_from_champion_after_redis_flush_continues_the_series(ml_settings, learners):
    import mlflow

    events = stream("eta", 1_500, seed=9)
    first = open_learner("eta", ml_settings, learners)
    feed(first, events[:1_200])
    first.close()
    champion = first.status()["mlflow"]["champion_version"]
    assert champion is not None
    first_run = first.status()["mlflow"]["run_id"]

    flush_redis(ml_settings)  # Redis lost: no checkpoint, no log
    second = open_learner("eta", ml_settings, learners)
    feed(second, events[1_200:])
    status = second.status()
    assert status["events_applied"] == 1_500  # 1200 restored + 300 new, none twice
    assert status["mlflow"]["continued_from"] == champion
    second.close()

    client = mlflow.MlflowClient(ml_settings.tracking_uri())
    run = client.get_run(second.status()["mlflow"]["run_id"])
    assert run.data.tags["coelho.continued_from"] == f"coelho-eta/{champion}"
    assert run.data.tags["coelho.continued_from_run"] == first_run
    before = [m.step for m in client.get_metric_history(first_run, "MAE")]
    after = [m.step for m in client.get_metric_history(run.info.run_id, "MAE")]
    assert max(before) == 1_200 and min(after) > 1_200 and max(after) == 1_500
    assert run.data.tags["coelho.events_applied"] == "1500"


def test_no_model_anywhere_is_refused_with_the_reason(ml_settings):
    from coelho.adapters.redis_state import RedisState
    from coelho.runtime.predictor import NoModel, Predictor

    state = RedisState.from_url(ml_settings.redis_url, ml_settings.key_prefix, "eta")
    with pytest.raises(NoModel, match="no version of coelho-eta holds the champion alias"):
        Predictor(USE_CASES["eta"], state, ml_settings).predict(stream("eta", 1)[0])
