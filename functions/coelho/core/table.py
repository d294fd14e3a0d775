"""Delta table layout of a use case: flattened, typed columns derived from its event schema.

One row per event. Nested objects become `<object>_<member>` columns; the payload's `timestamp`
stays as sent (ISO text) and is also parsed into `event_time`. Metadata columns say where the row
came from, so that a row can be traced back to its CloudEvent and Kafka record.

Examples
--------
>>> from coelho.core import tfd
>>> layout = layout_for(tfd.USE_CASE)
>>> layout.table_name
'transaction_fraud_detection'
>>> [c.name for c in layout.columns if c.name.startswith("location")]
['location_lat', 'location_lon']
>>> layout.column("is_fraud")
Column(name='is_fraud', kind='int', nullable=False)
>>> [c.name for c in METADATA]
['event_time', 'ce_id', 'ce_source', 'kafka_partition', 'kafka_offset', 'ingested_at']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from coelho.core.schema import Field
from coelho.core.usecase import UseCase

__all__ = ["METADATA", "TABLE_NAMES", "Column", "EventColumns", "TableLayout", "events_from_columns", "layout_for"]

ColumnKind = Literal["str", "int", "float", "bool", "timestamp"]

#: Use-case key → the original system's Delta table name (also a SQL name).
TABLE_NAMES: dict[str, str] = {
    "tfd": "transaction_fraud_detection",
    "eta": "estimated_time_of_arrival",
    "ecci": "e_commerce_customer_interactions",
}


@dataclass(frozen=True)
class Column:
    """One typed column; `timestamp` means an instant in UTC (microseconds)."""

    name: str
    kind: ColumnKind
    nullable: bool


#: Columns every table carries after the payload columns.
METADATA: tuple[Column, ...] = (
    Column("event_time", "timestamp", False),   # the payload's `timestamp`, parsed
    Column("ce_id", "str", False),              # CloudEvent id (with ce_source: the dedup key)
    Column("ce_source", "str", False),
    Column("kafka_partition", "int", True),     # null when the row did not come through Kafka
    Column("kafka_offset", "int", True),
    Column("ingested_at", "timestamp", False),  # when the writer appended the row
)


@dataclass(frozen=True)
class TableLayout:
    """The columns of one use case's table, in order, and how to flatten an event into a row."""

    use_case: str
    table_name: str
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column:
        """The column called `name` (KeyError if none)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def row(
        self,
        payload: Mapping[str, Any],
        *,
        ce_id: str,
        ce_source: str,
        ingested_at: datetime,
        kafka_partition: int | None = None,
        kafka_offset: int | None = None,
    ) -> dict[str, Any]:
        """Flatten a schema-valid payload into a row: column name → Python value.

        >>> from coelho.core import ecci
        >>> from datetime import timezone
        >>> payload = {"timestamp": "2026-01-01T10:00:00+01:00", "device_info": {"os": "iOS"}, "price": None}
        >>> row = layout_for(ecci.USE_CASE).row(payload, ce_id="e1", ce_source="s",
        ...                                     ingested_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
        >>> row["device_info_os"], row["price"], row["event_time"].isoformat()
        ('iOS', None, '2026-01-01T09:00:00+00:00')
        """
        values: dict[str, Any] = {}
        _flatten(payload, "", values)
        row = {c.name: values.get(c.name) for c in self.columns[: len(self.columns) - len(METADATA)]}
        row.update(
            event_time=datetime.fromisoformat(payload["timestamp"]).astimezone(UTC),
            ce_id=ce_id,
            ce_source=ce_source,
            kafka_partition=kafka_partition,
            kafka_offset=kafka_offset,
            ingested_at=ingested_at,
        )
        return row


def layout_for(use_case: UseCase) -> TableLayout:
    """The table layout of `use_case`, derived from its schema (never written by hand)."""
    payload = tuple(_columns(use_case.schema.fields, "", parent_nullable=False))
    return TableLayout(use_case.key, TABLE_NAMES[use_case.key], payload + METADATA)


def _columns(fields: tuple[Field, ...], prefix: str, parent_nullable: bool) -> list[Column]:
    columns: list[Column] = []
    for spec in fields:
        nullable = parent_nullable or spec.nullable or not spec.required
        if spec.kind == "object":
            columns.extend(_columns(spec.fields, f"{prefix}{spec.name}_", nullable))
        else:
            kind: ColumnKind = "str" if spec.kind == "timestamp" else spec.kind
            columns.append(Column(prefix + spec.name, kind, nullable))
    return columns


def _flatten(payload: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for name, value in payload.items():
        if isinstance(value, Mapping):
            _flatten(value, f"{prefix}{name}_", out)
        else:
            out[prefix + name] = value


def events_from_columns(use_case: UseCase, columns: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """The payloads of a table's rows given column-wise (the inverse of `TableLayout.row`).

    A null in a field that is not required is dropped (as the producer would have left it out); a
    null in a nullable field stays null. Metadata columns are ignored, and so is a field whose column is
    not given (rows read with only some columns give events with only those fields).

    >>> from coelho.core import tfd
    >>> layout = layout_for(tfd.USE_CASE)
    >>> row = layout.row(tfd.EXAMPLE, ce_id="e", ce_source="s", ingested_at=datetime.now(UTC))
    >>> events_from_columns(tfd.USE_CASE, {name: [value] for name, value in row.items()}) == [tfd.EXAMPLE]
    True
    """
    plan = _unflatten_plan(use_case.schema.fields, "")
    count = len(next(iter(columns.values()))) if columns else 0
    return [_event_at(plan, columns, index) for index in range(count)]


_Plan = list[tuple[str, Any, bool]]  # (field name, column name or nested plan, keep nulls)


def _unflatten_plan(fields: tuple[Field, ...], prefix: str) -> _Plan:
    plan: _Plan = []
    for spec in fields:
        if spec.kind == "object":
            plan.append((spec.name, _unflatten_plan(spec.fields, f"{prefix}{spec.name}_"), True))
        else:
            plan.append((spec.name, prefix + spec.name, spec.required or spec.nullable))
    return plan


def _event_at(plan: _Plan, columns: Mapping[str, list[Any]], index: int) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for name, source, keep_null in plan:
        if isinstance(source, list):
            event[name] = _event_at(source, columns, index)
            continue
        if source not in columns:
            continue
        value = columns[source][index]
        if value is not None or keep_null:
            event[name] = value
    return event



@dataclass(frozen=True)
class EventColumns:
    """A chunk of a table's rows given column-wise: what a use case's `formulas` read in one pass.

    `columns` maps a table column name to an array of its values (the `timestamp` column: the rows'
    `event_time`, microseconds since the epoch; nulls as None, or NaN in a float array); it may convert a
    column only when asked for it. `events` makes the same rows as event dicts. Iterating the chunk gives those
    events, so it can stand wherever events are expected; `view()` is the payload-shaped mapping of columns
    the formulas take.

    >>> from coelho.core import ecci
    >>> chunk = EventColumns(ecci.USE_CASE, 2, {"location_lon": [1.0, 2.0], "price": [None, 3.0]}, lambda: [])
    >>> view = chunk.view()
    >>> view["location"]["lon"], view["price"], len(chunk), list(chunk)
    ([1.0, 2.0], [None, 3.0], 2, [])
    """

    use_case: UseCase
    count: int
    columns: Mapping[str, Any]
    events: Callable[[], list[dict[str, Any]]]

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.events())

    def view(self) -> Mapping[str, Any]:
        """The columns nested like the payload: `view()["location"]["lon"]` is the `location_lon` column."""
        return _NestedColumns(_unflatten_plan(self.use_case.schema.fields, ""), self.columns)


class _NestedColumns(Mapping[str, Any]):
    """A payload-shaped mapping over flat columns, reading a column only when a formula asks for it."""

    def __init__(self, plan: _Plan, columns: Mapping[str, Any]) -> None:
        self._plan = {name: source for name, source, _ in plan}
        self._columns = columns

    def __getitem__(self, name: str) -> Any:
        source = self._plan[name]
        return _NestedColumns(source, self._columns) if isinstance(source, list) else self._columns[source]

    def __iter__(self) -> Iterator[str]:
        return iter(self._plan)

    def __len__(self) -> int:
        return len(self._plan)
