"""Follow one Delta table: its committed version, cheaply, and its rows at that version.

Rows come from the Delta log's list of live files (`DeltaTable.to_pyarrow_dataset()`), never from a glob
of the folder's parquet files, which would also read files a delete or an overwrite removed.

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
"""

from __future__ import annotations

import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

__all__ = ["DeltaSnapshot"]


class DeltaSnapshot:
    """A Delta table followed by version; not thread-safe (callers serialize)."""

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None) -> None:
        self.uri = uri
        self._storage_options = storage_options
        self._table: DeltaTable | None = None

    def version(self) -> int | None:
        """The latest committed version (None while no table exists); reads only the new log entries."""
        if self._table is None:
            try:
                self._table = DeltaTable(self.uri, storage_options=self._storage_options)
            except TableNotFoundError:
                return None
        else:
            self._table.update_incremental()
        return self._table.version()

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
