"""Metric suites: names of the original system, bounded memory, correct values."""

from __future__ import annotations

import pytest

from coelho.core.metrics import ClassificationSuite, ClusteringSuite, RegressionSuite, RollingMean

TS = "2026-03-02T12:00:00+00:00"


def test_classification_suite_names_and_confusion_matrix():
    suite = ClassificationSuite()
    for y, p in [(1, 0.9), (0, 0.2), (1, 0.3), (0, 0.7)]:
        suite.update({"timestamp": TS}, {}, {"y": y, "y_pred": int(p >= 0.5), "proba": p})
    report = suite.report()
    assert set(report) == {"Recall", "Precision", "F1", "FBeta", "Accuracy", "BalancedAccuracy", "MCC",
                           "GeometricMean", "CohenKappa", "Jaccard", "ROCAUC", "RollingROCAUC", "LogLoss",
                           "RollingFBeta", "ConfusionMatrix"}
    assert report["ConfusionMatrix"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 1}
    assert report["Recall"] == 0.5 and report["Accuracy"] == 0.5
    assert report["FBeta"] == pytest.approx(0.5)
    assert report["RollingFBeta"] == pytest.approx(0.5)  # fewer events than the window: all of them


def test_regression_suite_time_rolling_window_forgets_old_errors():
    suite = RegressionSuite()
    suite.update({"timestamp": "2026-03-02T12:00:00+00:00"}, {}, {"y": 100, "y_pred": 200})
    suite.update({"timestamp": "2026-03-02T12:10:00+00:00"}, {}, {"y": 100, "y_pred": 110})
    report = suite.report()
    assert report["MAE"] == pytest.approx(55)
    assert report["TimeRollingMAE"] == pytest.approx(10)
    assert report["RollingMAE"] == pytest.approx(55)


def test_regression_suite_memory_is_bounded():
    suite = RegressionSuite()
    for i in range(3000):
        suite.update({"timestamp": TS}, {}, {"y": 100.0, "y_pred": float(i % 7)})
    assert len(suite.rolling_mae.window) == 1000


def test_clustering_suite_silhouette_is_bigger_is_better():
    suite = ClusteringSuite()
    centers = {0: {"a": 0.0}, 1: {"a": 10.0}}
    for value, cluster in [(0.5, 0), (9.5, 1)]:
        suite.update({}, {"event_type": "page_view"}, {
            "cluster": cluster, "centers": centers, "n_micro_clusters": 4, "x_transformed": {"a": value},
        })
    report = suite.report()
    assert report["Silhouette"] == pytest.approx((9.5 - 0.5) / 9.5)
    assert report["n_clusters"] == 2 and report["n_micro_clusters"] == 4
    assert report["samples_per_cluster"] == {"0": 1, "1": 1}
    assert report["cluster_feature_counts"]["0"]["event_type"] == {"page_view": 1}


def test_rolling_mean_keeps_a_fixed_window():
    rolling = RollingMean(3)
    for v in range(10):
        rolling.update(float(v))
    assert rolling.get() == 8.0 and len(rolling.window) == 3
