"""Diagnostic figures of a batch run, as plotly figure dicts with a two-line "what it shows / how to read it".

Figures are plain JSON (`{"data": [...], "layout": {...}}`): the UI draws them with plotly, the run
stores them as `diagnostics/<name>.json` next to a PNG (`coelho.adapters.figure_png`). Every builder
takes arrays computed on the test block (bounded samples where a figure would otherwise hold a point
per row) and returns a `Figure`. Curves come from scikit-learn (`precision_recall_curve`, `roc_curve`,
`calibration_curve`, `partial_dependence`'s grid logic, `silhouette_samples`), not from the unmaintained
YellowBrick or scikit-plot.

Examples
--------
>>> fig = confusion_figure({"tn": 90, "fp": 4, "fn": 2, "tp": 4}, threshold=0.31)
>>> fig.name, fig.figure["data"][0]["type"], fig.figure["data"][0]["z"]
('confusion_matrix', 'heatmap', [[90, 4], [2, 4]])
>>> sorted(fig.summary())
['how', 'name', 'title', 'what']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coelho.core.batch_metrics import BETA

__all__ = [
    "Figure",
    "bar_figure",
    "calibration_figure",
    "centroid_figure",
    "cluster_feature_figure",
    "cluster_size_figure",
    "confusion_figure",
    "error_by_group_figure",
    "importance_figure",
    "k_search_figure",
    "partial_dependence_figure",
    "pr_figure",
    "predicted_actual_figure",
    "residual_figure",
    "roc_figure",
    "shap_figure",
    "silhouette_figure",
    "threshold_figure",
    "validation_curve_figure",
]

BLUE, ORANGE, GREY, GREEN = "#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c"


@dataclass(frozen=True)
class Figure:
    """One diagnostic: a plotly figure dict and the text that explains it."""

    name: str
    title: str
    what: str
    how: str
    figure: dict[str, Any]

    def summary(self) -> dict[str, str]:
        """name, title, what and how (the index entry)."""
        return {"name": self.name, "title": self.title, "what": self.what, "how": self.how}


def _layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "xaxis": {"title": {"text": x}}, "yaxis": {"title": {"text": y}},
            "template": "plotly_white", **extra}


def _line(x: Any, y: Any, name: str, color: str = BLUE, dash: str | None = None, **extra: Any) -> dict[str, Any]:
    line: dict[str, Any] = {"color": color}
    if dash:
        line["dash"] = dash
    return {"type": "scatter", "mode": "lines", "x": _list(x), "y": _list(y), "name": name, "line": line, **extra}


def _list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _round(values: Any, digits: int = 5) -> list[float]:
    return np.round(np.asarray(values, dtype=float), digits).tolist()


# --- classification -------------------------------------------------------------------------------------------
def pr_figure(y: Sequence[int], proba: Sequence[float]) -> Figure:
    """Precision-recall curve with average precision and the chance level (the prevalence)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, proba, drop_intermediate=True)
    ap = float(average_precision_score(y, proba))
    prevalence = float(np.mean(y))
    data = [_line(_round(recall), _round(precision), f"model (AP {ap:.3f})"),
            _line([0, 1], [prevalence, prevalence], f"chance (prevalence {prevalence:.3f})", GREY, "dash")]
    return Figure(
        "pr_curve", "Precision-recall curve (test block)",
        "Precision against recall over every decision threshold, with the average precision (AP, the area under the "
        "curve) and the chance level, which equals the share of fraud.",
        "Higher and further right is better; compare AP with the chance line, not with 0.5: with rare fraud a "
        "random model scores the prevalence. Pick a point where recall is high enough for the business.",
        {"data": data, "layout": _layout(f"Precision-recall (AP {ap:.3f})", "recall", "precision",
                                         yaxis={"title": {"text": "precision"}, "range": [0, 1.02]})})


def roc_figure(y: Sequence[int], proba: Sequence[float]) -> Figure:
    """ROC curve with its area and the diagonal of a random model."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, proba, drop_intermediate=True)
    auc = float(roc_auc_score(y, proba))
    data = [_line(_round(fpr), _round(tpr), f"model (AUC {auc:.3f})"), _line([0, 1], [0, 1], "random", GREY, "dash")]
    return Figure(
        "roc_curve", "ROC curve (test block)",
        "True-positive rate (recall) against false-positive rate over every threshold, with the area under it.",
        "The closer to the top-left corner the better; the diagonal is a coin flip. With rare fraud the ROC looks "
        "optimistic: read the precision-recall curve for the cost of false alarms.",
        {"data": data, "layout": _layout(f"ROC (AUC {auc:.3f})", "false-positive rate", "true-positive rate")})


def calibration_figure(y: Sequence[int], proba: Sequence[float], bins: int = 10) -> Figure:
    """Reliability diagram: observed fraud share against the mean predicted probability, per quantile bin."""
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, proba, n_bins=bins, strategy="quantile")
    data = [_line(_round(predicted), _round(observed), "model", mode="lines+markers"),
            _line([0, 1], [0, 1], "perfectly calibrated", GREY, "dash")]
    return Figure(
        "calibration", "Calibration (test block)",
        f"Rows grouped into {bins} bins of equal size by predicted probability: the share that really was fraud "
        "against the mean predicted probability in each bin.",
        "Points on the diagonal mean the probability can be read as a frequency; below it the model overstates the "
        "risk, above it understates it. Most rows sit in the lowest bins.",
        {"data": data, "layout": _layout("Calibration", "mean predicted probability", "observed fraud share")})


def confusion_figure(cm: Mapping[str, int], threshold: float) -> Figure:
    """The confusion matrix at the model's threshold, counts annotated."""
    z = [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]
    heatmap = {"type": "heatmap", "z": z, "x": ["predicted legit", "predicted fraud"],
               "y": ["actual legit", "actual fraud"], "colorscale": "Blues", "showscale": False,
               "text": [[str(v) for v in row] for row in z], "texttemplate": "%{text}"}
    return Figure(
        "confusion_matrix", f"Confusion matrix at threshold {threshold:.3f} (test block)",
        "Counts of test rows by actual class (rows) and decision (columns) at the threshold chosen on the "
        "validation block to maximise FBeta (beta 2).",
        "The diagonal is right. Top right: false alarms (legit rows flagged); bottom left: missed fraud, which "
        "FBeta with beta 2 weighs four times as heavily.",
        {"data": [heatmap], "layout": _layout(f"Confusion matrix (threshold {threshold:.3f})", "decision", "actual",
                                              yaxis={"title": {"text": "actual"}, "autorange": "reversed"})})


def threshold_figure(sweep: Mapping[str, Sequence[float]], chosen: float) -> Figure:
    """Precision, recall and FBeta against the threshold, with the chosen threshold marked."""
    data = [_line(sweep["threshold"], _round(sweep["precision"]), "precision", BLUE),
            _line(sweep["threshold"], _round(sweep["recall"]), "recall", ORANGE),
            _line(sweep["threshold"], _round(sweep["fbeta"]), f"FBeta (beta {BETA:g})", GREEN),
            _line([chosen, chosen], [0, 1], f"chosen {chosen:.3f}", GREY, "dot")]
    return Figure(
        "threshold_sweep", "Precision, recall and FBeta against the threshold (test block)",
        "What each decision threshold would give on the test block; the dotted line is the threshold chosen on the "
        "validation block.",
        "Lower thresholds catch more fraud (recall) at the cost of more false alarms (precision). If the FBeta peak "
        "lies far from the dotted line, the validation block was not representative of the test block.",
        {"data": data, "layout": _layout("Threshold sweep", "threshold", "score")})


def shap_figure(names: Sequence[str], shap: np.ndarray, values: Mapping[str, Sequence[Any]],
                categorical: Sequence[str], seed: int = 0) -> Figure:
    """SHAP summary: one dot per row and feature, at its SHAP value, coloured by the (numeric) feature value."""
    rng = np.random.default_rng(seed)
    order = np.argsort(np.abs(shap).mean(axis=0))  # least important first: the most important ends on top
    data = []
    for rank, index in enumerate(order):
        name = names[index]
        column = values[name]
        if name in categorical:
            color: Any = GREY
        else:
            numeric = np.asarray(column, dtype=float)
            spread = np.ptp(numeric) or 1.0
            color = _round((numeric - numeric.min()) / spread, 3)
        data.append({"type": "scatter", "mode": "markers", "name": name, "showlegend": False,
                     "x": _round(shap[:, index]), "y": _round(rank + rng.uniform(-0.3, 0.3, len(shap)), 3),
                     "marker": {"size": 4, "color": color, "colorscale": "RdBu", "reversescale": True,
                                "cmin": 0, "cmax": 1, "opacity": 0.6},
                     "text": [str(v) for v in column], "hovertemplate": f"{name}=%{{text}}<br>SHAP %{{x}}"})
    layout = _layout("SHAP summary", "SHAP value (contribution to the model's raw score)", "feature",
                     yaxis={"tickmode": "array", "tickvals": list(range(len(order))),
                            "ticktext": [names[i] for i in order], "title": {"text": "feature"}})
    return Figure(
        "shap_summary", "SHAP summary (sample of the test block)",
        "For every sampled row and feature, how much that feature pushed the prediction up (right) or down (left); "
        "features sorted by mean absolute effect, dots coloured from low (blue) to high (red) feature value, grey "
        "for categoricals.",
        "Wide spreads mark influential features; a clean colour split (red on one side) shows the direction of the "
        "effect, mixed colours an interaction.",
        {"data": data, "layout": layout})


# --- shared -----------------------------------------------------------------------------------------------------
def bar_figure(name: str, title: str, what: str, how: str, labels: Sequence[str], values: Sequence[float],
               axis: str, errors: Sequence[float] | None = None) -> Figure:
    """A horizontal bar chart, largest value on top."""
    order = np.argsort(np.asarray(values, dtype=float))
    bar: dict[str, Any] = {"type": "bar", "orientation": "h", "x": _round(np.asarray(values)[order]),
                           "y": [labels[i] for i in order], "marker": {"color": BLUE}}
    if errors is not None:
        bar["error_x"] = {"type": "data", "array": _round(np.asarray(errors)[order])}
    return Figure(name, title, what, how, {"data": [bar], "layout": _layout(title, axis, "")})


def importance_figure(names: Sequence[str], importances: Sequence[float]) -> Figure:
    """CatBoost's own importance (PredictionValuesChange)."""
    return bar_figure(
        "feature_importance", "Feature importance (CatBoost)",
        "CatBoost's PredictionValuesChange: how much, on average, the prediction changes when a feature's value "
        "changes, summed over the trees (normalised to 100).",
        "A ranking of what the trees use, computed on the training data. It says nothing about the direction of an "
        "effect and favours features with many distinct values; check it against the permutation importance.",
        names, importances, "importance (sums to 100)")


def validation_curve_figure(evals: Mapping[str, Mapping[str, Sequence[float]]], best_iteration: int | None) -> Figure:
    """Every metric per boosting iteration on the train and validation blocks, best iteration marked."""
    data = []
    colors = [BLUE, ORANGE, GREEN, "#d62728", "#9467bd"]
    for block, dash in (("learn", "dot"), ("validation", None)):
        for index, (metric, values) in enumerate(sorted(evals.get(block, {}).items())):
            data.append(_line(list(range(1, len(values) + 1)), _round(values), f"{block} {metric}",
                              colors[index % len(colors)], dash))
    if best_iteration is not None and data:
        top = max(max(trace["y"]) for trace in data)
        data.append(_line([best_iteration + 1] * 2, [0, top], f"best iteration {best_iteration + 1}", GREY, "dash"))
    return Figure(
        "validation_curve", "Metrics per boosting iteration",
        "Each metric after every boosting iteration on the train block (dotted) and the validation block (solid); "
        "the dashed line is the iteration early stopping kept.",
        "Validation flattening or turning while training keeps improving is overfitting: early stopping stops "
        "there. The test block was never part of this curve.",
        {"data": data, "layout": _layout("Metrics per iteration", "iteration", "value")})


# --- regression -------------------------------------------------------------------------------------------------
def predicted_actual_figure(actual: Sequence[float], predicted: Sequence[float]) -> Figure:
    """Predicted against actual travel time on a sample, with the identity line."""
    top = float(max(np.max(actual), np.max(predicted))) if len(actual) else 1.0
    data = [_trips(actual, predicted), _line([0, top], [0, top], "perfect", GREY, "dash")]
    return Figure(
        "predicted_vs_actual", "Predicted against actual travel time (test block sample)",
        "Each dot is a test trip: its actual travel time (x) and the model's estimate (y), in seconds.",
        "Dots on the dashed line are exact. A cloud that flattens at long trips means the model underestimates them; "
        "a widening cloud means the error grows with the trip's length.",
        {"data": data, "layout": _layout("Predicted vs actual", "actual seconds", "predicted seconds")})


def _trips(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """One translucent dot per sampled trip."""
    return {"type": "scatter", "mode": "markers", "x": _round(x, 1), "y": _round(y, 1), "name": "trips",
            "marker": {"size": 4, "opacity": 0.4, "color": BLUE}}


def residual_figure(predicted: Sequence[float], residual: Sequence[float]) -> Figure:
    """Residual (actual - predicted) against the prediction."""
    low, high = (float(np.min(predicted)), float(np.max(predicted))) if len(predicted) else (0.0, 1.0)
    data = [_trips(predicted, residual), _line([low, high], [0, 0], "no error", GREY, "dash")]
    return Figure(
        "residuals_vs_predicted", "Residuals against predictions (test block sample)",
        "Actual minus predicted seconds for each sampled test trip, against the prediction.",
        "A band centred on zero of even width is what a good model leaves. A slope means a bias that depends on the "
        "trip's length; a funnel means the error grows with it.",
        {"data": data, "layout": _layout("Residuals", "predicted seconds", "actual - predicted seconds")})


def error_by_group_figure(name: str, title: str, what: str, how: str, groups: Sequence[str],
                          errors: Sequence[float], axis: str) -> Figure:
    """Mean absolute error per group (hour of week, weather): one bar per group, in the given order."""
    counts: dict[str, list[float]] = {}
    for group, error in zip(groups, errors, strict=True):
        counts.setdefault(str(group), []).append(float(error))
    labels = sorted(counts, key=_natural)
    bar = {"type": "bar", "x": labels, "y": [round(float(np.mean(counts[g])), 1) for g in labels],
           "text": [f"{len(counts[g])} trips" for g in labels], "marker": {"color": BLUE}}
    return Figure(name, title, what, how, {"data": [bar], "layout": _layout(title, axis, "mean absolute error (s)")})


def _natural(label: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in label.replace("-", " ").split())


def partial_dependence_figure(feature: str, grid: Sequence[Any], average: Sequence[float], categorical: bool,
                              unit: str) -> Figure:
    """The model's average prediction when one feature is set to each grid value for every sampled row."""
    trace: dict[str, Any] = (
        {"type": "bar", "x": [str(v) for v in grid], "y": _round(average, 2), "marker": {"color": BLUE}}
        if categorical else _line(_round(grid, 4), _round(average, 2), "average prediction"))
    return Figure(
        f"partial_dependence_{feature}", f"Partial dependence on {feature}",
        f"For a sample of test rows, {feature} is set to each value on the x axis while everything else is kept, "
        "and the model's average prediction is drawn.",
        "The shape shows how the model uses the feature on its own: flat means unused. It averages interactions "
        "away and can show values that never occur together with the rest of a row.",
        {"data": [trace], "layout": _layout(f"Partial dependence: {feature}", feature, f"average prediction ({unit})")})


# --- clustering -------------------------------------------------------------------------------------------------
def k_search_figure(scores: Mapping[int, Mapping[str, Any]], chosen: int) -> Figure:
    """Inertia (left axis) and silhouette (right axis) against K."""
    ks = sorted(scores)
    data = [_line(ks, [scores[k].get("Inertia") for k in ks], "inertia (train block)", BLUE, mode="lines+markers"),
            _line(ks, [scores[k].get("Silhouette") for k in ks], "silhouette (validation block)", ORANGE,
                  mode="lines+markers", yaxis="y2")]
    layout = _layout(f"K search (chosen K = {chosen})", "K (clusters)", "inertia",
                     yaxis2={"title": {"text": "silhouette"}, "overlaying": "y", "side": "right"})
    return Figure(
        "k_search", "Inertia and silhouette against K",
        "For each K tried: the within-cluster sum of squared distances on the train block (inertia, left) and the "
        "silhouette on a sample of the validation block (right); the chosen K has the best silhouette.",
        "Inertia always falls as K grows: look for its elbow. The silhouette (-1 to 1, higher is better) peaks where "
        "clusters are both tight and well separated.",
        {"data": data, "layout": layout})


def silhouette_figure(labels: Sequence[int], silhouettes: Sequence[float]) -> Figure:
    """Per-sample silhouettes sorted within each cluster, one band per cluster, with the mean."""
    labels_arr, values = np.asarray(labels), np.asarray(silhouettes, dtype=float)
    data, offset = [], 0
    for cluster in np.unique(labels_arr):
        members = np.sort(values[labels_arr == cluster])
        data.append({"type": "bar", "orientation": "h", "x": _round(members, 4),
                     "y": list(range(offset, offset + len(members))), "name": f"cluster {int(cluster)}",
                     "marker": {"line": {"width": 0}}, "width": 1})
        offset += len(members) + max(2, len(values) // 100)
    mean = float(values.mean()) if len(values) else 0.0
    data.append(_line([mean, mean], [0, offset], f"mean {mean:.3f}", GREY, "dash"))
    return Figure(
        "silhouette_samples", "Silhouette of each sampled row, by cluster (test block)",
        "For each sampled test row: (b - a) / max(a, b), with a its mean distance to its own cluster and b to the "
        "nearest other cluster; rows sorted within each cluster's band.",
        "Values near 1 sit well inside their cluster, near 0 on a border, below 0 probably in the wrong cluster. "
        "Bands of very different widths or mostly below the mean line point to a poor K.",
        {"data": data, "layout": _layout("Silhouette per row", "silhouette", "rows (grouped by cluster)",
                                         bargap=0, yaxis={"showticklabels": False, "title": {"text": "rows"}})})


def cluster_size_figure(sizes: Mapping[str, int]) -> Figure:
    """Rows per cluster on the test block."""
    labels = sorted(sizes, key=int)
    bar = {"type": "bar", "x": [f"cluster {k}" for k in labels], "y": [sizes[k] for k in labels],
           "marker": {"color": BLUE}}
    return Figure(
        "cluster_sizes", "Rows per cluster (test block)",
        "How many test rows the model assigns to each cluster.",
        "Very small clusters are niches or outliers; one cluster holding most rows means K is too small or the "
        "features do not separate behaviours.",
        {"data": [bar], "layout": _layout("Cluster sizes", "cluster", "rows")})


def centroid_figure(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Figure:
    """The centroid table: one row per cluster, numerics in original units, the dominant value of each categorical."""
    columns = [[str(row[i]) for row in rows] for i in range(len(header))]
    table = {"type": "table", "header": {"values": list(header)}, "cells": {"values": columns}}
    return Figure(
        "centroids", "Cluster centroids",
        "Each cluster's centre translated back to features: numerics in their own units (the mean of the standardised "
        "centre), and for each categorical the value with the largest weight in the centre.",
        "Read a row as the typical interaction of the cluster: what it costs, how long the visit is, which event "
        "and device dominate. Clusters differing in a single column are candidates for merging.",
        {"data": [table], "layout": {"title": {"text": "Cluster centroids"}, "template": "plotly_white"}})


def cluster_feature_figure(shares: Mapping[str, Mapping[str, float]], order: Sequence[str]) -> Figure:
    """Heatmap: share of each cluster's rows with each categorical value (the original's cluster-feature counts)."""
    clusters = sorted(shares, key=int)
    z = [[round(shares[c].get(column, 0.0), 4) for column in order] for c in clusters]
    heatmap = {"type": "heatmap", "z": z, "x": list(order), "y": [f"cluster {c}" for c in clusters],
               "colorscale": "Viridis", "zmin": 0, "zmax": 1, "colorbar": {"title": {"text": "share"}}}
    return Figure(
        "cluster_features", "Feature values per cluster (test block)",
        "For each cluster (row) and categorical value (column, field=value), the share of the cluster's test rows "
        "that have it.",
        "Bright cells are what a cluster is made of; a column bright in one cluster only is what sets that cluster "
        "apart. Rows that look alike are clusters that behave alike.",
        {"data": [heatmap], "layout": _layout("Feature values per cluster", "field=value", "cluster")})
