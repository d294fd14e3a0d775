"""ingest: rows per second into the Delta tables, by the delta-sink function and by the Spark job.

`sink_rows_per_s`: TFD CloudEvents with new ids posted to a fresh `delta-sink` by `SENDERS` keep-alive
connections at once, as fast as they are answered (each answer waits for the commit of the event's
micro-batch): rows in the table / seconds from the first post to the last answer. Baselines in the same
run, on the same events: `hello_events_per_s`, the same requests to the no-op `hello-event`; and
`raw_rows_per_s`, the same rows (`TableLayout.row`) written by `write_deltalake` in one go in process.

`spark_rows_per_s`: the same number of TFD events produced (binary CloudEvents, 3 partitions) before
`coelho ingest spark --once --max-records-per-batch B` starts on `local[2]`: rows after the first
micro-batch / seconds between the first and the last Delta commit of the job (JVM start, query planning and
the first batch, which includes Spark's warm-up, are left out). Baseline: `raw_rows_per_s` as above.
"""

from __future__ import annotations

import http.client
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from servers import FunctionProcess, Processes
from workload import Request, cloudevent_request, stream

from coelho.adapters.delta_store import arrow_schema
from coelho.adapters.kafka_broker import KafkaBroker
from coelho.core import USE_CASES
from coelho.core.table import layout_for
from coelho.producers.cloudevent import to_cloudevent
from coelho.producers.kafka_sink import KafkaSink

__all__ = ["ingest"]

log = logging.getLogger("bench")

KEY = "tfd"
SENDERS = 64  # concurrent connections: delta-sink serves 64 threads (catalog), each waiting for a commit
SPARK_BATCH = 50_000
SPARK_TIMEOUT_S = 600


def _post_all(port: int, requests: list[Request], senders: int) -> float:
    """Post every request over `senders` connections at once; seconds from the first post to the last answer."""
    chunks = [requests[i::senders] for i in range(senders)]
    errors: list[str] = []

    def send(chunk: list[Request]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for request in chunk:
                conn.request("POST", "/", body=request.body, headers=request.headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 300:
                    errors.append(f"HTTP {response.status}")
        finally:
            conn.close()

    threads = [threading.Thread(target=send, args=(chunk,)) for chunk in chunks]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} posts failed, first: {errors[0]}")
    return seconds


def raw_rows_per_s(payloads: list[dict[str, Any]], uri: str) -> float:
    """`write_deltalake` of the rows of `payloads` in one go into a fresh table (the floor of any writer)."""
    layout = layout_for(USE_CASES[KEY])
    began = time.perf_counter()
    now = datetime.now(UTC)
    rows = [layout.row(p, ce_id=str(p[USE_CASES[KEY].id_field]), ce_source="/bench", ingested_at=now)
            for p in payloads]
    write_deltalake(uri, pa.Table.from_pylist(rows, schema=arrow_schema(layout)), mode="append")
    return len(rows) / (time.perf_counter() - began)


def sink_figures(processes: Processes, hello: FunctionProcess, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    requests = [cloudevent_request(KEY, payload) for payload in payloads]
    warmup, timed = requests[:200], requests[200:]
    [sink] = processes.start("delta-sink")
    _post_all(sink.port, warmup, SENDERS)
    sink_s = _post_all(sink.port, timed, SENDERS)
    table = DeltaTable(os.path.join(processes.work_dir, "data", "delta", KEY))
    rows = len(table.to_pyarrow_table(columns=["ce_id"]))
    commits = len(table.history())
    processes.stop(sink)
    _post_all(hello.port, warmup, SENDERS)
    hello_s = _post_all(hello.port, timed, SENDERS)
    raw = raw_rows_per_s(payloads[200:], str(processes.work_dir / "raw-sink"))
    figures = {
        "events": len(timed), "posted": len(requests), "rows": rows, "senders": SENDERS, "commits": commits,
        "sink_rows_per_s": len(timed) / sink_s, "hello_events_per_s": len(timed) / hello_s, "raw_rows_per_s": raw,
    }
    figures["sink_vs_raw"] = figures["sink_rows_per_s"] / raw
    figures["sink_vs_hello"] = figures["sink_rows_per_s"] / figures["hello_events_per_s"]
    log.info("ingest sink: %d rows in %d commits, %.0f rows/s; hello %.0f ev/s; raw write_deltalake %.0f rows/s",
             rows, commits, figures["sink_rows_per_s"], figures["hello_events_per_s"], raw)
    return figures


def spark_figures(processes: Processes, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    work = processes.work_dir / "spark"
    broker = KafkaBroker(work / "broker")
    broker.start()
    try:
        topic = f"bench-ingest-{KEY}"
        broker.ensure_topics([topic], partitions=3)
        with KafkaSink(broker.bootstrap_servers, topic) as producer:
            for payload in payloads:
                producer.send(to_cloudevent(KEY, payload))
        env = {**os.environ, "COELHO_DATA_DIR": str(work / "data"), "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers}
        command = [sys.executable, "-m", "coelho.cli", "ingest", "spark", "--once", "--use-case", KEY,
                   "--topic", f"{KEY}={topic}", "--max-records-per-batch", str(SPARK_BATCH)]
        began = time.perf_counter()
        with open(processes.log_dir / "spark-ingest.log", "ab") as out:
            done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=SPARK_TIMEOUT_S,
                                  check=False)
        job_s = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"the Spark job exited with {done.returncode}; see {processes.log_dir}/spark-ingest.log")
    finally:
        broker.stop()
    table = DeltaTable(str(work / "data" / "delta" / KEY))
    appends = sorted((c for c in table.history() if c.get("operation") not in ("CREATE TABLE", "OPTIMIZE")),
                     key=lambda c: c["timestamp"])
    keys = table.to_pyarrow_table(columns=["ce_source", "ce_id"])  # every row once: as many keys as rows
    rows, distinct = keys.num_rows, len(set(zip(keys["ce_source"].to_pylist(), keys["ce_id"].to_pylist(),
                                                 strict=True)))
    first_rows = int(appends[0].get("operationMetrics", {}).get("numOutputRows", SPARK_BATCH))
    span_s = (appends[-1]["timestamp"] - appends[0]["timestamp"]) / 1000
    raw = raw_rows_per_s(payloads, str(work / "raw"))
    figures = {
        "events": len(payloads), "rows": rows, "distinct_rows": distinct, "batches": len(appends),
        "batch_records": SPARK_BATCH, "active_files": len(table.file_uris()),
        "job_seconds": job_s, "spark_rows_per_s": (rows - first_rows) / span_s if span_s > 0 else None,
        "raw_rows_per_s": raw,
    }
    figures["spark_vs_raw"] = figures["spark_rows_per_s"] / raw if figures["spark_rows_per_s"] else None
    log.info("ingest spark: %d rows in %d batches, %s rows/s between the first and the last commit; job %.0f s; "
             "raw write_deltalake %.0f rows/s", rows, len(appends), figures["spark_rows_per_s"], job_s, raw)
    return figures


def ingest(processes: Processes, hello: FunctionProcess, events: int, spark_events: int | None) -> dict[str, Any]:
    """Both ingestion figures; `spark_events` None skips the Spark job (quick runs)."""
    log.info("ingest: generating %s %s events", f"{max(events, spark_events or 0):,}", KEY)
    payloads = stream(KEY, max(events, spark_events or 0), seed=20260303)
    result: dict[str, Any] = {"use_case": KEY, "sink": sink_figures(processes, hello, payloads[:events])}
    if spark_events is None:
        result["spark"] = {"skipped": "quick run"}
    else:
        try:
            result["spark"] = spark_figures(processes, payloads[:spark_events])
        except Exception as exc:  # noqa: BLE001 - the sink figures are still worth writing
            log.exception("ingest spark failed")
            result["spark"] = {"error": f"{type(exc).__name__}: {exc}"}
    return result
