"""Event schemas: declarative field specs and a validator that names every bad field.

Examples
--------
>>> schema = Schema("demo", (
...     Field("amount", "float", minimum=0),
...     Field("currency", "str", choices=("USD", "EUR")),
...     Field("location", "object", fields=(Field("lat", "float"),)),
... ))
>>> schema.validate({"amount": float("nan"), "currency": "XXX", "location": {}})
[Problem(field='amount', message='must be a finite number'),
 Problem(field='currency', message="must be one of ['EUR', 'USD']"),
 Problem(field='location.lat', message='is required')]
>>> schema.validate({"amount": 3, "currency": "USD", "location": {"lat": 1.5}})
[]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["Field", "Problem", "Schema", "SchemaError"]

Kind = Literal["str", "int", "float", "bool", "timestamp", "object"]


@dataclass(frozen=True)
class Problem:
    """One reason why a payload is invalid, tied to a dotted field path."""

    field: str
    message: str


class SchemaError(ValueError):
    """Raised with every problem of a payload at once."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Field:
    """A typed field; `fields` describes the members of an `object` field."""

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 512
    fields: tuple[Field, ...] = ()

    def check(self, value: Any, path: str) -> list[Problem]:
        """Problems of one present value (None handled by the caller)."""
        kind_problem = _kind_problem(self.kind, value)
        if kind_problem:
            return [Problem(path, kind_problem)]
        if self.kind == "object":
            return _check_members(self.fields, value, path + ".")
        if self.kind == "str" and len(value) > self.max_length:
            return [Problem(path, f"is longer than {self.max_length} characters")]
        if self.choices is not None and value not in self.choices:
            return [Problem(path, f"must be one of {sorted(self.choices)}")]
        if self.minimum is not None and value < self.minimum:
            return [Problem(path, f"must be >= {self.minimum}")]
        if self.maximum is not None and value > self.maximum:
            return [Problem(path, f"must be <= {self.maximum}")]
        return []


@dataclass(frozen=True)
class Schema:
    """An event payload schema. Unknown top-level fields are rejected, so typos surface."""

    name: str
    fields: tuple[Field, ...]
    names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(f.name for f in self.fields))

    def validate(self, payload: Any, *, optional: frozenset[str] = frozenset()) -> list[Problem]:
        """Every problem of `payload`; fields named in `optional` may be absent."""
        if not isinstance(payload, Mapping):
            return [Problem("$", f"must be a JSON object, got {type(payload).__name__}")]
        return _check_members(self.fields, payload, "", optional)

    def check(self, payload: Any, *, optional: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Return `payload` as a dict, or raise SchemaError naming each bad field."""
        problems = self.validate(payload, optional=optional)
        if problems:
            raise SchemaError(problems)
        return dict(payload)


def _check_members(
    fields: tuple[Field, ...],
    payload: Mapping[str, Any],
    prefix: str,
    optional: frozenset[str] = frozenset(),
) -> list[Problem]:
    problems: list[Problem] = []
    known = set()
    for spec in fields:
        known.add(spec.name)
        path = prefix + spec.name
        if spec.name not in payload:
            if spec.required and spec.name not in optional:
                problems.append(Problem(path, "is required"))
            continue
        value = payload[spec.name]
        if value is None:
            if not spec.nullable:
                problems.append(Problem(path, "must not be null"))
            continue
        problems.extend(spec.check(value, path))
    problems.extend(
        Problem(prefix + str(name), "is not a known field")
        for name in payload
        if name not in known
    )
    return problems


def _kind_problem(kind: Kind, value: Any) -> str | None:
    if kind == "bool":
        return None if isinstance(value, bool) else "must be a boolean"
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be an integer"
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        return None if math.isfinite(value) else "must be a finite number"
    if kind == "str":
        return None if isinstance(value, str) else "must be a string"
    if kind == "timestamp":
        return _timestamp_problem(value)
    return None if isinstance(value, Mapping) else "must be an object"


def _timestamp_problem(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 40:
        return "must be an ISO-8601 timestamp string"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return "must be an ISO-8601 timestamp string"
    return None if parsed.tzinfo is not None else "must carry a UTC offset"
