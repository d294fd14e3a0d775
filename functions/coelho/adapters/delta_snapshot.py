"""Follow one Delta table: its committed version, cheaply, and its rows at that version.

Rows come from the Delta log's list of live files (`DeltaTable.to_pyarrow_dataset()`), never from a glob
of the folder's parquet files, which would also read files a delete or an overwrite removed.

A follower that only ever reads new log entries (`update_incremental`) would hold a state built from every
commit since it started; after `reload_every` of them it loads the table afresh instead, from its latest
checkpoint (written every `COELHO_DELTA_CHECKPOINT_EVERY` commits), so what it holds does not grow with
the number of commits.

>>> import tempfile, pyarrow as pa
>>> from deltalake import write_deltalake
>>> uri = tempfile.mkdtemp() + "/t"
>>> snapshot = DeltaSnapshot(uri)
>>> snapshot.version() is None
True
>>> write_deltalake(uri, pa.table({"a": [1, 2]}))
>>> write_deltalake(uri, pa.table({"a": [3]}), mode="append")
>>> snapshot.version(), snapshot.dataset().count_rows()
(1, 3)
>>> snapshot.pin(0), snapshot.dataset().count_rows()
(0, 2)
>>> bounded = DeltaSnapshot(uri, reload_every=2)
>>> for _ in range(5):
...     write_deltalake(uri, pa.table({"a": [4]}), mode="append")
...     _ = bounded.version()
>>> bounded.version(), bounded.replayed, bounded.reloads, bounded.dataset().count_rows()
(6, 0, 2, 8)
"""

from __future__ import annotations

import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

__all__ = ["DeltaSnapshot"]


class DeltaSnapshot:
    """A Delta table followed by version; not thread-safe (callers serialize)."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None, reload_every: int = 100) -> None:
        self.uri = uri
        self.reload_every = reload_every
        self.reloads = 0  # full loads after the first
        self._storage_options = storage_options
        self._table: DeltaTable | None = None
        self._loaded_at = 0  # the version of the last full load

    @property
    def replayed(self) -> int:
        """Commits applied on top of the last full load (below `reload_every` after `version()` or `table()`)."""
        return 0 if self._table is None else self._table.version() - self._loaded_at

    def version(self) -> int | None:
        """The latest committed version (None while no table exists); reads only the new log entries, or
        the whole table again from its latest checkpoint once `reload_every` commits were replayed."""
        if self._table is None:
            try:
                self._load()
            except TableNotFoundError:
                return None
        else:
            self.table()
        assert self._table is not None
        return self._table.version()

    def table(self) -> DeltaTable:
        """The table at its latest version (writers append through it: `write_deltalake(snapshot.table(), …)`)."""
        if self._table is None:
            return self._load()
        self._table.update_incremental()
        if self.replayed >= self.reload_every:
            self.reloads += 1
            return self._load()
        return self._table

    def _load(self) -> DeltaTable:
        self._table = DeltaTable(self.uri, storage_options=self._storage_options)
        self._loaded_at = self._table.version()
        return self._table

    def dataset(self) -> ds.Dataset:
        """The rows at the version `version()` last returned."""
        if self._table is None:
            raise LookupError(f"no Delta table at {self.uri}")
        return self._table.to_pyarrow_dataset()

    def pin(self, version: int) -> int:
        """Go to committed `version` (an older one, to read exactly what an earlier look saw); returns it."""
        if self.version() is None:
            raise LookupError(f"no Delta table at {self.uri}")
        assert self._table is not None
        self._table.load_as_version(version)
        return self._table.version()
