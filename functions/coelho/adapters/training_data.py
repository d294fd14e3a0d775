"""Training rows: one committed version of a use case's Delta table, selected, sorted by event time.

The table is read with `DeltaSnapshot`, the reader the `sql` function uses: the Delta log's live files at
one version, never a glob of the folder's parquet files. Rows are filtered by event time (`since` ≤ t <
`until`, pushed down to the parquet scan), sorted by (event_time, ce_source, ce_id) so that everything after
is deterministic, sampled with a fixed seed (`sample_frac`), and cut to the newest `max_rows`; training reads
only the columns it uses (`columns`: the features' inputs, id, label). The rows go,
chunk by chunk, to the use case's one feature definition as columns (`chunks`: `EventColumns`, a column
converted to numpy only when a formula reads it), or turn back into the raw events the producers sent
(`events`, `coelho.core.table.events_from_columns`) where a model wants events one by one.

>>> import tempfile
>>> from pathlib import Path
>>> from datetime import UTC, datetime
>>> from deltalake import write_deltalake
>>> from coelho.core import USE_CASES, tfd
>>> from coelho.core.table import layout_for
>>> from coelho.core.train_request import TrainRequest
>>> settings = Settings(data_dir=Path(tempfile.mkdtemp()))
>>> layout = layout_for(USE_CASES["tfd"])
>>> events = [{**tfd.EXAMPLE, "transaction_id": f"t{i}", "timestamp": f"2026-03-02T10:00:0{i}+00:00"} for i in range(5)]
>>> rows = [layout.row(e, ce_id=e["transaction_id"], ce_source="/s", ingested_at=datetime.now(UTC)) for e in events]
>>> write_deltalake(settings.delta_uri("tfd"), pa.Table.from_pylist(rows, schema=arrow_schema(layout)))
>>> data = read_rows(settings, USE_CASES["tfd"], TrainRequest("tfd", since="2026-03-02T10:00:01Z", max_rows=3))
>>> data.version, data.rows, [e["transaction_id"] for chunk in data.events(range(data.rows)) for e in chunk]
(0, 3, ['t2', 't3', 't4'])
>>> next(data.events([0]))[0] == events[2], data.column("transaction_id", [2, 0])
(True, ['t4', 't2'])
>>> chunk = next(data.chunks([1, 2]))
>>> chunk.view()["device_info"]["os"].tolist(), list(chunk) == events[3:]
(['iOS', 'iOS'], True)

Read with only some columns, the rows still give their complete events (the rest read again for those rows):

>>> some = read_rows(settings, USE_CASES["tfd"], TrainRequest("tfd"), columns=["amount"])
>>> some.table.column_names, next(some.events([4, 1])) == [events[4], events[1]]
(['amount', 'ce_id', 'ce_source', 'event_time'], True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from coelho.adapters.delta_snapshot import DeltaSnapshot
from coelho.adapters.delta_store import arrow_schema, storage_options
from coelho.config import Settings
from coelho.core.table import METADATA, EventColumns, events_from_columns, layout_for
from coelho.core.train_request import TrainRequest
from coelho.core.usecase import UseCase

__all__ = ["CHUNK_ROWS", "DIGEST_ROWS", "NoTrainingData", "SAMPLE_SEED", "TrainingRows", "read_rows"]

#: Rows turned into events (and features) at a time: bounds the memory of Python objects.
CHUNK_ROWS = 50_000
#: Rows whose digest lines Arrow builds at a time (about 40 bytes a row).
DIGEST_ROWS = 200_000
#: Seed of `sample_frac`'s row sample (the same request on the same version selects the same rows).
SAMPLE_SEED = 42
SORT_KEYS = [("event_time", "ascending"), ("ce_source", "ascending"), ("ce_id", "ascending")]

class NoTrainingData(LookupError):
    """The use case has no Delta table, or none of its rows match the request."""


@dataclass
class TrainingRows:
    """The selected rows of one Delta table version, sorted by event time."""

    use_case: UseCase
    uri: str
    version: int
    table: pa.Table
    #: The table version's rows with every column (to complete events when `table` holds only some columns).
    dataset: ds.Dataset | None = None

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def times_us(self) -> np.ndarray:
        """Event time of each row, microseconds since the epoch."""
        return self.table.column("event_time").cast(pa.int64()).to_numpy()

    def column(self, name: str, indices: Sequence[int] | None = None) -> list[Any]:
        """Values of one column (at the row positions `indices`, default all)."""
        values = self.table.column(name)
        return (values if indices is None else values.take(pa.array(indices, pa.int64()))).to_pylist()

    def digest(self, indices: Sequence[int] | None = None) -> str:
        """SHA-256 of the rows' ids and event times, one line `<ce_source> <ce_id> <event time in µs>` per row:
        names exactly which rows a block holds. Arrow builds the lines, `DIGEST_ROWS` at a time.

        >>> from coelho.core import USE_CASES
        >>> rows = TrainingRows(USE_CASES["tfd"], "uri", 0, pa.table({
        ...     "ce_source": ["/s", "/s"], "ce_id": ["a", "b"],
        ...     "event_time": pa.array([1_000_000, 2_000_001], pa.timestamp("us", tz="UTC"))}))
        >>> rows.digest([1]) == hashlib.sha256(b"/s b 2000001\\n").hexdigest()
        True
        >>> rows.digest() == hashlib.sha256(b"/s a 1000000\\n/s b 2000001\\n").hexdigest()
        True
        """
        table = self.table.select(["ce_source", "ce_id", "event_time"])
        if indices is not None:
            table = table.take(pa.array(np.asarray(indices, dtype=np.int64)))
        digest = hashlib.sha256()
        for batch in table.to_batches(max_chunksize=DIGEST_ROWS):
            times = batch.column("event_time").cast(pa.int64()).cast(pa.string())
            lines = pc.binary_join_element_wise(batch.column("ce_source"), " ", batch.column("ce_id"), " ", times,
                                                "\n", "")
            offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=4 * lines.offset)
            digest.update(memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]])
        return digest.hexdigest()

    def values(self, name: str, indices: Sequence[int]) -> np.ndarray:
        """One column at the row positions `indices` as a numpy array (nulls: NaN or None)."""
        return self.table.column(name).take(pa.array(indices, pa.int64())).to_numpy(zero_copy_only=False)

    def events(self, indices: Sequence[int], chunk_rows: int = CHUNK_ROWS) -> Iterator[list[dict[str, Any]]]:
        """The raw events of the rows at positions `indices`, `chunk_rows` at a time."""
        for chunk in self._slices(indices, chunk_rows):
            yield self._events(chunk)

    def chunks(self, indices: Sequence[int], chunk_rows: int = CHUNK_ROWS) -> Iterator[EventColumns]:
        """The rows at positions `indices` column-wise, `chunk_rows` at a time (iterating one gives its events)."""
        for chunk in self._slices(indices, chunk_rows):
            yield EventColumns(self.use_case, chunk.num_rows, _ArrowColumns(chunk), lambda c=chunk: self._events(c))

    def _slices(self, indices: Sequence[int], chunk_rows: int) -> Iterator[pa.Table]:
        positions = np.asarray(indices, dtype=np.int64)
        for first in range(0, len(positions), chunk_rows):
            yield self.table.take(pa.array(positions[first : first + chunk_rows]))

    def _events(self, chunk: pa.Table) -> list[dict[str, Any]]:
        """The complete events of a chunk's rows: the columns the table lacks are read again for exactly those rows
        (same version; matched on the dedup key `(ce_source, ce_id)` within the chunk's time range)."""
        payload = [c.name for c in layout_for(self.use_case).columns[: -len(METADATA)]]
        missing = [name for name in payload if name not in chunk.column_names]
        columns = {name: chunk.column(name).to_pylist() for name in payload if name in chunk.column_names}
        if missing and self.dataset is not None and chunk.num_rows:
            times = chunk.column("event_time")
            found = self.dataset.to_table(columns=[*missing, "ce_source", "ce_id"], filter=(
                (pc.field("event_time") >= pc.min(times)) & (pc.field("event_time") <= pc.max(times))
                & pc.field("ce_id").isin(chunk.column("ce_id").combine_chunks())))
            where = {key: i for i, key in enumerate(zip(found.column("ce_source").to_pylist(),
                                                        found.column("ce_id").to_pylist(), strict=True))}
            rows = [where[key] for key in zip(chunk.column("ce_source").to_pylist(), chunk.column("ce_id").to_pylist(),
                                              strict=True)]
            found = found.take(pa.array(rows, pa.int64()))
            columns.update({name: found.column(name).to_pylist() for name in missing})
        return events_from_columns(self.use_case, columns)


class _ArrowColumns(Mapping[str, Any]):
    """The columns of an Arrow table as numpy arrays, each converted on first use; `timestamp` is the rows'
    `event_time` in microseconds since the epoch (the instant the payload's ISO text names)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self._converted: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._converted:
            if name == "timestamp":
                values = self._table.column("event_time").cast(pa.int64()).to_numpy()
            else:
                values = self._table.column(name).to_numpy(zero_copy_only=False)
            self._converted[name] = values
        return self._converted[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.column_names)

    def __len__(self) -> int:
        return self._table.num_columns


def read_rows(settings: Settings, use_case: UseCase, request: TrainRequest, version: int | None = None,
              columns: Sequence[str] | None = None) -> TrainingRows:
    """The rows `request` selects from `use_case`'s Delta table at `version` (default: the latest)."""
    uri = settings.delta_uri(use_case.key)
    snapshot = DeltaSnapshot(uri, storage_options(settings))
    latest = snapshot.version()
    if latest is None:
        raise NoTrainingData(f"no Delta table at {uri}: write {use_case.key} events first "
                             f"(`coelho produce {use_case.key} --delta`, or the delta-sink function)")
    if version is not None and version != latest:
        if version > latest:
            raise NoTrainingData(f"{uri} has no version {version} (latest {latest})")
        snapshot.pin(version)
    wanted = None if columns is None else sorted(set(columns) | {name for name, _ in SORT_KEYS})
    dataset = snapshot.dataset()
    table = dataset.to_table(columns=wanted, filter=_time_filter(request))
    if table.num_rows:
        table = table.take(pc.sort_indices(table, sort_keys=SORT_KEYS))
    if request.sample_frac is not None and request.sample_frac < 1:
        keep = np.random.default_rng(SAMPLE_SEED).random(table.num_rows) < request.sample_frac
        table = table.filter(pa.array(keep))
    if request.max_rows is not None and table.num_rows > request.max_rows:
        table = table.slice(table.num_rows - request.max_rows)
    schema = arrow_schema(layout_for(use_case))
    return TrainingRows(use_case, uri, version if version is not None else latest,
                        table.cast(pa.schema([schema.field(name) for name in table.column_names])), dataset)


def _time_filter(request: TrainRequest) -> pc.Expression | None:
    bounds = []
    if (since := request.since_utc()) is not None:
        bounds.append(pc.field("event_time") >= pa.scalar(since, pa.timestamp("us", tz="UTC")))
    if (until := request.until_utc()) is not None:
        bounds.append(pc.field("event_time") < pa.scalar(until, pa.timestamp("us", tz="UTC")))
    if not bounds:
        return None
    return bounds[0] if len(bounds) == 1 else bounds[0] & bounds[1]
