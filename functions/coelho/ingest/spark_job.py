"""Spark Structured Streaming: the use cases' Kafka topics into their Delta tables, exactly once.

One streaming query per use case reads its topic (binary-mode CloudEvents: the value is the JSON
payload, the attributes are `ce_*` headers), parses the value with a Spark schema generated from the
use case's event schema, flattens it into the table layout of `coelho.core.table` (typed columns,
`event_time`, CloudEvent id/source, Kafka partition/offset) and appends each micro-batch to the Delta
table with `txnAppId`/`txnVersion` (the query id kept in the checkpoint, the batch id): a batch replayed
after a crash is skipped by Delta, so a restart — clean or after SIGKILL — writes each record once.
Records that cannot become a row (not JSON, wrong types, a required field or header missing) go to the
use case's quarantine table `<use_case>_quarantine` with the reason, and are counted in the log and in
the job's Prometheus metrics (`coelho_spark_*`, served with `--metrics-port`).

The Delta and Kafka jars come from Maven Central into the cache (`infra/spark/pom.xml`, profile `s3` for
hadoop-aws when a table lives on S3/MinIO) and are passed in `spark.jars`: nothing is resolved at run time.

>>> parse_trigger("500ms"), parse_trigger("5s"), parse_trigger("1 minute")
('500 milliseconds', '5 seconds', '1 minute')
>>> spark_uri("s3://lakehouse/delta/tfd"), spark_uri("/data/delta/tfd")
('s3a://lakehouse/delta/tfd', '/data/delta/tfd')
>>> from coelho.core import eta
>>> columns = [name for name, _ in _leaves(eta.SCHEMA.fields)]
>>> columns == [c.name for c in layout_for(eta.USE_CASE).columns[: -len(METADATA)]], columns[4:6]
(True, ['origin_lat', 'origin_lon'])
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from prometheus_client import Counter, Gauge, Histogram

from coelho.adapters.delta_store import arrow_schema, ensure_table, storage_options, table_properties
from coelho.adapters.maven import REPO_ROOT, default_cache_dir, fetch_jars
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.core.schema import Field
from coelho.core.table import METADATA, Column, TableLayout, layout_for
from coelho.producers.kafka_sink import TOPICS

__all__ = [
    "QUARANTINE",
    "SPARK_POM",
    "parse_trigger",
    "quarantine_name",
    "run",
    "spark_jars",
    "spark_uri",
]

log = logging.getLogger(__name__)

SPARK_POM = REPO_ROOT / "infra" / "spark" / "pom.xml"
CORRUPT = "_corrupt_record"
#: Seconds between two looks at the queries and the stop signal.
POLL_SECONDS = 0.5

BATCHES = Counter("coelho_spark_batches_total", "Micro-batches the Spark job wrote, by use case.", ["use_case"])
ROWS = Counter("coelho_spark_rows_total", "Rows the Spark job appended to the use case's Delta table.", ["use_case"])
QUARANTINED = Counter("coelho_spark_quarantined_total", "Records the Spark job put in quarantine (with a reason).",
                      ["use_case"])
BATCH_SECONDS = Histogram("coelho_spark_batch_duration_seconds", "Time to write one micro-batch (both tables).",
                          ["use_case"], buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
LAST_BATCH = Gauge("coelho_spark_last_batch_timestamp_seconds", "Unix time the last micro-batch was written.",
                   ["use_case"])
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours"}


def quarantine_name(use_case: str) -> str:
    """The quarantine table's folder name next to the use case's table."""
    return f"{use_case}_quarantine"


def parse_trigger(text: str) -> str:
    """A processing-time interval for Spark: `500ms`, `5s`, `2m` or Spark's own `5 seconds`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", text)
    if match:
        return f"{match[1]} {_UNITS[match[2]]}"
    if re.fullmatch(r"\s*\d+(?:\.\d+)?\s+[a-z]+\s*", text):
        return text.strip()
    raise ValueError(f"trigger {text!r} is not an interval such as 500ms, 5s or '5 seconds'")


def spark_uri(uri: str) -> str:
    """Spark's name of a table location: `s3://` becomes Hadoop's `s3a://`."""
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


def _on_s3(uri: str) -> bool:
    return urlparse(uri).scheme in ("s3", "s3a")


def spark_jars(cache_dir: Path | None = None, s3: bool = False) -> list[Path]:
    """The jars Spark needs beyond pyspark's (fetched with Maven once); with `s3`, also hadoop-aws."""
    cache = (cache_dir or default_cache_dir()).resolve()
    folder = cache / ("spark-jars-s3" if s3 else "spark-jars")
    fetch_jars(SPARK_POM, folder, expect="delta-spark_*.jar", cache_dir=cache, profiles=("s3",) if s3 else ())
    return sorted(folder.glob("*.jar"))


def _spark_type(kind: str) -> Any:
    from pyspark.sql import types as T

    return {
        "str": T.StringType(), "timestamp": T.StringType(), "int": T.LongType(), "float": T.DoubleType(),
        "bool": T.BooleanType(),
    }[kind]


def payload_struct(fields: Sequence[Field]) -> Any:
    """The Spark StructType of a payload, generated from the use case's schema fields."""
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField(f.name, payload_struct(f.fields) if f.kind == "object" else _spark_type(f.kind), True)
        for f in fields
    ])


def _leaves(fields: Sequence[Field], prefix: str = "", path: tuple[str, ...] = ()) -> Iterator[tuple[str, tuple]]:
    """(column name, path in the payload) of each flattened column, as `coelho.core.table` names them."""
    for spec in fields:
        if spec.kind == "object":
            yield from _leaves(spec.fields, f"{prefix}{spec.name}_", (*path, spec.name))
        else:
            yield prefix + spec.name, (*path, spec.name)


#: Columns of a use case's quarantine table: the record as read, and why it is not a row.
QUARANTINE: tuple[Column, ...] = (
    Column("topic", "str", False), Column("kafka_partition", "int", False), Column("kafka_offset", "int", False),
    Column("key", "str", True), Column("value", "str", True), Column("headers", "str", True),
    Column("reason", "str", False), Column("ingested_at", "timestamp", False),
)


def parse_records(records: Any, layout: TableLayout) -> Any:
    """Kafka records (with headers) → the layout's columns plus `reason` (null for a good row) and raw fields."""
    from pyspark.sql import functions as F

    fields = USE_CASES[layout.use_case].schema.fields
    struct = payload_struct(fields).add(CORRUPT, "string")
    value = F.col("value").cast("string")

    def header(name: str) -> Any:
        return F.expr(f"try_element_at(filter(headers, h -> h.key = '{name}'), 1).value").cast("string")

    data = F.from_json(value, struct, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    parsed = records.select(
        "topic", "partition", "offset", F.col("key").cast("string").alias("key"), value.alias("raw"),
        F.to_json("headers").alias("raw_headers"), data.alias("data"),
        header("ce_id").alias("ce_id"), header("ce_source").alias("ce_source"),
    )
    columns = []
    for name, path in _leaves(fields):
        expr = F.col("data")
        for part in path:
            expr = expr.getField(part)
        columns.append(expr.alias(name))
    event_time = F.try_to_timestamp(F.col("data").getField("timestamp"))
    payload_names = [c.name for c in layout.columns[: len(layout.columns) - len(METADATA)]]
    flat = parsed.select(
        "*", *columns, event_time.alias("event_time"), F.col("partition").cast("long").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"), F.current_timestamp().alias("ingested_at"),
    )
    checks = [
        (F.col("data").isNull() | F.col("data").getField(CORRUPT).isNotNull(),
         "value is not a JSON object of the schema's types"),
        (F.col("ce_id").isNull(), "header ce_id is missing"),
        (F.col("ce_source").isNull(), "header ce_source is missing"),
    ] + [
        (F.col(name).isNull(), f"{name} is required") for name in payload_names if not layout.column(name).nullable
    ] + [(F.col("event_time").isNull(), "timestamp is not an ISO-8601 instant")]
    reason = F.coalesce(*[F.when(condition, F.lit(text)) for condition, text in checks])
    return flat.withColumn("reason", reason)


def _writer(layout: TableLayout, uri: str, quarantine_uri: str, compact_every: int) -> Any:
    """The foreachBatch function: good rows to the table, the rest to quarantine, both idempotent per batch;
    every `compact_every` batches the table is compacted (`OPTIMIZE`), which bounds its active files."""
    from pyspark.sql import functions as F

    names = [c.name for c in layout.columns]
    casts = {c.name: _spark_type(c.kind) if c.kind != "timestamp" else "timestamp" for c in layout.columns}

    def write(batch: Any, batch_id: int) -> None:
        # The query id is kept in the checkpoint: the same after a restart, new with a new checkpoint.
        query_id = batch.sparkSession.sparkContext.getLocalProperty("sql.streaming.queryId")
        app_id = f"coelho-ingest-{layout.use_case}-{query_id}"
        started = time.perf_counter()
        batch.persist()
        try:
            good = batch.where(F.col("reason").isNull()).select(*[F.col(n).cast(casts[n]).alias(n) for n in names])
            (good.write.format("delta").mode("append").option("txnAppId", app_id)
             .option("txnVersion", batch_id).save(uri))
            bad = batch.where(F.col("reason").isNotNull()).select(
                "topic", "kafka_partition", "kafka_offset", "key", F.col("raw").alias("value"),
                F.col("raw_headers").alias("headers"), "reason", "ingested_at",
            )
            quarantined = bad.count()
            if quarantined:
                log.warning("%s batch %d: %d records quarantined in %s", layout.use_case, batch_id, quarantined,
                            quarantine_uri)
                (bad.write.format("delta").mode("append").option("txnAppId", f"{app_id}-quarantine")
                 .option("txnVersion", batch_id).save(quarantine_uri))
            key = layout.use_case
            ROWS.labels(key).inc(batch.count() - quarantined)
            QUARANTINED.labels(key).inc(quarantined)
            BATCHES.labels(key).inc()
            BATCH_SECONDS.labels(key).observe(time.perf_counter() - started)
            LAST_BATCH.labels(key).set_to_current_time()
        finally:
            batch.unpersist()
        if (batch_id + 1) % compact_every == 0:  # after the batch: a failed compaction loses no row
            try:
                batch.sparkSession.sql(f"OPTIMIZE delta.`{uri}`")
            except Exception as exc:  # noqa: BLE001 - an optimisation: the next one tries again
                log.warning("compaction of %s failed: %s", uri, exc)

    return write


def build_session(settings: Settings, master: str, jars: Sequence[Path], ui: bool = False) -> Any:
    """A SparkSession with Delta and the Kafka source from `jars`; no Ivy; on 127.0.0.1 with a local master."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master).appName("coelho-ingest")
        .config("spark.jars", ",".join(str(jar) for jar in jars))
        .config("spark.jars.packages", "")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", str(ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.databricks.delta.snapshotPartitions", "2")
    )
    if master.startswith("local"):  # everything on this machine: listen on loopback only
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    if settings.s3_endpoint_url or settings.s3_access_key_id:
        endpoint = settings.s3_endpoint_url or ""
        builder = (
            builder.config("spark.hadoop.fs.s3a.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem")
            .config("spark.hadoop.fs.s3a.path.style.access", "true")
            .config("spark.hadoop.fs.s3a.connection.ssl.enabled", str(not endpoint.startswith("http:")).lower())
        )
        for key, value in (("endpoint", endpoint), ("access.key", settings.s3_access_key_id),
                           ("secret.key", settings.s3_secret_access_key)):
            if value:
                builder = builder.config(f"spark.hadoop.fs.s3a.{key}", value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def start_query(
    spark: Any, settings: Settings, use_case: str, topic: str, trigger: str | None, max_records: int | None = None,
) -> Any:
    """Start the streaming query of one use case; `trigger` None means availableNow (drain, then stop);
    `max_records` bounds the records of one micro-batch (default: all that are available)."""
    layout = layout_for(USE_CASES[use_case])
    uri, quarantine = settings.delta_uri(use_case), settings.delta_uri(quarantine_name(use_case))
    options, properties = storage_options(settings), table_properties(settings)
    ensure_table(uri, arrow_schema(layout), options, properties)
    ensure_table(quarantine, arrow_schema(TableLayout(use_case, quarantine_name(use_case), QUARANTINE)), options,
                 properties)
    records = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
        .option("failOnDataLoss", "false")
    )
    if max_records:
        records = records.option("maxOffsetsPerTrigger", str(max_records))
    records = records.load()
    writer = (
        parse_records(records, layout).writeStream.queryName(f"ingest-{use_case}")
        .option("checkpointLocation", spark_uri(settings.spark_checkpoint(use_case)))
        .foreachBatch(_writer(layout, spark_uri(uri), spark_uri(quarantine), settings.sink_compact_every))
    )
    writer = writer.trigger(availableNow=True) if trigger is None else writer.trigger(processingTime=trigger)
    return writer.start()


def run(
    settings: Settings,
    use_cases: Sequence[str],
    *,
    topics: Mapping[str, str] | None = None,
    trigger: str | None = None,
    once: bool = False,
    master: str = "local[2]",
    ui: bool = False,
    max_records: int | None = None,
) -> int:
    """Run the queries of `use_cases` until SIGTERM/SIGINT (or, with `once`, until the topics are drained)."""
    topics = {**TOPICS, **(topics or {})}
    s3 = any(_on_s3(settings.delta_uri(key)) or _on_s3(settings.spark_checkpoint(key)) for key in use_cases)
    spark = build_session(settings, master, spark_jars(settings.cache_dir, s3=s3), ui=ui)
    interval = None if once else parse_trigger(trigger or settings.spark_trigger)
    queries: list[Any] = []
    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:  # only a flag: a py4j call from a signal handler would clash
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for key in use_cases:
            queries.append(start_query(spark, settings, key, topics[key], interval, max_records))
            log.info("ingesting %s from Kafka topic %s into %s (trigger %s)", key, topics[key],
                     settings.delta_uri(key), interval or "availableNow")
        # Streaming: a query that ends (it failed) stops the job, so that its supervisor restarts it;
        # --once: each query ends when its topic is drained.
        running = any if once else all
        while not stopping and running(query.isActive for query in queries):
            time.sleep(POLL_SECONDS)
        for query in queries:
            query.stop()
        failures = [(query.name, query.exception()) for query in queries if query.exception() is not None]
        for name, error in failures:
            log.error("query %s failed: %s", name, error)
        return 1 if failures else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        spark.stop()
        log.info("ingestion stopped")
