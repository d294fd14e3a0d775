"""Prequential learning: the metric sees the prediction made before the event was learned."""

from __future__ import annotations

import copy

import pytest

from coelho.core import USE_CASES, OnlineModel
from support import sample

KEYS = list(USE_CASES)


def _variants(key: str, n: int) -> list[dict]:
    field = {"tfd": "amount", "eta": "estimated_distance_km", "ecci": "price"}[key]
    return [sample(key, **{field: 10.0 + 37.0 * i}) for i in range(n)]


@pytest.mark.parametrize("key", KEYS)
def test_learn_reports_the_prediction_made_before_learning(key):
    model = OnlineModel(USE_CASES[key])
    for event in _variants(key, 20):
        before = copy.deepcopy(model).predict(event)
        outcome = model.learn(event)
        if key == "tfd":
            assert outcome["proba"] == before["fraud_probability"]
        elif key == "eta":
            assert max(0.0, outcome["y_pred"]) == before["eta_seconds"]
        else:
            assert outcome["cluster"] == before["cluster"]


@pytest.mark.parametrize("key", KEYS)
def test_predict_does_not_change_anything(key):
    model = OnlineModel(USE_CASES[key])
    for event in _variants(key, 10):
        model.learn(event)
    snapshot = copy.deepcopy(model)
    for event in _variants(key, 5):
        model.predict(event)
    probe = sample(key)
    assert model.predict(probe) == snapshot.predict(probe)
    assert model.metrics.report() == snapshot.metrics.report()
    assert model.events_applied == snapshot.events_applied


def test_untrained_classifier_predicts_the_prior_without_crashing():
    model = OnlineModel(USE_CASES["tfd"])
    assert model.predict(sample("tfd")) == {"prediction": 0, "fraud_probability": 0.5}


def test_learning_is_deterministic():
    a, b = OnlineModel(USE_CASES["eta"]), OnlineModel(USE_CASES["eta"])
    for event in _variants("eta", 30):
        a.learn(event)
        b.learn(event)
    assert a.predict(sample("eta")) == b.predict(sample("eta"))
