"""Event forms built from the schemas (kinds, ranges, choices), filled with realistic events by the producers.

`EventForm` lays out one use case's fields in the groups of `usecases.VIEWS`, with units and valid ranges as
hints; `values()` builds the event the predict functions take; `randomise()` draws the next event of the use
case's producer (the very generator `coelho produce` streams); `show_problems()` puts a function's 422
problems on their fields. For ETA, editing a coordinate recomputes the straight-line distance and the initial
estimate at 40 km/h, as the producer does.

Examples
--------
>>> from coelho.core import eta
>>> event = nested({"origin.lat": 29.7, "origin.lon": -95.3, "weather": "Rain"})
>>> event
{'origin': {'lat': 29.7, 'lon': -95.3}, 'weather': 'Rain'}
>>> flat(event)
{'origin.lat': 29.7, 'origin.lon': -95.3, 'weather': 'Rain'}
>>> hint(schema_field(eta.USE_CASE, "driver_rating"))
'1 to 5'
>>> coerce(schema_field(eta.USE_CASE, "hour_of_day"), 7.0), coerce(schema_field(eta.USE_CASE, "weather"), "")
(7, None)
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from coelho.core.schema import Field
from coelho.producers.base import EventGenerator
from coelho.producers.eta import AVERAGE_SPEED_KMH
from coelho.producers.geography import haversine_km
from coelho.producers.run import make_generator
from coelho_ui import fmt
from coelho_ui.usecases import VIEWS, FieldView, schema_field
from coelho_ui.widgets import tagged

__all__ = ["EventForm", "coerce", "flat", "hint", "nested", "random_event"]

#: The select option standing for a null value.
NONE = ""

_generators: dict[str, EventGenerator] = {}


def random_event(use_case: str) -> dict[str, Any]:
    """The next event of the use case's producer (one generator per process, randomly seeded, starting now)."""
    if use_case not in _generators:
        _generators[use_case] = make_generator(use_case, seed=secrets.randbits(32), start=datetime.now(UTC))
    return next(_generators[use_case])


def nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths → a nested event."""
    event: dict[str, Any] = {}
    for path, value in values.items():
        *parents, leaf = path.split(".")
        node = event
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return event


def flat(event: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested event → dotted paths."""
    out: dict[str, Any] = {}
    for name, value in event.items():
        if isinstance(value, Mapping):
            out.update(flat(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = value
    return out


def hint(spec: Field) -> str:
    """The valid range of a numeric field, as a hint."""
    low, high = spec.minimum, spec.maximum
    if low is None and high is None:
        return ""
    if high is None:
        return f"at least {fmt.number(low)}"
    if low is None:
        return f"at most {fmt.number(high)}"
    return f"{fmt.number(low)} to {fmt.number(high)}"


def coerce(spec: Field, raw: Any) -> Any:
    """A form value as the schema's kind (numbers from number inputs, the empty choice as null)."""
    if raw is None or (spec.choices is not None and raw == NONE):
        return None
    if spec.kind == "int" and isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if spec.kind == "float" and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    return raw


class EventForm:
    """The grouped form of one use case's event (label left out: the model predicts it)."""

    def __init__(self, use_case: str) -> None:
        self.view = VIEWS[use_case]
        self.inputs: dict[str, Any] = {}
        self.specs: dict[str, Field] = {}
        self._filling = False
        with ui.column().classes("w-full gap-2"):
            for group in self.view.groups:
                with ui.expansion(group.title, value=True).classes("w-full").props("dense header-class=text-bold"):
                    with ui.grid(columns=2).classes("w-full gap-x-4 gap-y-1"):
                        for field in group.fields:
                            self._add(field)

    def _add(self, field: FieldView) -> None:
        spec = schema_field(self.view.use_case, field.path)
        label = f"{field.label} ({field.unit})" if field.unit else field.label
        element: Any
        if spec.choices is not None:
            options = {NONE: "(none)"} if spec.nullable else {}
            options |= {choice: str(choice) for choice in spec.choices}
            element = ui.select(options, label=label, value=NONE if spec.nullable else spec.choices[0])
        elif spec.kind == "bool":
            element = ui.checkbox(label, value=True)
        elif spec.kind in ("int", "float"):
            element = ui.number(label, min=spec.minimum, max=spec.maximum, precision=0 if spec.kind == "int" else None,
                                step=1 if spec.kind == "int" else None)
            element.props["hint"] = hint(spec) + (" (optional)" if spec.nullable else "")
        else:
            element = ui.input(label)
            if spec.nullable:
                element.props["hint"] = "optional"
        element.props["dense"] = True
        tagged(element, f"field-{field.path}")
        if self.view.key == "eta" and field.path.startswith(("origin.", "destination.")):
            element.on_value_change(self._route_changed)
        self.inputs[field.path] = element
        self.specs[field.path] = spec

    def values(self) -> dict[str, Any]:
        """The event as the function takes it (an empty optional text is null)."""
        out = {}
        for path, element in self.inputs.items():
            spec, value = self.specs[path], element.value
            if isinstance(value, str) and spec.choices is None:
                value = value.strip() or (None if spec.nullable else "")
            out[path] = coerce(spec, value)
        return nested(out)

    def fill(self, event: Mapping[str, Any]) -> None:
        """Show `event`'s values (fields it lacks keep theirs)."""
        self._filling = True
        try:
            for path, value in flat(event).items():
                if path in self.inputs:
                    self.inputs[path].value = NONE if value is None and self.specs[path].choices else value
        finally:
            self._filling = False
        self.clear_problems()

    def randomise(self) -> dict[str, Any]:
        """Fill with the next realistic event of the producer; returns it."""
        event = random_event(self.view.key)
        self.fill(event)
        return event

    def show_problems(self, problems: list[dict[str, Any]]) -> list[str]:
        """Mark each problem's field; returns the problems that name no field of the form."""
        self.clear_problems()
        unplaced = []
        for problem in problems:
            element = self.inputs.get(str(problem.get("field")))
            if element is None:
                unplaced.append(f"{problem.get('field')} {problem.get('message')}")
            else:
                element.props["error"] = True
                element.props["error-message"] = str(problem.get("message"))
        return unplaced

    def clear_problems(self) -> None:
        for element in self.inputs.values():
            element.props.pop("error", None)
            element.props.pop("error-message", None)

    def _route_changed(self) -> None:
        """ETA: a moved endpoint changes the straight-line distance and the initial estimate at 40 km/h."""
        if self._filling:
            return
        points = [self.inputs[p].value for p in ("origin.lat", "origin.lon", "destination.lat", "destination.lon")]
        if any(p is None for p in points):
            return
        distance = haversine_km(*points)
        self.inputs["estimated_distance_km"].value = round(distance, 2)
        self.inputs["initial_estimated_travel_time_seconds"].value = max(60, round(distance / AVERAGE_SPEED_KMH
                                                                                     * 3600))
