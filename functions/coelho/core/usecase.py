"""What every use case declares: its event contract, features, model presets and metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from coelho.core.drift import DriftRule
from coelho.core.schema import Schema

__all__ = ["ChampionRule", "MetricSuite", "Task", "UseCase"]

Task = Literal["classification", "regression", "clustering"]
Features = dict[str, Any]


class MetricSuite(Protocol):
    """A prequential metric suite: fed after predict and before learn."""

    def update(self, event: Mapping[str, Any], x: Features, outcome: Mapping[str, Any]) -> None:
        """Account for one event given what the model said before learning it."""

    def report(self) -> dict[str, Any]:
        """Current values: scalars keyed by the original system's metric names, plus extras."""


@dataclass(frozen=True)
class ChampionRule:
    """The single metric that ranks models of a use case (used for the champion alias).

    `rolling` names the same metric computed over the last `window` events: models are ranked on
    it, so that scores of models that have seen different amounts of data stay comparable.
    """

    metric: str
    mode: Literal["max", "min"]
    rolling: str
    window: int = 1000

    def better(self, a: float, b: float) -> bool:
        """True when score `a` beats score `b`."""
        return a > b if self.mode == "max" else a < b


@dataclass(frozen=True)
class UseCase:
    """A complete, I/O-free description of one streaming ML use case."""

    key: str
    title: str
    task: Task
    event_type: str
    schema: Schema
    id_field: str
    partition_field: str
    label_field: str | None
    features: Callable[[Mapping[str, Any]], Features]
    #: The one feature definition `features` evaluates: `formulas(event, SCALAR)` for one event, `formulas(columns,
    #: COLUMNS)` for a chunk of events given column-wise (`coelho.core.formulas`).
    formulas: Callable[[Mapping[str, Any], Any], Features]
    presets: Mapping[str, Callable[[], Any]]
    make_metrics: Callable[[], MetricSuite]
    champion: ChampionRule
    drift: DriftRule

    @property
    def optional_for_predict(self) -> frozenset[str]:
        """Fields a predict request may omit: the label."""
        return frozenset({self.label_field}) if self.label_field else frozenset()

    def make_model(self, preset: str = "default") -> Any:
        """A fresh River model for `preset` ('default' or 'original')."""
        try:
            return self.presets[preset]()
        except KeyError:
            raise ValueError(f"{self.key}: unknown model preset {preset!r}") from None
