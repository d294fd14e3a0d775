"""Pure domain core: event schemas, features, model presets and metric suites. No I/O here."""

from __future__ import annotations

from coelho.core import ecci, eta, tfd
from coelho.core.online import OnlineModel
from coelho.core.schema import Field, Problem, Schema, SchemaError
from coelho.core.usecase import ChampionRule, UseCase

__all__ = [
    "USE_CASES",
    "ChampionRule",
    "Field",
    "OnlineModel",
    "Problem",
    "Schema",
    "SchemaError",
    "UseCase",
    "use_case_for_type",
]

USE_CASES: dict[str, UseCase] = {uc.key: uc for uc in (tfd.USE_CASE, eta.USE_CASE, ecci.USE_CASE)}


def use_case_for_type(event_type: str) -> UseCase | None:
    """The use case whose CloudEvent type is `event_type`, if any."""
    return next((uc for uc in USE_CASES.values() if uc.event_type == event_type), None)
