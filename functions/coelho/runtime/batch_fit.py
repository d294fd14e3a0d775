"""Fitting the batch models: CatBoost with early stopping on the validation block, KMeans with a K search.

Only the train and validation blocks ever reach this module; the test block is scored after it returns.

- TFD: `CatBoostClassifier`, loss Logloss, early stopping on the validation block's PR AUC (the metric that
  matters with rare fraud), AUC/PRAUC/Logloss per iteration. The loss is not reweighted, so probabilities
  stay calibrated; the class imbalance is handled by the decision threshold, chosen on the validation block
  to maximise FBeta (β = 2), and by ranking iterations on PR AUC.
- ETA: `CatBoostRegressor`, loss RMSE, early stopping on the validation block's MAE (the champion metric).
- ECCI: `KMeans` (k-means++, seeded) on the `Encoder` space fitted on the train block, for every K of the
  range (or the requested K); each K is scored on one seeded sample of the validation block, the same for
  every K (`SCORE_ROWS`: Calinski-Harabasz and Davies-Bouldin on it, the silhouette on `SILHOUETTE_SAMPLE` of
  its rows), and the best silhouette wins. The bounds keep the search's scoring a small share of its fits at
  any table size: the silhouette costs `SILHOUETTE_SAMPLE`² distances per K.

`catboost_model` and `kmeans_model` build the estimators; the bench fits the same ones bare (no callback)
to measure what everything around the fit costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coelho.core.batch import FeatureColumns
from coelho.core.batch_metrics import best_k, clustering_metrics, nearest_centre
from coelho.core.progress import Progress, Stopped

__all__ = ["CATBOOST", "FitOptions", "KSearch", "catboost_model", "fit_catboost", "k_search", "kmeans_model"]

#: Per task: loss, the early-stopping metric and the metrics tracked per iteration.
CATBOOST: dict[str, dict[str, Any]] = {
    "classifier": {"loss_function": "Logloss", "eval_metric": "PRAUC", "custom_metric": ["AUC", "Logloss"]},
    "regressor": {"loss_function": "RMSE", "eval_metric": "MAE", "custom_metric": ["RMSE", "R2"]},
}
SEED = 42
#: Rows of the validation block each K is scored on (Calinski-Harabasz, Davies-Bouldin).
SCORE_ROWS = 20_000
#: Of those, the rows the silhouette of each K is computed on (the standard error of its mean is about 0.005).
SILHOUETTE_SAMPLE = 2_000


@dataclass(frozen=True)
class FitOptions:
    """The knobs of a fit (from the settings)."""

    iterations: int = 1000
    early_stopping_rounds: int = 50
    learning_rate: float = 0.08
    depth: int = 6
    threads: int = -1
    k_range: tuple[int, int] = (2, 10)


def catboost_model(kind: str, options: FitOptions) -> Any:
    """A fresh CatBoostClassifier or CatBoostRegressor with the project's parameters."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    cls = CatBoostClassifier if kind == "classifier" else CatBoostRegressor
    return cls(iterations=options.iterations, learning_rate=options.learning_rate, depth=options.depth,
               l2_leaf_reg=3.0, random_seed=SEED, thread_count=options.threads, allow_writing_files=False,
               verbose=False, od_type="Iter", od_wait=options.early_stopping_rounds, use_best_model=True,
               **CATBOOST[kind])


def catboost_pools(columns: FeatureColumns, train: Any, y_train: Any, validation: Any, y_validation: Any) -> tuple:
    """The train and validation Pools, categoricals declared by position (a tuple, see catboost#3078)."""
    from catboost import Pool

    cats = list(columns.categorical_indices)
    return Pool(train, y_train, cat_features=cats), Pool(validation, y_validation, cat_features=cats)


class _IterationProgress:
    """CatBoost callback: reports each iteration and stops the fit when a stop is requested."""

    def __init__(self, progress: Progress, iterations: int, loss: str, metric: str) -> None:
        self.progress = progress
        self.iterations = iterations
        self.loss = loss
        self.metric = metric
        self.started = time.monotonic()
        self.stopped = False

    def after_iteration(self, info: Any) -> bool:
        if self.progress.stop.is_set():
            self.stopped = True
            return False  # CatBoost keeps the trees so far; the caller raises Stopped
        done = info.iteration
        elapsed = time.monotonic() - self.started
        learn = info.metrics.get("learn", {}).get(self.loss, [float("nan")])[-1]
        validation = info.metrics.get("validation", {}).get(self.metric, [float("nan")])[-1]
        remaining = elapsed / done * (self.iterations - done)
        self.progress.step(done / self.iterations,
                           f"iteration {done}/{self.iterations}: learn {self.loss} {learn:.4f}, validation "
                           f"{self.metric} {validation:.4f}; {elapsed:.1f} s elapsed, at most {remaining:.0f} s left")
        return True  # anything else (None included) stops CatBoost


def fit_catboost(kind: str, columns: FeatureColumns, train: Any, y_train: Any, validation: Any, y_validation: Any,
                 options: FitOptions, progress: Progress) -> Any:
    """Fit with early stopping on the validation block (the only eval set); raise Stopped on a stop request."""
    model = catboost_model(kind, options)
    train_pool, validation_pool = catboost_pools(columns, train, y_train, validation, y_validation)
    callback = _IterationProgress(progress, options.iterations, CATBOOST[kind]["loss_function"],
                                  CATBOOST[kind]["eval_metric"])
    model.fit(train_pool, eval_set=validation_pool, callbacks=[callback])
    if callback.stopped:
        raise Stopped("stop requested during boosting")
    trained = len(model.get_evals_result()["validation"][CATBOOST[kind]["eval_metric"]])
    progress.step(1.0, f"boosting done after {trained} iterations; kept the best on the validation block, "
                       f"iteration {model.get_best_iteration() + 1}", log=True)
    return model


def kmeans_model(k: int) -> Any:
    """A fresh, seeded KMeans (k-means++, one initialisation)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=300, tol=1e-4, random_state=SEED)


@dataclass
class KSearch:
    """Scores of every K tried and the chosen model."""

    scores: dict[int, dict[str, Any]] = field(default_factory=dict)
    best: int | None = None
    model: Any = None


def k_search(x_train: np.ndarray, x_validation: np.ndarray, ks: list[int], progress: Progress,
             fit: Callable[[int], Any] | None = None) -> KSearch:
    """Fit KMeans for each K on the train block, score it on the validation block, keep the best silhouette.

    A stop request is honoured between two K (raises Stopped).
    """
    fit = fit or (lambda k: kmeans_model(k).fit(x_train))
    search = KSearch()
    rng = np.random.default_rng(SEED)
    x_scored = x_validation[np.sort(rng.choice(len(x_validation), min(len(x_validation), SCORE_ROWS), replace=False))]
    for index, k in enumerate(ks):
        progress.check()
        model = fit(k)
        labels, _ = nearest_centre(x_scored, np.asarray(model.cluster_centers_, dtype=np.float32))
        scores = clustering_metrics(x_scored, labels, sample_size=SILHOUETTE_SAMPLE, seed=SEED)
        scores["Inertia"] = float(model.inertia_)
        search.scores[k] = scores
        if best_k(search.scores) == k:
            search.best, search.model = k, model
        silhouette = scores["Silhouette"]
        progress.step((index + 1) / len(ks),
                      f"K={k}: silhouette {_fmt(silhouette)}, Calinski-Harabasz {_fmt(scores['CalinskiHarabasz'])}, "
                      f"Davies-Bouldin {_fmt(scores['DaviesBouldin'])}, inertia {model.inertia_:.4g}; "
                      f"best so far K={search.best}", log=True)
    return search


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
