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

import pyarrow as pa
from deltalake import DeltaTable

from coelho.config import Settings
from coelho.core.table import Column, TableLayout, layout_for

__all__ = ["arrow_schema", "ensure_table", "layout_for", "storage_options"]

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


def ensure_table(uri: str, schema: pa.Schema, options: dict[str, str] | None = None,
                 retention_hours: int | None = None) -> DeltaTable:
    """The Delta table at `uri`, created empty with `schema` if there is none, so every writer sees one schema.

    `retention_hours` (when creating it): how long removed data files and log entries are kept (Delta's
    `deletedFileRetentionDuration` and `logRetentionDuration`; its defaults are 7 and 30 days).
    """
    configuration = None if retention_hours is None else {
        name: f"interval {retention_hours} hours"
        for name in ("delta.deletedFileRetentionDuration", "delta.logRetentionDuration")}
    return DeltaTable.create(uri, schema=schema, mode="ignore", storage_options=options, configuration=configuration)
