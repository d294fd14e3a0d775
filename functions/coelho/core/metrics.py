"""Prequential metric suites with bounded memory, one per task.

Each suite is updated with what the model said *before* learning the event
(predict → metric → learn) and reports plain floats keyed by the original system's names.

Examples
--------
>>> suite = RegressionSuite()
>>> for y, p in [(100, 110), (200, 190), (300, 330)]:
...     suite.update({"timestamp": "2026-01-01T00:00:00+00:00"}, {}, {"y": y, "y_pred": p})
>>> suite.report()["MAE"]
16.66...
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from river import metrics, utils
from river.utils.math import minkowski_distance

__all__ = ["ClassificationSuite", "ClusteringSuite", "RegressionSuite", "RollingMean", "ThresholdROCAUC", "distance"]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class ClassificationSuite:
    """TFD: class metrics on one shared confusion matrix, probability metrics and FBeta over the last 1000."""

    def __init__(self) -> None:
        self.cm = metrics.ConfusionMatrix()
        self.class_metrics: dict[str, metrics.base.Metric] = {
            "Recall": metrics.Recall(cm=self.cm, pos_val=1),
            "Precision": metrics.Precision(cm=self.cm, pos_val=1),
            "F1": metrics.F1(cm=self.cm, pos_val=1),
            "FBeta": metrics.FBeta(beta=2.0, cm=self.cm, pos_val=1),
            "Accuracy": metrics.Accuracy(cm=self.cm),
            "BalancedAccuracy": metrics.BalancedAccuracy(cm=self.cm),
            "MCC": metrics.MCC(cm=self.cm, pos_val=1),
            "GeometricMean": metrics.GeometricMean(cm=self.cm),
            "CohenKappa": metrics.CohenKappa(cm=self.cm),
            "Jaccard": metrics.Jaccard(cm=self.cm, pos_val=1),
        }
        self.proba_metrics: dict[str, metrics.base.Metric] = {
            "ROCAUC": ThresholdROCAUC(n_thresholds=50),
            "RollingROCAUC": metrics.RollingROCAUC(window_size=5000, pos_val=1),
            "LogLoss": metrics.LogLoss(),
        }
        self.rolling_fbeta = utils.Rolling(metrics.FBeta, window_size=1000, beta=2.0, pos_val=1)

    def update(self, event: Mapping[str, Any], x: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
        """Feed the label and the pre-learning prediction and probability."""
        y = int(outcome["y"])
        self.cm.update(y, int(outcome["y_pred"]))
        proba = float(outcome["proba"])
        self.proba_metrics["ROCAUC"].update(y, proba)
        self.proba_metrics["RollingROCAUC"].update(y, proba)
        self.proba_metrics["LogLoss"].update(y == 1, proba)
        self.rolling_fbeta.update(y, int(outcome["y_pred"]))

    def report(self) -> dict[str, Any]:
        """Scalars plus the confusion matrix as tn/fp/fn/tp counts."""
        out: dict[str, Any] = {
            name: _finite(float(m.get()))
            for name, m in {**self.class_metrics, **self.proba_metrics}.items()
        }
        out["RollingFBeta"] = _finite(float(self.rolling_fbeta.get()))
        cm = self.cm
        out["ConfusionMatrix"] = {
            "tn": int(cm[0][0]), "fp": int(cm[0][1]), "fn": int(cm[1][0]), "tp": int(cm[1][1]),
        }
        return out


class ThresholdROCAUC:
    """River's `metrics.ROCAUC(n_thresholds)`, computed from two histograms instead of n confusion matrices.

    An event is "predicted positive" at every threshold below its probability, so counting, per
    event, how many thresholds lie below it (one bisection) is enough: O(log n) per update
    instead of n confusion-matrix updates. `get()` gives the same trapezoidal area.

    >>> from river import metrics
    >>> fast, river_auc = ThresholdROCAUC(50), metrics.ROCAUC(n_thresholds=50, pos_val=1)
    >>> for y, p in [(1, 0.9), (0, 0.2), (1, 0.35), (0, 0.6), (0, 0.1)]:
    ...     fast.update(y, p); river_auc.update(y, {0: 1 - p, 1: p})
    >>> bool(abs(fast.get() - river_auc.get()) < 1e-12)
    True
    """

    def __init__(self, n_thresholds: int = 10) -> None:
        self.n_thresholds = n_thresholds
        self.thresholds = [i / (n_thresholds - 1) for i in range(n_thresholds)]
        self.thresholds[0] -= 1e-7
        self.thresholds[-1] += 1e-7
        # below[label][k]: events of that label whose probability exceeds exactly the k lowest thresholds
        self.below = {True: [0] * (n_thresholds + 1), False: [0] * (n_thresholds + 1)}

    def update(self, y_true: int, proba: float) -> None:
        """Count one event."""
        self.below[y_true == 1][bisect.bisect_left(self.thresholds, proba)] += 1

    def get(self) -> float:
        """Area under the ROC curve sampled at the thresholds (trapezoidal rule, as River)."""
        positives, negatives = sum(self.below[True]), sum(self.below[False])
        tprs, fprs = [], []
        for i in range(self.n_thresholds):
            tp = sum(self.below[True][i + 1 :])  # positives predicted positive at threshold i
            fp = sum(self.below[False][i + 1 :])
            tprs.append(tp / positives if positives else 0.0)
            fprs.append(fp / negatives if negatives else 0.0)
        return -sum((fprs[i + 1] - fprs[i]) * (tprs[i + 1] + tprs[i]) / 2 for i in range(self.n_thresholds - 1))


class RegressionSuite:
    """ETA: error metrics, rolling MAE/RMSE over 1000 events, MAE over 5 minutes of event time."""

    def __init__(self) -> None:
        self.metrics: dict[str, metrics.base.Metric] = {
            "MAE": metrics.MAE(),
            "RMSE": metrics.RMSE(),
            "MSE": metrics.MSE(),
            "R2": metrics.R2(),
            "MAPE": metrics.MAPE(),
            "SMAPE": metrics.SMAPE(),
            "RMSLE": metrics.RMSLE(),
        }
        self.rolling_mae = utils.Rolling(metrics.MAE, window_size=1000)
        self.rolling_rmse = utils.Rolling(metrics.RMSE, window_size=1000)
        self.time_rolling_mae = utils.TimeRolling(metrics.MAE, period=dt.timedelta(minutes=5))

    def update(self, event: Mapping[str, Any], x: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
        """Feed the label and the pre-learning estimate."""
        y, y_pred = float(outcome["y"]), max(0.0, float(outcome["y_pred"]))
        for metric in self.metrics.values():
            metric.update(y, y_pred)
        self.rolling_mae.update(y, y_pred)
        self.rolling_rmse.update(y, y_pred)
        when = dt.datetime.fromisoformat(event["timestamp"]).astimezone(dt.UTC)
        self.time_rolling_mae.update(y, y_pred, t=when.replace(tzinfo=None))

    def report(self) -> dict[str, Any]:
        """Scalars keyed by the original names."""
        out = {name: _finite(float(m.get())) for name, m in self.metrics.items()}
        out["RollingMAE"] = _finite(float(self.rolling_mae.get()))
        out["RollingRMSE"] = _finite(float(self.rolling_rmse.get()))
        out["TimeRollingMAE"] = _finite(float(self.time_rolling_mae.get()))
        return out


class RollingMean:
    """Mean of the last `window_size` values in O(window) memory.

    >>> r = RollingMean(2)
    >>> for v in (1.0, 2.0, 4.0):
    ...     r.update(v)
    >>> r.get()
    3.0
    """

    def __init__(self, window_size: int) -> None:
        self.window: collections.deque[float] = collections.deque(maxlen=window_size)
        self.total = 0.0

    def update(self, value: float) -> None:
        """Add a value, dropping the oldest when the window is full."""
        if len(self.window) == self.window.maxlen:
            self.total -= self.window[0]
        self.window.append(value)
        self.total += value

    def get(self) -> float:
        """The window mean (0 when empty)."""
        return self.total / len(self.window) if self.window else 0.0


class ClusteringSuite:
    """ECCI: simplified silhouette (overall and rolling), cluster sizes and per-cluster value counts.

    The silhouette of one event is (b - a) / max(a, b), where a and b are the distances to the
    nearest and the second-nearest cluster centre: in [-1, 1], bigger is better. It is only
    defined once there are two clusters, as in the original system.
    """

    COUNTED_FIELDS = ("event_type", "product_category", "referrer_url", "device_type", "os", "browser")

    def __init__(self) -> None:
        self.silhouette_sum = 0.0
        self.silhouette_n = 0
        self.rolling = RollingMean(1000)
        self.samples_per_cluster: collections.Counter[int] = collections.Counter()
        self.feature_counts: dict[int, dict[str, collections.Counter[str]]] = {}
        self.n_clusters = 0
        self.n_micro_clusters = 0

    def update(self, event: Mapping[str, Any], x: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
        """Feed the pre-learning cluster, the transformed features and the current centres."""
        cluster = int(outcome["cluster"])
        centers: Mapping[int, Mapping[str, float]] = outcome["centers"]
        self.n_clusters = len(centers)
        self.n_micro_clusters = int(outcome["n_micro_clusters"])
        self.samples_per_cluster[cluster] += 1
        counts = self.feature_counts.setdefault(cluster, {})
        for name in self.COUNTED_FIELDS:
            counts.setdefault(name, collections.Counter())[str(x.get(name))] += 1
        if cluster in centers and len(centers) >= 2:
            score = _simplified_silhouette(outcome["x_transformed"], cluster, centers)
            self.silhouette_sum += score
            self.silhouette_n += 1
            self.rolling.update(score)

    def report(self) -> dict[str, Any]:
        """Scalars plus per-cluster sample and feature-value counts."""
        return {
            "Silhouette": self.silhouette_sum / self.silhouette_n if self.silhouette_n else None,
            "RollingSilhouette": self.rolling.get() if self.rolling.window else None,
            "n_clusters": self.n_clusters,
            "n_micro_clusters": self.n_micro_clusters,
            "samples_per_cluster": {str(k): v for k, v in sorted(self.samples_per_cluster.items())},
            "cluster_feature_counts": {
                str(c): {f: dict(cnt.most_common(20)) for f, cnt in feats.items()}
                for c, feats in sorted(self.feature_counts.items())
            },
        }


def distance(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Euclidean distance of two sparse vectors (missing keys are 0).

    >>> distance({"x": 3.0}, {"y": 4.0})
    5.0
    """
    # River's native Euclidean distance walks the dicts in insertion order (never a set), so the
    # result is the same in every process.
    return float(minkowski_distance(a, b, 2))


def _simplified_silhouette(
    x: Mapping[str, float], cluster: int, centers: Mapping[int, Mapping[str, float]]
) -> float:
    own = distance(x, centers[cluster])
    other = min(distance(x, c) for k, c in centers.items() if k != cluster)
    denominator = max(own, other)
    return (other - own) / denominator if denominator else 0.0
