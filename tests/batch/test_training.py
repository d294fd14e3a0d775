"""Batch trainings on real Delta tables and a real MLflow: registered champions, quality, no leakage, the comparison."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from mlflow import MlflowClient

from coelho.adapters.mlflow_batch import BatchRegistry
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.core.train_request import TrainRequest
from coelho.runtime.batch_evaluate import ids_sha256
from coelho.runtime.trainer import plan_training

KEYS = ["tfd", "eta", "ecci"]


def _client(settings: Settings) -> MlflowClient:
    return MlflowClient(settings.tracking_uri(), settings.tracking_uri())


def _registry(settings: Settings, key: str) -> BatchRegistry:
    return BatchRegistry(USE_CASES[key], settings.tracking_uri(), settings.artifact_root())


def _blocks(settings: Settings, key: str) -> dict[str, list[str]]:
    """Each block's event ids, as the trainings' plan selects them from the Delta table."""
    plan = plan_training(settings, TrainRequest(key))
    return {b.name: plan.rows.column("ce_id", b.indices) for b in plan.split.blocks}


@pytest.mark.parametrize("key", KEYS)
def test_training_registers_a_version_holding_the_champion_alias(batch_settings, trained, key):
    outcome = trained[key].outcome
    registry = _registry(batch_settings, key)
    assert outcome.version is not None and registry.champion_version() == outcome.champion == outcome.version
    run = _client(batch_settings).get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["coelho.training_mode"] == "batch"
    version = _client(batch_settings).get_model_version(f"coelho-{key}-batch", str(outcome.version))
    rule = USE_CASES[key].champion
    assert version.tags["coelho.window"] == f"test.{rule.metric}/{rule.window}"
    assert float(version.tags["coelho.score"]) == pytest.approx(run.data.metrics[rule.metric])
    # the model's parameters, the split settings and the request are params
    params = run.data.params
    assert params["split.gap_seconds"] == "60.0" and params["delta.version"] == run.data.tags["coelho.delta_version"]
    assert any(name.startswith(("catboost.", "kmeans.")) for name in params)
    history = _client(batch_settings).get_metric_history
    if key != "ecci":
        curve = f"validation.{params['catboost.eval_metric']}"  # one value per boosting iteration
        assert "catboost.depth" in params and len(history(outcome.run_id, curve)) > 10
    else:
        assert len(history(outcome.run_id, "k_search.Silhouette")) == 9
    # the Delta inputs: one dataset per block, with the table's path, version and a digest
    datasets = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(datasets) == {"train", "validation", "test"}
    source = json.loads(datasets["test"].source)
    assert datasets["test"].source_type == "delta_table" and source["path"] == batch_settings.delta_uri(key)
    assert source["delta_table_version"] == int(run.data.tags["coelho.delta_version"])
    # each block's SHA-256 names its rows: one line "<ce_source> <ce_id> <event time in µs>" per row, in order
    plan = plan_training(batch_settings, TrainRequest(key))
    rows = plan.rows
    for block in plan.split.blocks:
        lines = zip(rows.column("ce_source", block.indices), rows.column("ce_id", block.indices),
                    rows.times_us()[block.indices].tolist(), strict=True)
        expected = hashlib.sha256("".join(f"{s} {i} {t}\n" for s, i, t in lines).encode()).hexdigest()
        tags = next({t.key: t.value for t in d.tags} for d in run.inputs.dataset_inputs
                    if d.tags[0].value == block.name)
        assert tags["sha256"] == expected and tags["rows"] == str(block.rows)


def test_quality_beats_trivial_baselines_on_the_held_out_block(batch_settings, trained, streams):
    tfd = trained["tfd"].outcome.metrics
    assert tfd["PRAUC"] > 5 * tfd["Prevalence"] and tfd["PRAUC"] > 0.5  # far above a random ranking
    blocks = _blocks(batch_settings, "eta")
    label = {e["trip_id"]: e["simulated_actual_travel_time_seconds"] for e in streams["eta"]}
    median = np.median([label[i] for i in blocks["train"]])
    median_mae = np.mean([abs(label[i] - median) for i in blocks["test"]])
    assert trained["eta"].outcome.metrics["MAE"] < 0.8 * median_mae  # the test block starts the morning rush
    assert trained["ecci"].outcome.metrics["Silhouette"] > 0


@pytest.mark.parametrize("key", KEYS)
def test_no_leakage_train_before_validation_before_test_and_the_test_block_never_fitted(
        batch_settings, trained, streams, key):
    times = {str(e[USE_CASES[key].id_field]): datetime.fromisoformat(e["timestamp"]) for e in streams[key]}
    # when each row's label is known: an ETA trip's duration once it arrives, the others with the event
    known = {str(e[USE_CASES[key].id_field]): times[str(e[USE_CASES[key].id_field])] + timedelta(
        seconds=e["simulated_actual_travel_time_seconds"] if key == "eta" else 0) for e in streams[key]}
    blocks = _blocks(batch_settings, key)
    gap = batch_settings.train_gap_seconds
    for earlier, later in (("train", "validation"), ("validation", "test")):
        first = min(times[i] for i in blocks[later])
        assert (first - max(times[i] for i in blocks[earlier])).total_seconds() > gap, (earlier, later)
        assert max(known[i] for i in blocks[earlier]) < first, (earlier, later)  # labels known before it starts
    split = json.loads(_client(batch_settings).get_run(trained[key].outcome.run_id).data.tags["coelho.split"])
    assert split["rows"] == {name: len(ids) for name, ids in blocks.items()}
    fit = trained[key].spy.fits[key]
    if key == "ecci":  # KMeans saw the train block; each K was scored on the validation block
        assert (fit["x_train_rows"], fit["x_validation_rows"]) == (len(blocks["train"]), len(blocks["validation"]))
        return
    assert fit["train"] == blocks["train"] and fit["validation"] == blocks["validation"]
    assert not set(fit["train"] + fit["validation"]) & set(blocks["test"])
    # one CatBoost fit, on the train block, whose only eval set (early stopping) is the validation block
    assert fit["catboost"] == [{"rows": len(blocks["train"]), "eval_rows": [len(blocks["validation"])]}]


@pytest.mark.parametrize("key", KEYS)
def test_online_vs_batch_table_is_computed_on_identical_rows(batch_settings, trained, key):
    comparison = _registry(batch_settings, key).read_json(trained[key].outcome.run_id, "comparison.json")
    test_ids = _blocks(batch_settings, key)["test"]
    n = comparison["test_rows"]
    assert n == min(len(test_ids), batch_settings.train_compare_rows) and comparison["test_block_rows"] == len(test_ids)
    expected = ids_sha256(test_ids[:n])
    assert comparison["rows_sha256"] == expected
    assert comparison["columns_sha256"] == {"batch": expected, "online_frozen": expected,
                                            "online_prequential": expected}
    online = comparison["online"]
    assert online["version"] == trained[key].online_version and online["reason"] is None
    assert datetime.fromisoformat(online["watermark"]) < datetime.fromisoformat(
        json.loads(_client(batch_settings).get_run(trained[key].outcome.run_id).data.tags["coelho.split"])
        ["time_range"]["test"][0])
    rows = {row["metric"]: row for row in comparison["rows"]}
    metric = USE_CASES[key].champion.metric
    assert all(rows[metric][column] is not None for column in ("batch", "online_frozen", "online_prequential"))
    assert rows[metric]["batch"] == pytest.approx(trained[key].outcome.metrics[metric]) or n < len(test_ids)


@pytest.mark.parametrize("key", KEYS)
def test_diagnostics_are_plotly_figures_with_a_png_and_an_explanation(batch_settings, trained, key, tmp_path):
    registry = _registry(batch_settings, key)
    run_id = trained[key].outcome.run_id
    index = registry.read_json(run_id, "diagnostics/index.json")
    expected = {
        "tfd": {"pr_curve", "roc_curve", "calibration", "confusion_matrix", "threshold_sweep", "feature_importance",
                "shap_summary", "permutation_importance", "validation_curve"},
        "eta": {"predicted_vs_actual", "residuals_vs_predicted", "error_by_hour_of_week", "error_by_weather",
                "partial_dependence_distance_km", "partial_dependence_local_hour", "partial_dependence_weather",
                "feature_importance", "shap_summary", "permutation_importance", "validation_curve"},
        "ecci": {"k_search", "silhouette_samples", "cluster_sizes", "centroids", "cluster_features"},
    }[key]
    assert {figure["name"] for figure in index} == expected
    for entry in index:
        assert entry["what"] and entry["how"] and entry["title"]
        document: dict[str, Any] = registry.read_json(run_id, f"diagnostics/{entry['name']}.json")
        go.Figure(document["figure"])  # plotly validates every property
        png = registry.client.download_artifacts(run_id, f"diagnostics/{entry['name']}.png", str(tmp_path))
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
