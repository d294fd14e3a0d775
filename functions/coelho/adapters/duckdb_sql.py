"""Read-only SQL over the use cases' Delta tables with one locked-down DuckDB database per process.

Each table is loaded into a native DuckDB table named after it (`TABLE_NAMES`) whenever its Delta
version changes (checked at most every `refresh_seconds`), so queries run at native speed and always
see one committed version. A table of more than `SqlLimits.load_max_rows` rows is not loaded: its native
table is emptied and every query's cursor scans the version's Delta files instead (Arrow dataset, with
projection and filter pushdown), so the memory the function holds does not grow with an endless stream.
A scan's buffers come from Arrow's memory pool, whose allocator keeps freed pages for reuse: after every
query and every load the pool gives them back (`release_unused`), or the process would keep the largest scan
it ever made (a `count(*)` reads every column: +150 MiB after a million rows) and grow with the table. The
function runs on Arrow's jemalloc pool (`use_releasing_memory_pool`), whose release purges every arena:
pyarrow's default, mimalloc, releases only the calling thread's heap, so the pages that Arrow's scan threads
freed stayed (a soak's sql worker stepped up 20 MiB in that pool alone and kept it).
What one scan holds is one Parquet row group at a time: the writers and the compaction write row groups of at
most `COELHO_DELTA_ROW_GROUP_ROWS` (`writer_properties`), or a compacted table is one row group as large as
the table, and so would the worker's memory be.

The database is configured once, before any query: no file, URL or extension access
(`enable_external_access=false`, no autoload), no Python replacement scans, a memory limit, a thread count, no
spilling, and then `lock_configuration=true`, after which no SET, RESET or PRAGMA can change anything.

A query is checked by DuckDB's own parser: exactly one statement, of type SELECT (CTEs, subqueries,
`FROM t` shorthand, DESCRIBE/SUMMARIZE/SHOW are SELECTs). It runs on its own cursor, where a temporary
view `data` names the request's use case; a timer interrupts it at the timeout; the row limit is a
LIMIT node on the parsed query's relation (never text pasted around the query). When the function stops,
`interrupt_all` interrupts the running queries, which answer 503 (to be retried elsewhere).

>>> import tempfile
>>> engine = SqlEngine({key: DeltaSnapshot(f"{tempfile.mkdtemp()}/{key}") for key in TABLE_NAMES}, SqlLimits())
>>> engine.query("tfd", "SELECT 1 AS one", 10)
Traceback (most recent call last):
...
coelho.adapters.duckdb_sql.SqlError: no data yet for tfd: no Delta table at ...
>>> try:
...     engine.query("tfd", "SELECT 1; DROP TABLE data", 10)
... except SqlError as exc:
...     exc.status, exc.kind, str(exc)
(400, 'validation', 'exactly one statement is allowed; got 2')
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from coelho.adapters.delta_snapshot import DeltaSnapshot
from coelho.adapters.delta_store import arrow_schema, storage_options
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.core.sql import SqlLimits, json_value
from coelho.core.table import TABLE_NAMES, layout_for

__all__ = ["QueryResult", "SqlEngine", "SqlError", "limits_from", "use_releasing_memory_pool"]

_BATCH_ROWS = 2048


class SqlError(Exception):
    """A refused or failed query: HTTP status, error kind (a metrics label) and a message saying why."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


#: How often, and how long, the stop repeats its interrupt while queries still run.
INTERRUPT_EVERY_S = 0.05
INTERRUPT_FOR_S = 10.0


def _stopping_error() -> SqlError:
    """A query refused or interrupted because the function stops (the sender retries elsewhere)."""
    return SqlError(503, "stopping", "the sql function is stopping: query interrupted; retry")


@dataclass(frozen=True)
class QueryResult:
    """Columns and JSON-ready rows; `truncated` when the query had more rows than returned."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


@dataclass
class _Loaded:
    """What one table holds right now."""

    version: int | None = None
    rows: int = 0
    scanned: ds.Dataset | None = None  # set when the version is scanned from its files instead of loaded
    checked: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)


class SqlEngine:
    """One DuckDB database serving the three tables; thread-safe (a cursor per request)."""

    def __init__(self, sources: Mapping[str, DeltaSnapshot], limits: SqlLimits, refresh_seconds: float = 1.0) -> None:
        self.limits = limits
        self.sources = dict(sources)
        self.refresh_seconds = refresh_seconds
        self._loaded = {key: _Loaded() for key in self.sources}
        self._running: set[duckdb.DuckDBPyConnection] = set()
        self._running_lock = threading.Lock()
        self.stopping = False
        self._db = duckdb.connect(":memory:", config={
            "python_enable_replacements": False,  # a query must never see the process's Python variables
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "temp_directory": "",  # nothing spills to disk: past the memory limit a query fails
            "memory_limit": limits.memory_limit,
            "threads": limits.threads,
        })
        self._db.execute("SET GLOBAL TimeZone = 'UTC'")  # instants come back as ISO text in UTC, whatever the host
        for key in self.sources:  # every name resolves from the start, empty until the table exists
            self._replace(key, arrow_schema(layout_for(USE_CASES[key])).empty_table())
        self._db.execute("SET enable_external_access = false")
        self._db.execute("SET lock_configuration = true")

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlEngine:
        """The engine over the tables at `settings.delta_uri(key)`, with the settings' limits."""
        options = storage_options(settings)
        sources = {key: DeltaSnapshot(settings.delta_uri(key), options, settings.delta_checkpoint_every)
                   for key in TABLE_NAMES}
        return cls(sources, limits_from(settings), settings.sql_refresh_ms / 1000)

    def query(self, use_case: str, text: str, limit: int) -> QueryResult:
        """Run one read-only SELECT against `data` (= the use case's table); at most `limit` rows."""
        cursor = self._db.cursor()
        with self._running_lock:
            if self.stopping:
                cursor.close()
                raise _stopping_error()
            self._running.add(cursor)
        try:
            select = _single_select(cursor, text)
            self._require_data(use_case)
            self._register_scanned(cursor)
            cursor.execute(f"CREATE TEMP VIEW data AS FROM main.{TABLE_NAMES[use_case]}")
            return self._run(cursor, select, limit)
        except duckdb.Error as exc:  # interrupted before the query itself started
            raise self._failure(exc) from None
        finally:
            with self._running_lock:
                self._running.discard(cursor)
            cursor.close()
            _release_scan_memory()

    def running(self) -> int:
        """How many queries run now."""
        with self._running_lock:
            return len(self._running)

    def interrupt_all(self) -> int:
        """The function stops: interrupt every running query (each answers 503) and refuse new ones; how many."""
        with self._running_lock:
            self.stopping = True
            running = list(self._running)
        for cursor in running:
            cursor.interrupt()
        if running:
            threading.Thread(target=self._interrupt_until_answered, name="sql-interrupt", daemon=True).start()
        return len(running)

    def _interrupt_until_answered(self) -> None:
        """An interrupt that lands between a query's statements finds nothing running, and the query then runs on:
        repeat it until every query has answered (at most `INTERRUPT_FOR_S`)."""
        deadline = time.monotonic() + INTERRUPT_FOR_S
        while time.monotonic() < deadline:
            time.sleep(INTERRUPT_EVERY_S)
            with self._running_lock:
                running = list(self._running)
            if not running:
                return
            for cursor in running:
                cursor.interrupt()

    def describe(self, use_case: str) -> list[dict[str, Any]]:
        """Name, DuckDB type and nullability (from the table layout) of every column of the use case's table."""
        self.refresh(use_case)
        nullable = {column.name: column.nullable for column in layout_for(USE_CASES[use_case]).columns}
        with self._cursor() as cursor:
            rows = cursor.execute(f"DESCRIBE main.{TABLE_NAMES[use_case]}").fetchall()
        return [{"name": name, "type": kind, "nullable": nullable.get(name, True)} for name, kind, *_ in rows]

    def count(self, use_case: str) -> tuple[int, int]:
        """Rows in the use case's table and the Delta version they come from."""
        version = self._require_data(use_case)
        with self._cursor() as cursor:
            [(rows,)] = cursor.execute(f"SELECT count(*) FROM main.{TABLE_NAMES[use_case]}").fetchall()
        return int(rows), version

    def refresh(self, use_case: str) -> int | None:
        """Reload the table if its Delta version changed and the last check is older than refresh_seconds.

        While one request reloads, the others keep reading the previous version.
        """
        loaded = self._loaded[use_case]
        if time.monotonic() - loaded.checked < self.refresh_seconds:
            return loaded.version
        if not loaded.lock.acquire(blocking=loaded.version is None):
            return loaded.version
        try:
            if time.monotonic() - loaded.checked >= self.refresh_seconds:
                source = self.sources[use_case]
                version = source.version()
                if version is not None and version != loaded.version:
                    self._load(use_case, source.dataset(), version)
                    _release_scan_memory()
                loaded.checked = time.monotonic()
            return loaded.version
        finally:
            loaded.lock.release()

    def _require_data(self, use_case: str) -> int:
        version = self.refresh(use_case)
        if version is None:
            uri = self.sources[use_case].uri
            raise SqlError(404, "no_data", f"no data yet for {use_case}: no Delta table at {uri}")
        return version

    def loaded(self) -> dict[str, dict[str, Any]]:
        """Per table: its version, rows, and whether queries read it from memory or scan its Delta files."""
        return {key: {"version": table.version, "rows": table.rows,
                      "read_from": "files" if table.scanned is not None else "memory"}
                for key, table in self._loaded.items()}

    def memory_bytes(self) -> int:
        """What DuckDB holds now: the loaded tables and the running queries."""
        with self._db.cursor() as cursor:
            [(used,)] = cursor.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()
        return int(used or 0)

    def _load(self, use_case: str, dataset: ds.Dataset, version: int) -> None:
        """Load `version` into memory, or, past `load_max_rows`, empty the native table and scan the files."""
        loaded = self._loaded[use_case]
        rows = dataset.count_rows()
        if rows <= self.limits.load_max_rows:
            self._replace(use_case, dataset)
            loaded.scanned = None
        else:
            if loaded.scanned is None:  # queries already in flight keep the rows they started with
                self._replace(use_case, dataset.schema.empty_table())
            loaded.scanned = dataset
        loaded.version, loaded.rows = version, rows

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on which the tables read from their files are registered under their names; closed after,
        with the scan's memory given back."""
        cursor = self._db.cursor()
        try:
            self._register_scanned(cursor)
            yield cursor
        finally:
            cursor.close()
            _release_scan_memory()

    def _register_scanned(self, cursor: duckdb.DuckDBPyConnection) -> None:
        for key, loaded in self._loaded.items():
            scanned = loaded.scanned
            if scanned is not None:
                cursor.register(TABLE_NAMES[key], scanned)  # shadows the emptied main table on this cursor

    def _replace(self, use_case: str, rows: pa.Table | Any) -> None:
        """Swap the native table for `rows` in one transaction (running queries keep the old one)."""
        with self._db.cursor() as cursor:
            cursor.register("delta_rows", rows)
            cursor.execute(f"CREATE OR REPLACE TABLE main.{TABLE_NAMES[use_case]} AS FROM delta_rows")
            cursor.unregister("delta_rows")

    def _run(self, cursor: duckdb.DuckDBPyConnection, select: str, limit: int) -> QueryResult:
        timer = threading.Timer(self.limits.timeout_seconds, cursor.interrupt)
        timer.start()
        try:
            if self.stopping:  # interrupted between statements: the interrupt found nothing running
                raise _stopping_error()
            relation = cursor.sql(select)
            columns = list(relation.columns)
            batches, size, truncated = [], 0, False
            reader = relation.limit(limit + 1).to_arrow_reader(_BATCH_ROWS)
            for batch in reader:
                batches.append(batch)
                size += batch.nbytes
                if size > self.limits.max_result_bytes:
                    truncated = True
                    break
        except duckdb.Error as exc:
            raise self._failure(exc) from None
        finally:
            timer.cancel()
        table = pa.Table.from_batches(batches, schema=reader.schema)
        if table.num_rows > limit:
            table, truncated = table.slice(0, limit), True
        cells = [column.to_pylist() for column in table.columns]
        rows = [[json_value(value) for value in row] for row in zip(*cells, strict=True)] if cells else []
        return QueryResult(columns, rows, truncated)

    def _failure(self, exc: duckdb.Error) -> SqlError:
        """What a DuckDB error means for the request: 503 when the function's stop interrupted it."""
        if self.stopping and isinstance(exc, duckdb.InterruptException):
            return _stopping_error()
        return _classified(exc, self.limits)


def limits_from(settings: Settings) -> SqlLimits:
    """The query limits the settings ask for (the rest are SqlLimits' defaults)."""
    return SqlLimits(max_rows=settings.sql_max_rows, default_rows=min(SqlLimits.default_rows, settings.sql_max_rows),
                     timeout_seconds=settings.sql_timeout_seconds, memory_limit=settings.sql_memory_limit,
                     threads=settings.sql_threads, load_max_rows=settings.sql_load_max_rows)


def use_releasing_memory_pool() -> None:
    """Make Arrow's default pool one whose `release_unused` gives back the pages every thread freed: jemalloc
    (it purges all its arenas), or the system allocator where pyarrow has no jemalloc."""
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)


def _release_scan_memory() -> None:
    """Give the pages Arrow's allocator kept from freed buffers (a finished scan's, a replaced table's) back to
    the system: about a microsecond when there are none."""
    pa.default_memory_pool().release_unused()


def _single_select(cursor: duckdb.DuckDBPyConnection, text: str) -> str:
    """The text of the only statement in `text`, if DuckDB's parser says it is a SELECT."""
    try:
        statements = cursor.extract_statements(text)
    except duckdb.Error as exc:
        raise SqlError(400, "validation", f"not valid SQL: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise SqlError(400, "validation", f"exactly one statement is allowed; got {len(statements)}")
    [statement] = statements
    if statement.type != duckdb.StatementType.SELECT:
        kind = statement.type.name
        raise SqlError(400, "validation", f"only a read-only SELECT statement is allowed; got {kind}")
    return statement.query


def _classified(exc: duckdb.Error, limits: SqlLimits) -> SqlError:
    message = _first_line(exc)
    if isinstance(exc, duckdb.InterruptException):
        return SqlError(408, "timeout", f"query stopped after the {limits.timeout_seconds:g} s timeout")
    if isinstance(exc, duckdb.PermissionException):
        return SqlError(403, "forbidden", f"not allowed: {message}")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return SqlError(422, "memory", f"query needs more than the {limits.memory_limit} memory limit: {message}")
    if isinstance(exc, duckdb.ParserException):
        return SqlError(400, "validation", f"not valid SQL: {message}")
    if isinstance(exc, duckdb.InternalException | duckdb.FatalException):
        return SqlError(500, "execution", f"engine error: {message}")
    return SqlError(422, "execution", f"query failed: {message}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
