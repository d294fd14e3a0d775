"""Metrics of a batch model on a block of rows, named like the online suites' so one champion rule ranks both.

TFD: FBeta (β=2), Precision, Recall, F1, Accuracy, BalancedAccuracy, MCC, GeometricMean, CohenKappa,
Jaccard at the model's decision threshold; ROCAUC, PRAUC (average precision), LogLoss, Brier from the
probabilities; the confusion matrix. ETA: MAE, RMSE, MSE, R2, MAPE and SMAPE (percent, as River),
RMSLE, MedianAE, MaxError. ECCI: Silhouette (on a bounded sample), CalinskiHarabasz, DaviesBouldin,
Inertia, n_clusters and the samples per cluster. Every value is a plain float (None when undefined).

Examples
--------
>>> m = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
>>> m["Precision"], m["Recall"], m["ROCAUC"], m["ConfusionMatrix"]
(0.5, 0.5, 0.75, {'tn': 1, 'fp': 1, 'fn': 1, 'tp': 1})
>>> r = regression_metrics([100.0, 200.0], [110.0, 180.0])
>>> r["MAE"], r["MAPE"], round(r["RMSE"], 3)
(15.0, 10.0, 15.811)
>>> best_threshold([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], beta=2.0)
0.4
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BETA", "best_k", "best_threshold", "classification_metrics", "clustering_metrics", "clusterings_metrics",
           "nearest_centre", "regression_metrics", "sampled_silhouettes", "threshold_sweep"]

#: FBeta's β for fraud: recall counts twice as much as precision (the online suite's choice).
BETA = 2.0


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _fbeta(precision: np.ndarray, recall: np.ndarray, beta: float) -> np.ndarray:
    b2 = beta * beta
    denominator = b2 * precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, (1 + b2) * precision * recall / denominator, 0.0)


def best_threshold(y: Sequence[int], proba: Sequence[float], beta: float = BETA) -> float:
    """The probability threshold that maximises FBeta on (validation) rows; 0.5 without a positive row."""
    from sklearn.metrics import precision_recall_curve

    y_arr = np.asarray(y, dtype=int)
    if y_arr.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y_arr, np.asarray(proba, dtype=float))
    scores = _fbeta(precision[:-1], recall[:-1], beta)
    return float(thresholds[int(np.argmax(scores))])


def classification_metrics(y: Sequence[int], proba: Sequence[float], threshold: float) -> dict[str, Any]:
    """Binary metrics of probabilities `proba` for labels `y`, deciding positive at `proba >= threshold`."""
    from sklearn import metrics as skm

    y_arr = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1 - 1e-15)
    y_pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y_arr, y_pred, labels=[0, 1]).ravel())
    both = 0 < y_arr.sum() < len(y_arr)
    specificity = tn / (tn + fp) if tn + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    out: dict[str, Any] = {
        "FBeta": _finite(skm.fbeta_score(y_arr, y_pred, beta=BETA, zero_division=0)),
        "Precision": _finite(skm.precision_score(y_arr, y_pred, zero_division=0)),
        "Recall": _finite(recall),
        "F1": _finite(skm.f1_score(y_arr, y_pred, zero_division=0)),
        "Accuracy": _finite(skm.accuracy_score(y_arr, y_pred)),
        "BalancedAccuracy": _finite((recall + specificity) / 2),
        "MCC": _finite(skm.matthews_corrcoef(y_arr, y_pred)) if both else None,
        "GeometricMean": _finite(math.sqrt(recall * specificity)),
        "CohenKappa": _finite(skm.cohen_kappa_score(y_arr, y_pred)) if both else None,
        "Jaccard": _finite(skm.jaccard_score(y_arr, y_pred, zero_division=0)),
        "ROCAUC": _finite(skm.roc_auc_score(y_arr, p)) if both else None,
        "PRAUC": _finite(skm.average_precision_score(y_arr, p)) if both else None,
        "LogLoss": _finite(skm.log_loss(y_arr, p, labels=[0, 1])),
        "Brier": _finite(skm.brier_score_loss(y_arr, p)),
        "Prevalence": _finite(y_arr.mean()) if len(y_arr) else None,
        "Threshold": float(threshold),
        "ConfusionMatrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
    return out


def threshold_sweep(y: Sequence[int], proba: Sequence[float], points: int = 101) -> dict[str, list[float]]:
    """Precision, recall and FBeta at `points` evenly spaced thresholds from 0 to 1.

    >>> sweep = threshold_sweep([0, 1, 1], [0.2, 0.6, 0.8], points=3)
    >>> sweep["threshold"], sweep["recall"], sweep["precision"]
    ([0.0, 0.5, 1.0], [1.0, 1.0, 0.0], [0.666..., 1.0, 0.0])
    """
    y_arr = np.asarray(y, dtype=int)
    p = np.asarray(proba, dtype=float)
    thresholds = np.linspace(0.0, 1.0, points)
    predicted = p[None, :] >= thresholds[:, None]
    tp = (predicted & (y_arr[None, :] == 1)).sum(axis=1)
    positives_predicted = predicted.sum(axis=1)
    positives = max(int(y_arr.sum()), 1)
    precision = np.where(positives_predicted > 0, tp / np.maximum(positives_predicted, 1), 0.0)
    recall = tp / positives
    return {"threshold": thresholds.round(6).tolist(), "precision": precision.tolist(), "recall": recall.tolist(),
            "fbeta": _fbeta(precision, recall, BETA).tolist()}


def regression_metrics(y: Sequence[float], prediction: Sequence[float]) -> dict[str, Any]:
    """Error metrics of travel-time estimates (seconds); negative estimates count as 0, as online."""
    from sklearn import metrics as skm

    y_arr = np.asarray(y, dtype=float)
    p = np.maximum(np.asarray(prediction, dtype=float), 0.0)
    error = np.abs(y_arr - p)
    nonzero = y_arr != 0
    denominator = np.abs(y_arr) + np.abs(p)
    return {
        "MAE": _finite(error.mean()),
        "RMSE": _finite(math.sqrt(float((error**2).mean()))),
        "MSE": _finite((error**2).mean()),
        "R2": _finite(skm.r2_score(y_arr, p)) if len(y_arr) > 1 else None,
        "MAPE": _finite(100 * np.where(nonzero, error / np.where(nonzero, np.abs(y_arr), 1), 0).mean()),
        "SMAPE": _finite(100 * np.where(denominator > 0, 2 * error / np.where(denominator > 0, denominator, 1),
                                        0).mean()),
        "RMSLE": _finite(math.sqrt(float(((np.log1p(y_arr) - np.log1p(p)) ** 2).mean()))),
        "MedianAE": _finite(np.median(error)),
        "MaxError": _finite(error.max()),
    }


def nearest_centre(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centre of each row of `x`, and the squared distance to it.

    >>> labels, d2 = nearest_centre(np.array([[0.0, 0.0], [4.0, 4.0]]), np.array([[1.0, 0.0], [5.0, 5.0]]))
    >>> labels.tolist(), d2.tolist()
    ([0, 1], [1.0, 2.0])
    """
    d2 = (x * x).sum(axis=1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(axis=1)[None, :]
    labels = d2.argmin(axis=1)
    return labels, np.maximum(d2[np.arange(len(x)), labels], 0.0)


def clustering_metrics(x: np.ndarray, labels: np.ndarray, sample_size: int = 10_000, seed: int = 0,
                       squared_distances: np.ndarray | None = None) -> dict[str, Any]:
    """Silhouette (on at most `sample_size` rows, seeded), Calinski-Harabasz, Davies-Bouldin, cluster sizes.

    With fewer than two clusters among `labels` the three scores are None.

    >>> x = np.array([[0.0, 0.0], [0.0, 0.2], [5.0, 5.0], [5.2, 5.0]])
    >>> m = clustering_metrics(x, np.array([0, 0, 1, 1]))
    >>> round(m["Silhouette"], 3), m["n_clusters"], m["samples_per_cluster"]
    (0.972, 2, {'0': 2, '1': 2})
    >>> clustering_metrics(x, np.array([0, 0, 0, 0]))["Silhouette"] is None
    True
    """
    return clusterings_metrics(x, [labels], sample_size, seed, [squared_distances])[0]


def clusterings_metrics(x: np.ndarray, labelings: Sequence[np.ndarray], sample_size: int = 10_000, seed: int = 0,
                        squared_distances: Sequence[np.ndarray | None] | None = None) -> list[dict[str, Any]]:
    """`clustering_metrics` of several labelings of the same rows, their silhouettes from one pass of distances.

    >>> x = np.array([[0.0, 0.0], [0.0, 0.2], [5.0, 5.0], [5.2, 5.0]])
    >>> [m["Silhouette"] is None for m in clusterings_metrics(x, [np.array([0, 0, 1, 1]), np.zeros(4, int)])]
    [False, True]
    """
    from sklearn import metrics as skm

    silhouettes = sampled_silhouettes(x, labelings, sample_size, seed)
    out = []
    for index, labels in enumerate(labelings):
        labels = np.asarray(labels)
        found = np.unique(labels)
        metrics: dict[str, Any] = {"Silhouette": None, "CalinskiHarabasz": None, "DaviesBouldin": None,
                                   "n_clusters": len(found),
                                   "samples_per_cluster": {str(int(k)): int((labels == k).sum()) for k in found}}
        distances = None if squared_distances is None else squared_distances[index]
        if distances is not None:
            metrics["Inertia"] = _finite(np.sum(distances))
        if 2 <= len(found) < len(labels):
            metrics["Silhouette"] = _finite(silhouettes[index]) if silhouettes[index] is not None else None
            metrics["CalinskiHarabasz"] = _finite(skm.calinski_harabasz_score(x, labels))
            metrics["DaviesBouldin"] = _finite(skm.davies_bouldin_score(x, labels))
        out.append(metrics)
    return out


def sampled_silhouettes(x: np.ndarray, labelings: Sequence[np.ndarray], sample_size: int = 10_000, seed: int = 0,
                        chunk_rows: int = 1_000) -> list[float | None]:
    """The mean silhouette of each labeling of the rows `x` on the same seeded sample of at most `sample_size`
    rows — the sample and the value of scikit-learn's `silhouette_score(x, labels, sample_size=, random_state=)`
    — computing the sample's Euclidean distances once, `chunk_rows` rows at a time, for all labelings.
    None for a labeling with fewer than two clusters (or a cluster per row) in the sample.

    >>> from sklearn.metrics import silhouette_score
    >>> rng = np.random.default_rng(1)
    >>> x, labels = rng.normal(size=(300, 3)), rng.integers(0, 4, 300)
    >>> ours = sampled_silhouettes(x, [labels, labels % 2], sample_size=200, seed=7, chunk_rows=64)
    >>> theirs = [silhouette_score(x, l, sample_size=200, random_state=7) for l in (labels, labels % 2)]
    >>> bool(np.allclose(ours, theirs, rtol=0, atol=1e-12))
    True
    """
    from sklearn.metrics.pairwise import euclidean_distances

    rows = np.random.RandomState(seed).permutation(len(x))[:sample_size] if sample_size < len(x) else \
        np.arange(len(x))
    sample = x[rows]
    codes, onehots, sums = [], [], []
    for labels in labelings:
        found, code = np.unique(np.asarray(labels)[rows], return_inverse=True)
        codes.append(code)
        onehots.append(np.eye(len(found))[code] if 2 <= len(found) < len(rows) else None)
        sums.append(np.zeros((len(rows), len(found))))
    for start in range(0, len(rows), chunk_rows):
        distances = euclidean_distances(sample[start : start + chunk_rows], sample)
        diagonal = np.arange(len(distances))
        distances[diagonal, start + diagonal] = 0.0  # exactly, as scikit-learn does (the dot-product form is not)
        for onehot, total in zip(onehots, sums, strict=True):
            if onehot is not None:
                total[start : start + chunk_rows] = distances @ onehot  # row → its distances summed per cluster
    out: list[float | None] = []
    for code, onehot, total in zip(codes, onehots, sums, strict=True):
        if onehot is None:
            out.append(None)
            continue
        sizes = onehot.sum(axis=0)
        own = np.arange(len(code)), code
        with np.errstate(divide="ignore", invalid="ignore"):
            intra = total[own] / (sizes[code] - 1)
            total[own] = np.inf
            inter = (total / sizes).min(axis=1)
            values = np.nan_to_num((inter - intra) / np.maximum(intra, inter))
        out.append(float(values.mean()))
    return out


def best_k(scores: dict[int, dict[str, Any]]) -> int:
    """The K whose scores have the highest silhouette; a tie (or no silhouette) goes to the smaller K.

    >>> best_k({2: {"Silhouette": 0.3}, 3: {"Silhouette": 0.41}, 4: {"Silhouette": 0.41}, 5: {"Silhouette": None}})
    3
    """
    def key(k: int) -> tuple[float, int]:
        silhouette = scores[k].get("Silhouette")
        return (-math.inf if silhouette is None else silhouette, -k)

    return max(scores, key=key)
