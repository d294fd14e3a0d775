"""Scoring a fitted batch model on the test block: test metrics, online vs batch on the same rows, diagnostics.

Everything here runs once, after fitting, on the test block (or bounded samples of it). The comparison
scores the online model (a registered `coelho-<uc>` version) on exactly the rows the batch column uses, with
the same metric functions: frozen (predict only) and prequentially from its state (predict, then learn,
in event-time order, as the live learner would). Each column records the SHA-256 of the event ids it
scored, so the table shows that the three were computed on identical rows.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coelho.adapters.batch_model import BatchModel
from coelho.core import diagnostics as figs
from coelho.core.batch_metrics import (
    classification_metrics,
    clustering_metrics,
    clusterings_metrics,
    regression_metrics,
    threshold_sweep,
)
from coelho.core.online import THRESHOLD, OnlineModel

__all__ = ["TestBlock", "compare_with_online", "diagnostics", "ids_sha256", "test_metrics"]

SEED = 42
SCATTER_ROWS = 4_000
SHAP_ROWS = 1_000
PERMUTATION_ROWS = 2_000
SILHOUETTE_ROWS = 3_000
#: Rows the Silhouette metric is computed on (a seeded sample of the test block, or of the compared rows).
SILHOUETTE_METRIC_ROWS = 10_000
PD_ROWS = 500
PD_POINTS = 12
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def ids_sha256(ids: Sequence[str]) -> str:
    """SHA-256 of event ids, one per line, in order."""
    digest = hashlib.sha256()
    for event_id in ids:
        digest.update(f"{event_id}\n".encode())
    return digest.hexdigest()


@dataclass
class TestBlock:
    """The test block as evaluation sees it: features, labels, the model's scores and a few raw fields."""

    frame: Any
    y: np.ndarray | None
    scores: np.ndarray
    ids: list[str]
    raw: dict[str, list[Any]]
    x: np.ndarray | None = None  # ECCI: the encoded matrix
    squared_distances: np.ndarray | None = None


def test_metrics(model: BatchModel, block: TestBlock) -> dict[str, Any]:
    """The test metrics with the online suites' names."""
    return _metrics(model, block.y, block.scores, block.x, block.squared_distances)


def _metrics(model: BatchModel, y: np.ndarray | None, scores: np.ndarray, x: np.ndarray | None,
             squared_distances: np.ndarray | None = None, threshold: float | None = None) -> dict[str, Any]:
    if model.kind == "classifier":
        assert y is not None
        return classification_metrics(y, scores, model.threshold if threshold is None else threshold)
    if model.kind == "regressor":
        assert y is not None
        return regression_metrics(y, scores)
    assert x is not None
    return clustering_metrics(x, scores, sample_size=SILHOUETTE_METRIC_ROWS, seed=SEED,
                              squared_distances=squared_distances)


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    return {k: v for k, v in metrics.items() if not isinstance(v, dict)}


def compare_with_online(model: BatchModel, block: TestBlock, events: Sequence[Mapping[str, Any]],
                        online: OnlineModel | None, online_info: Mapping[str, Any]) -> dict[str, Any]:
    """The online-vs-batch table on the first `len(events)` rows of the test block (`events` are those rows)."""
    n = len(events)
    event_ids = [str(e[model.use_case.id_field]) for e in events]
    if event_ids != block.ids[:n]:
        raise AssertionError("the compared events are not the first rows of the test block")
    y = None if block.y is None else block.y[:n]
    x = None if block.x is None else block.x[:n]
    scores = {"batch": block.scores[:n]}
    digests = {"batch": ids_sha256(block.ids[:n])}
    if online is not None:
        frozen = [online.predict(event) for event in events]
        digests["online_frozen"] = ids_sha256([str(e[model.use_case.id_field]) for e in events])
        learner = copy.deepcopy(online)
        prequential = []
        for event in events:
            prequential.append(learner.learn(event))
        digests["online_prequential"] = ids_sha256([str(e[model.use_case.id_field]) for e in events])
        scores["online_frozen"] = _online_scores(model.kind, frozen)
        scores["online_prequential"] = _online_scores(model.kind, prequential)
    if model.kind == "kmeans":  # the columns' silhouettes share one pass of distances on the same sample
        assert x is not None
        found = clusterings_metrics(x, list(scores.values()), sample_size=SILHOUETTE_METRIC_ROWS, seed=SEED)
        columns = {name: _scalars(metrics) for name, metrics in zip(scores, found, strict=True)}
    else:
        columns = {name: _scalars(_metrics(model, y, values, x, threshold=None if name == "batch" else THRESHOLD))
                   for name, values in scores.items()}
    batch = columns["batch"]
    names = list(batch)
    rows = [{"metric": name, "batch": batch.get(name), "online_frozen": columns.get("online_frozen", {}).get(name),
             "online_prequential": columns.get("online_prequential", {}).get(name)} for name in names]
    return {"test_rows": n, "test_block_rows": len(block.ids), "rows_sha256": ids_sha256(block.ids[:n]),
            "columns_sha256": digests, "online": dict(online_info), "rows": rows}


def _online_scores(kind: str, outputs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Probabilities, seconds or clusters from OnlineModel.predict (or the pre-learning outcome of learn)."""
    if kind == "classifier":
        return np.array([o.get("fraud_probability", o.get("proba")) for o in outputs], dtype=float)
    if kind == "regressor":
        return np.array([o.get("eta_seconds", o.get("y_pred")) for o in outputs], dtype=float)
    return np.array([o["cluster"] for o in outputs], dtype=int)


# --- diagnostics ------------------------------------------------------------------------------------------------
def diagnostics(model: BatchModel, block: TestBlock, evals: Mapping[str, Any] | None, best_iteration: int | None,
                k_scores: Mapping[int, Mapping[str, Any]] | None, check: Callable[[], None]) -> list[figs.Figure]:
    """Every figure of the run (`check` is called between figures: it raises when a stop was requested)."""
    builders = {"classifier": _classifier_figures, "regressor": _regressor_figures, "kmeans": _kmeans_figures}
    out = []
    for build in builders[model.kind](model, block, evals, best_iteration, k_scores):
        check()
        out.append(build())
    return out


def _sample(n: int, size: int) -> np.ndarray:
    return np.sort(np.random.default_rng(SEED).choice(n, size=min(n, size), replace=False))


def _classifier_figures(model: BatchModel, block: TestBlock, evals: Any, best: int | None, _: Any) -> list[Callable]:
    y, p = block.y, block.scores
    assert y is not None and model.threshold is not None
    cm = classification_metrics(y, p, model.threshold)["ConfusionMatrix"]
    return [
        lambda: figs.pr_figure(y, p),
        lambda: figs.roc_figure(y, p),
        lambda: figs.calibration_figure(y, p),
        lambda: figs.confusion_figure(cm, model.threshold),
        lambda: figs.threshold_figure(threshold_sweep(y, p), model.threshold),
        *_tree_figures(model, block, evals, best, "average_precision", "average precision"),
    ]


def _regressor_figures(model: BatchModel, block: TestBlock, evals: Any, best: int | None, _: Any) -> list[Callable]:
    y, p = block.y, block.scores
    assert y is not None
    sample = _sample(len(y), SCATTER_ROWS)
    error = np.abs(y - p)
    hours = [f"{d}-{h:02d}" for d, h in zip(block.raw["day_of_week"], block.raw["hour_of_day"], strict=True)]
    return [
        lambda: figs.predicted_actual_figure(y[sample], p[sample]),
        lambda: figs.residual_figure(p[sample], (y - p)[sample]),
        lambda: figs.error_by_group_figure(
            "error_by_hour_of_week", "Mean absolute error by hour of the week (test block)",
            "The test trips grouped by the event's day of week (0 = Monday) and hour of day; each bar is the mean "
            "absolute error of the group, its label the number of trips.",
            "Peaks show the hours the model handles worst, typically rush hours where traffic varies most; a "
            "systematic weekly pattern left in the error is a feature the model lacks.",
            hours, error, "day-hour (day 0 = Monday)"),
        lambda: figs.error_by_group_figure(
            "error_by_weather", "Mean absolute error by weather (test block)",
            "The test trips grouped by weather; each bar is the mean absolute error of the group, its label the "
            "number of trips.",
            "Bad weather slows trips and makes them less predictable, so higher bars there are expected; a rare "
            "weather with few trips has a noisy bar.",
            block.raw["weather"], error, "weather"),
        *[_pd_builder(model, block, feature) for feature in ("distance_km", "local_hour", "weather")],
        *_tree_figures(model, block, evals, best, "neg_mean_absolute_error", "MAE (seconds)"),
    ]


def _pd_builder(model: BatchModel, block: TestBlock, feature: str) -> Callable[[], figs.Figure]:
    def build() -> figs.Figure:
        import pandas as pd

        frame = block.frame.iloc[_sample(len(block.frame), PD_ROWS)].copy()
        categorical = feature in model.columns.categorical
        if categorical:
            grid = sorted(frame[feature].astype(str).unique())
        else:
            grid = np.unique(np.percentile(frame[feature].to_numpy(float), np.linspace(5, 95, PD_POINTS)))
        averages = []
        for value in grid:
            frame[feature] = pd.Categorical([value] * len(frame)) if categorical else float(value)
            averages.append(float(np.mean(model.scores(frame))))
        return figs.partial_dependence_figure(feature, list(grid), averages, categorical, "seconds")

    return build


def _tree_figures(model: BatchModel, block: TestBlock, evals: Any, best: int | None, scoring: str,
                  scoring_name: str) -> list[Callable[[], figs.Figure]]:
    names = list(model.columns.names)

    def importance() -> figs.Figure:
        return figs.importance_figure(names, model.model.get_feature_importance().tolist())

    def shap() -> figs.Figure:
        from catboost import Pool

        frame = block.frame.iloc[_sample(len(block.frame), SHAP_ROWS)]
        values = model.model.get_feature_importance(Pool(frame, cat_features=list(model.columns.categorical_indices)),
                                                    type="ShapValues")[:, :-1]
        return figs.shap_figure(names, values, {n: frame[n].tolist() for n in names}, model.columns.categorical)

    def permutation() -> figs.Figure:
        from sklearn.inspection import permutation_importance

        rows = _sample(len(block.frame), PERMUTATION_ROWS)
        assert block.y is not None
        result = permutation_importance(model.model, block.frame.iloc[rows], block.y[rows], scoring=scoring,
                                        n_repeats=3, random_state=SEED)
        return figs.bar_figure(
            "permutation_importance", "Permutation importance (test block sample)",
            f"How much the {scoring_name} on a sample of the test block drops when one feature's values are "
            "shuffled across rows (mean of 3 shuffles, with their spread).",
            "Unlike the model's own importance this is measured on held-out rows: a feature near zero could be "
            "dropped; a negative bar means the feature only adds noise. Correlated features share credit.",
            names, result.importances_mean, f"drop in {scoring_name}", result.importances_std)

    return [importance, shap, permutation, lambda: figs.validation_curve_figure(evals or {}, best)]


def _kmeans_figures(model: BatchModel, block: TestBlock, evals: Any, best: int | None,
                    k_scores: Mapping[int, Mapping[str, Any]] | None) -> list[Callable]:
    from sklearn.metrics import silhouette_samples

    assert block.x is not None and model.encoder is not None
    labels = block.scores
    encoder = model.encoder

    def silhouette() -> figs.Figure:
        rows = _sample(len(labels), SILHOUETTE_ROWS)
        if len(np.unique(labels[rows])) < 2:
            values = np.zeros(len(rows))
        else:
            values = silhouette_samples(block.x[rows], labels[rows])
        return figs.silhouette_figure(labels[rows].tolist(), values)

    def centroids() -> figs.Figure:
        header = ["cluster", *encoder.columns.numeric, *encoder.columns.categorical]
        rows = []
        for k, centre in enumerate(model.centres):
            row: list[Any] = [k]
            row += [round(encoder.means[n] + encoder.scales[n] * float(centre[i]), 2)
                    for i, n in enumerate(encoder.columns.numeric)]
            offset = len(encoder.columns.numeric)
            for name in encoder.columns.categorical:
                levels = [*encoder.levels[name], "other"]
                weights = centre[offset : offset + len(levels)]
                row.append(levels[int(np.argmax(weights))])
                offset += len(levels)
            rows.append(row)
        return figs.centroid_figure(header, rows)

    def features() -> figs.Figure:
        order = [f"{name}={level}" for name in encoder.columns.categorical for level in encoder.levels[name]]
        shares: dict[str, dict[str, float]] = {}
        for k in np.unique(labels):
            members = block.frame[labels == k]
            counts: dict[str, float] = {}
            for name in encoder.columns.categorical:
                for value, count in members[name].astype(str).value_counts().items():
                    counts[f"{name}={value}"] = count / len(members)
            shares[str(int(k))] = counts
        return figs.cluster_feature_figure(shares, order)

    sizes = {str(int(k)): int((labels == k).sum()) for k in np.unique(labels)}
    best_k = len(model.centres)
    return [lambda: figs.k_search_figure(k_scores or {}, best_k), silhouette, lambda: figs.cluster_size_figure(sizes),
            centroids, features]
