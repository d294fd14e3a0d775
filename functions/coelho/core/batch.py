"""Batch features: the use case's one feature definition, applied to many events, as model columns.

There is one feature definition per use case (`UseCase.formulas`, see `coelho.core.formulas`): the online
models and batch prediction evaluate it event by event (`UseCase.features`), batch training over whole
columns of a Delta table's rows (`EventColumns`), so they cannot drift apart. This module only lays its
output out in columns: strings are categorical (CatBoost takes them natively, no rank codes), everything
else numeric. A missing categorical value is filled with `MISSING` explicitly (CatBoost refuses None).

Examples
--------
>>> from coelho.core import USE_CASES
>>> columns = feature_columns(USE_CASES["tfd"])
>>> columns.categorical
('currency', 'product_category', 'transaction_type', 'payment_method', 'os', 'browser')
>>> columns.names[:3]
('log_amount', 'account_age_days', 'new_account')
>>> feature_rows(USE_CASES["tfd"], [EXAMPLES["tfd"]])[0][-6:]
['USD', 'electronics', 'purchase', 'credit_card', 'iOS', 'Safari']
>>> BATCH_SPECS["eta"].model, BATCH_SPECS["eta"].gap_seconds, BATCH_SPECS["eta"].label_delay_seconds
('regressor', 600.0, 'simulated_actual_travel_time_seconds')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from coelho.core import ecci, eta, tfd
from coelho.core.formulas import COLUMNS, SCALAR
from coelho.core.table import EventColumns, layout_for
from coelho.core.usecase import UseCase

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BATCH_SPECS", "EXAMPLES", "MISSING", "BatchSpec", "Encoder", "FeatureBuilder", "FeatureColumns",
    "feature_columns", "feature_frame", "feature_inputs", "feature_rows", "labels",
]

#: One schema-valid event per use case (also the MLflow input examples).
EXAMPLES: dict[str, dict[str, Any]] = {"tfd": tfd.EXAMPLE, "eta": eta.EXAMPLE, "ecci": ecci.EXAMPLE}

#: The value of a categorical feature that is None.
MISSING = "__missing__"

ModelKind = Literal["classifier", "regressor", "kmeans"]


@dataclass(frozen=True)
class BatchSpec:
    """What batch training does for a use case: the model family, the default gap between blocks, and the
    column saying how long after its event a row's label becomes known (None: with the event).

    The synthetic TFD label comes with the transaction (in production chargebacks take days: raise the gap);
    ECCI has no label, the gap separates sessions; an ETA label, the actual travel time, is known when the trip
    ends — hours later for long trips — so rows whose trip had not ended when the next block starts are purged.
    """

    model: ModelKind
    gap_seconds: float
    label_delay_seconds: str | None = None


BATCH_SPECS: dict[str, BatchSpec] = {
    "tfd": BatchSpec("classifier", 600.0),
    "eta": BatchSpec("regressor", 600.0, label_delay_seconds="simulated_actual_travel_time_seconds"),
    "ecci": BatchSpec("kmeans", 600.0),
}


@dataclass(frozen=True)
class FeatureColumns:
    """The feature names in the order `features()` returns them, and which of them are categorical."""

    names: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(name for name in self.names if name not in self.categorical)

    @property
    def categorical_indices(self) -> tuple[int, ...]:
        """Positions of the categorical columns (a tuple: `sklearn.base.clone` refuses a list, catboost#3078)."""
        return tuple(self.names.index(name) for name in self.categorical)


def feature_columns(use_case: UseCase) -> FeatureColumns:
    """The columns of `use_case`'s features, read off its example event (strings are categorical)."""
    if use_case.key not in _COLUMNS:
        example = use_case.features(EXAMPLES[use_case.key])
        categorical = tuple(name for name, value in example.items() if isinstance(value, str))
        _COLUMNS[use_case.key] = FeatureColumns(tuple(example), categorical)
    return _COLUMNS[use_case.key]


_COLUMNS: dict[str, FeatureColumns] = {}


def feature_inputs(use_case: UseCase) -> tuple[str, ...]:
    """The table columns `use_case`'s formulas read, in the order they read them (the formulas run once on the
    example event, over a mapping that records what is asked of it; they read every input unconditionally).

    >>> from coelho.core import USE_CASES
    >>> feature_inputs(USE_CASES["eta"])[:4]
    ('timestamp', 'origin_lon', 'estimated_distance_km', 'weather')
    """
    from datetime import UTC, datetime

    row = layout_for(use_case).row(EXAMPLES[use_case.key], ce_id="", ce_source="", ingested_at=datetime.now(UTC))
    recording = _Recording(row)
    use_case.formulas(EventColumns(use_case, 1, recording, list).view(), SCALAR)
    return tuple(dict.fromkeys(recording.read))


class _Recording(dict[str, Any]):
    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.read: list[str] = []

    def __getitem__(self, name: str) -> Any:
        self.read.append(name)
        return super().__getitem__(name)


def feature_rows(use_case: UseCase, events: Iterable[Mapping[str, Any]]) -> list[list[Any]]:
    """One list of feature values per event, in `feature_columns` order (the serving path: no pandas)."""
    columns = feature_columns(use_case)
    categorical = frozenset(columns.categorical)
    rows = []
    for event in events:
        x = use_case.features(event)
        rows.append([_categorical(x[n]) if n in categorical else float(x[n]) for n in columns.names])
    return rows


def feature_frame(use_case: UseCase, events: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The features of `events` as a DataFrame: float64 numerics, pandas Categorical strings (the training path).

    >>> from coelho.core import USE_CASES
    >>> frame = feature_frame(USE_CASES["ecci"], [EXAMPLES["ecci"]])
    >>> str(frame["referrer_url"].dtype), frame["price"].tolist()
    ('category', [59.99])
    """
    return FeatureBuilder(use_case).add(events).frame()


class FeatureBuilder:
    """Builds the feature DataFrame of many events chunk by chunk, so that memory stays columnar.

    A chunk is a list of events (features event by event) or an `EventColumns` (the formulas over its
    columns, in one pass: the training path); both give the same frame.

    >>> from coelho.core import USE_CASES
    >>> builder = FeatureBuilder(USE_CASES["tfd"]).add([EXAMPLES["tfd"]]).add([{**EXAMPLES["tfd"], "currency": "EUR"}])
    >>> frame = builder.frame()
    >>> len(frame), frame["currency"].tolist(), sorted(frame["currency"].cat.categories)
    (2, ['USD', 'EUR'], ['EUR', 'USD'])
    """

    def __init__(self, use_case: UseCase) -> None:
        self.use_case = use_case
        self.columns = feature_columns(use_case)
        self.chunks: dict[str, list[Any]] = {name: [] for name in self.columns.names}

    def add(self, events: Iterable[Mapping[str, Any]] | EventColumns) -> FeatureBuilder:
        """Append the features of one chunk of events."""
        import numpy as np
        import pandas as pd

        if isinstance(events, EventColumns):
            computed = self.use_case.formulas(events.view(), COLUMNS)
            for name in self.columns.names:
                if name in self.columns.categorical:
                    self.chunks[name].append(pd.Categorical(_categorical_column(computed[name])))
                else:
                    values = np.broadcast_to(np.asarray(computed[name], np.float64), (len(events),))
                    self.chunks[name].append(values)
            return self
        rows = feature_rows(self.use_case, events)
        for index, name in enumerate(self.columns.names):
            values = [row[index] for row in rows]
            chunk = pd.Categorical(values) if name in self.columns.categorical else np.asarray(values, np.float64)
            self.chunks[name].append(chunk)
        return self

    def frame(self) -> pd.DataFrame:
        """Every chunk so far, one column per feature."""
        import numpy as np
        import pandas as pd
        from pandas.api.types import union_categoricals

        data: dict[str, Any] = {}
        for name, chunks in self.chunks.items():
            if name in self.columns.categorical:
                data[name] = union_categoricals(chunks) if chunks else pd.Categorical([])
            else:
                data[name] = np.concatenate(chunks) if chunks else np.empty(0)
        return pd.DataFrame(data, columns=list(self.columns.names))


class Encoder:
    """The numeric space KMeans clusters in: standardised numerics, one-hot categoricals.

    Fitted on the train block: each numeric column's mean and standard deviation, and each categorical
    column's `max_levels` most frequent values (every other value, also one never seen, goes to a last
    "other" column). Training, evaluation and serving all call `transform`, so they share one space; the
    parameters are plain JSON.

    >>> import pandas as pd
    >>> columns = FeatureColumns(("price", "device"), ("device",))
    >>> frame = pd.DataFrame({"price": [1.0, 3.0, 5.0], "device": ["a", "b", "a"]})
    >>> encoder = Encoder.fit(columns, frame, max_levels=1)
    >>> encoder.output_names()
    ['price', 'device=a', 'device=other']
    >>> encoder.transform({"price": [3.0, 7.0], "device": ["a", "z"]}).tolist()
    [[0.0, 1.0, 0.0], [2.449..., 0.0, 1.0]]
    >>> Encoder.from_json(encoder.to_json()) == encoder
    True
    """

    def __init__(self, columns: FeatureColumns, means: dict[str, float], scales: dict[str, float],
                 levels: dict[str, list[str]]) -> None:
        self.columns = columns
        self.means = means
        self.scales = scales
        self.levels = levels
        self._positions = {name: {level: i for i, level in enumerate(kept)} for name, kept in levels.items()}

    @classmethod
    def fit(cls, columns: FeatureColumns, frame: Any, max_levels: int = 8) -> Encoder:
        """Learn the scaling and the kept levels from `frame` (the train block's features)."""
        import numpy as np

        means, scales, levels = {}, {}, {}
        for name in columns.numeric:
            values = np.asarray(frame[name], dtype=np.float64)
            means[name] = float(values.mean()) if len(values) else 0.0
            std = float(values.std()) if len(values) else 0.0
            scales[name] = std if std > 0 else 1.0
        for name in columns.categorical:
            ranked = sorted(_text_counts(frame[name]).items(), key=lambda item: (-item[1], item[0]))
            levels[name] = [value for value, _ in ranked[:max_levels]]
        return cls(columns, means, scales, levels)

    def output_names(self) -> list[str]:
        names = list(self.columns.numeric)
        for name in self.columns.categorical:
            names += [f"{name}={level}" for level in self.levels[name]] + [f"{name}=other"]
        return names

    def transform(self, data: Mapping[str, Any]) -> Any:
        """The float32 matrix of `data` (a DataFrame or column name → values); one row costs microseconds."""
        import numpy as np

        numeric, categorical = self.columns.numeric, self.columns.categorical
        n = len(data[self.columns.names[0]])
        out = np.zeros((n, len(numeric) + sum(len(self.levels[name]) + 1 for name in categorical)), np.float32)
        for i, name in enumerate(numeric):
            out[:, i] = (np.asarray(data[name], dtype=np.float64) - self.means[name]) / self.scales[name]
        offset, rows = len(numeric), np.arange(n)
        for name in categorical:
            out[rows, offset + self._codes(name, data[name])] = 1.0
            offset += len(self._positions[name]) + 1
        return out

    def _codes(self, name: str, values: Any) -> Any:
        """Each value's column among `name`'s kept levels (`other` last): `str(value)` looked up once per row, or
        once per category for a pandas categorical column (the training frames), where a missing value is NaN.

        >>> import pandas as pd
        >>> encoder = Encoder(FeatureColumns(("device",), ("device",)), {}, {}, {"device": ["b", "nan"]})
        >>> column = pd.Series(pd.Categorical(["a", "b", None, "b"]))
        >>> encoder._codes("device", column).tolist(), encoder._codes("device", list(column)).tolist()
        ([2, 0, 1, 0], [2, 0, 1, 0])
        """
        import numpy as np

        positions = self._positions[name]
        other = len(positions)
        categories = getattr(getattr(values, "cat", None), "categories", None)
        if categories is None:
            return np.fromiter((positions.get(str(value), other) for value in values), np.int64, count=len(values))
        # the category codes index a lookup whose last entry serves code -1 (a missing value: NaN, "nan" as text)
        lookup = np.array([positions.get(str(c), other) for c in categories] + [positions.get("nan", other)], np.int64)
        return lookup[np.asarray(values.cat.codes, dtype=np.int64)]

    def to_json(self) -> dict[str, Any]:
        return {"names": list(self.columns.names), "categorical": list(self.columns.categorical),
                "means": self.means, "scales": self.scales, "levels": self.levels}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Encoder:
        columns = FeatureColumns(tuple(data["names"]), tuple(data["categorical"]))
        return cls(columns, dict(data["means"]), dict(data["scales"]), {k: list(v) for k, v in data["levels"].items()})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Encoder) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]


def labels(use_case: UseCase, events: Iterable[Mapping[str, Any]]) -> list[float]:
    """The label of each event (supervised use cases only)."""
    if use_case.label_field is None:
        raise ValueError(f"{use_case.key} has no label")
    return [float(event[use_case.label_field]) for event in events]


def _text_counts(column: Any) -> dict[str, int]:
    """How often each value of a pandas column occurs, by its text (`str(value)`; a missing value is "nan");
    a categorical column is counted by its codes, never turned into strings row by row.

    >>> import pandas as pd
    >>> _text_counts(pd.Series(pd.Categorical(["a", None, "a"], categories=["a", "b"])))
    {'a': 2, 'nan': 1}
    >>> _text_counts(pd.Series([1, 2, 1]))
    {'1': 2, '2': 1}
    """
    if getattr(column, "cat", None) is None:
        return {str(k): int(v) for k, v in column.astype(str).value_counts(sort=False).items()}
    counts: dict[str, int] = {}
    for value, count in column.value_counts(sort=False, dropna=False).items():
        if count:
            counts[str(value)] = counts.get(str(value), 0) + int(count)
    return counts


def _categorical(value: Any) -> str:
    return MISSING if value is None else str(value)


def _categorical_column(values: Any) -> Any:
    """A column of strings with `MISSING` for None (`_categorical` over a column of strings)."""
    import numpy as np

    column = np.asarray(values)
    if column.dtype.kind != "O":
        return column.astype(str)
    return np.where(np.equal(column, None), MISSING, column)
