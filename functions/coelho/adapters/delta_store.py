"""Delta Lake location and Arrow schema of each use case's table (shared by writers and readers).

>>> from coelho.core import eta
>>> schema = arrow_schema(layout_for(eta.USE_CASE))
>>> schema.field("origin_lat").type, schema.field("event_time").type, schema.field("kafka_offset").nullable
(DataType(double), TimestampType(timestamp[us, tz=UTC]), True)
>>> storage_options(Settings(s3_endpoint_url="http://127.0.0.1:9000", s3_access_key_id="k", s3_secret_access_key="s"))
{'AWS_ENDPOINT_URL': 'http://127.0.0.1:9000', 'AWS_ACCESS_KEY_ID': 'k', 'AWS_SECRET_ACCESS_KEY': 's', \
'AWS_ALLOW_HTTP': 'true', 'AWS_S3_ALLOW_UNSAFE_RENAME': 'true', 'AWS_VIRTUAL_HOSTED_STYLE_REQUEST': 'false'}
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake

from coelho.config import Settings
from coelho.core.table import Column, TableLayout, layout_for

__all__ = ["append", "arrow_schema", "compact", "ensure_table", "layout_for", "storage_options", "table_properties",
           "writer_properties"]

log = logging.getLogger(__name__)

_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_schema(layout: TableLayout) -> pa.Schema:
    """The Arrow schema of a table layout (column order kept)."""
    return pa.schema([_arrow_field(column) for column in layout.columns])


def _arrow_field(column: Column) -> pa.Field:
    return pa.field(column.name, _ARROW_TYPES[column.kind], nullable=column.nullable)


def storage_options(settings: Settings) -> dict[str, str] | None:
    """deltalake storage options for S3/MinIO from settings; None for local folders."""
    if not settings.s3_endpoint_url and not settings.s3_access_key_id:
        return None
    options = {
        "AWS_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "AWS_ACCESS_KEY_ID": settings.s3_access_key_id or "",
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_access_key or "",
    }
    options = {key: value for key, value in options.items() if value}
    if settings.s3_endpoint_url:
        options.update(
            AWS_ALLOW_HTTP="true", AWS_S3_ALLOW_UNSAFE_RENAME="true", AWS_VIRTUAL_HOSTED_STYLE_REQUEST="false",
        )
    return options


def table_properties(settings: Settings) -> dict[str, str]:
    """The Delta table properties that bound a table's log and files on disk, from the settings.

    A checkpoint every `COELHO_DELTA_CHECKPOINT_EVERY` commits (readers load it plus fewer commits than
    that), log entries older than `COELHO_DELTA_LOG_RETENTION_HOURS` removed after each checkpoint, and
    removed data files kept in the checkpoints for `COELHO_SINK_RETENTION_HOURS` (then vacuumed: `compact`).
    Each checkpoint carries a remove entry for every file removed within that retention, and stays until the
    log retention, so the log's bytes grow with the square of the commit rate times the retentions.

    >>> table_properties(Settings(delta_log_retention_hours=0.5))["delta.logRetentionDuration"]
    'interval 1800 seconds'
    >>> table_properties(Settings(sink_retention_hours=0.1))["delta.deletedFileRetentionDuration"]
    'interval 360 seconds'
    """
    return {
        "delta.checkpointInterval": str(settings.delta_checkpoint_every),
        "delta.logRetentionDuration": f"interval {round(settings.delta_log_retention_hours * 3600)} seconds",
        "delta.deletedFileRetentionDuration": f"interval {round(settings.sink_retention_hours * 3600)} seconds",
        "delta.enableExpiredLogCleanup": "true",
    }


def writer_properties(settings: Settings) -> WriterProperties:
    """How every writer and the compaction write Parquet: row groups of at most `COELHO_DELTA_ROW_GROUP_ROWS`.

    A reader decodes a row group at a time, so the row group bounds what one scan holds: a compaction
    writes the whole table into one file, and with deltalake's default (about a million rows) a table of
    300,000 rows was one row group, whose every scan made the sql worker hold 70-80 MiB more, growing
    with the table.

    >>> writer_properties(Settings()).max_row_group_size
    16384
    """
    return WriterProperties(max_row_group_size=settings.delta_row_group_rows)


def ensure_table(uri: str, schema: pa.Schema, options: dict[str, str] | None = None,
                 properties: dict[str, str] | None = None) -> DeltaTable:
    """The Delta table at `uri`, created empty with `schema` if there is none, so every writer sees one schema.

    `properties` (`table_properties`): set on a new table, and on an existing one whose values differ (one
    metadata commit), so that a changed setting applies to tables written before.
    """
    table = DeltaTable.create(uri, schema=schema, mode="ignore", storage_options=options, configuration=properties)
    changed = {key: value for key, value in (properties or {}).items()
               if table.metadata().configuration.get(key) != value}
    if changed:
        table.alter.set_table_properties(changed)
    return table


def append(table: DeltaTable, data: pa.Table, settings: Settings, transactions: dict[str, int]) -> None:
    """Append `data` to `table` in one commit that records each app id's version (`transactions`), in row
    groups of `writer_properties`: what every writer of the platform commits."""
    write_deltalake(table, data, mode="append", writer_properties=writer_properties(settings),
                    commit_properties=CommitProperties(
                        app_transactions=[Transaction(app, version) for app, version in transactions.items()]))


def compact(table: DeltaTable, settings: Settings) -> dict[str, Any] | None:
    """Compact the table's small files (in row groups of `writer_properties`), then delete every data file
    the table no longer references that was written more than `COELHO_SINK_RETENTION_HOURS` ago (rounded up
    to whole hours: deltalake's vacuum takes hours).

    The vacuum is deltalake's full mode: it lists the files on disk instead of reading the log's remove
    entries, which leave the checkpoints after `COELHO_SINK_RETENTION_HOURS` (`table_properties`); a file
    whose entry left before a compaction came would otherwise stay on disk for ever.
    Returns the compaction's metrics, or None when it failed (an optimisation: the next call tries again).
    """
    try:
        table.update_incremental()
        metrics = table.optimize.compact(writer_properties=writer_properties(settings))
        table.vacuum(math.ceil(settings.sink_retention_hours), dry_run=False, enforce_retention_duration=False,
                     full=True)
    except Exception as exc:  # noqa: BLE001 - nothing is lost; the next compaction tries again
        log.warning("compaction of %s failed: %s", table.table_uri, exc)
        return None
    log.info("%s compacted: %s", table.table_uri, metrics)
    return metrics
