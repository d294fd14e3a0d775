"""Use-case contracts: schemas, features without leakage, presets, samples in sync."""

from __future__ import annotations

import pickle

import pytest

from coelho.core import USE_CASES, OnlineModel, ecci, eta, tfd, use_case_for_type
from support import sample

MODULES = {"tfd": tfd, "eta": eta, "ecci": ecci}


@pytest.mark.parametrize("key", USE_CASES)
def test_sample_file_is_the_module_example_and_valid(key):
    assert sample(key) == MODULES[key].EXAMPLE
    assert USE_CASES[key].schema.validate(sample(key)) == []


@pytest.mark.parametrize("key", USE_CASES)
def test_features_never_use_label_ids_or_generative_factors(key):
    uc = USE_CASES[key]
    x = uc.features(sample(key))
    forbidden = {uc.label_field, uc.id_field, uc.partition_field, "debug_traffic_factor",
                 "debug_weather_factor", "debug_incident_delay_seconds", "debug_driver_factor",
                 "user_id", "ip_address", "user_agent", "customer_id"}
    assert not forbidden & set(x)


def test_eta_features_ignore_the_label_and_debug_factors():
    base = sample("eta")
    leaky = sample("eta", simulated_actual_travel_time_seconds=99_999, debug_traffic_factor=9.0,
                   debug_weather_factor=9.0, debug_incident_delay_seconds=9.0, debug_driver_factor=9.0)
    assert eta.features(base) == eta.features(leaky)


def test_tfd_features_ignore_the_label():
    assert tfd.features(sample("tfd", is_fraud=1)) == tfd.features(sample("tfd", is_fraud=0))


def test_event_types_map_back_to_use_cases():
    for uc in USE_CASES.values():
        assert use_case_for_type(uc.event_type) is uc
    assert use_case_for_type("dev.knative.kafka.event") is None


@pytest.mark.parametrize("key", USE_CASES)
@pytest.mark.parametrize("preset", ["default", "original"])
def test_presets_learn_and_pickle(key, preset):
    model = OnlineModel(USE_CASES[key], preset)
    for _ in range(3):
        model.learn(sample(key))
    clone = pickle.loads(pickle.dumps(model))
    assert clone.predict(sample(key)) == model.predict(sample(key))
    assert clone.use_case is USE_CASES[key]


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        USE_CASES["tfd"].make_model("huge")
