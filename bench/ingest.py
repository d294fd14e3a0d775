"""ingest: rows per second into the Delta tables, by the delta-sink function, the bulk consumer and the Spark job.

`sink_rows_per_s`: TFD CloudEvents with new ids posted to a fresh `delta-sink` by `SENDERS` keep-alive
connections at once, as fast as they are answered (each answer waits for the commit of the event's
micro-batch): rows in the table / seconds from the first post to the last answer. Baselines in the same
run, on the same events: `hello_events_per_s`, the same requests to the no-op `hello-event`; and
`raw_rows_per_s`, the same rows (`TableLayout.row`) written by `write_deltalake` in one go in process.

`kafka_rows_per_s` and `spark_rows_per_s`: one backlog of TFD events produced (binary CloudEvents, 3
partitions) to a broker the run starts, then ingested by `coelho ingest kafka --once --batch-rows B` (the
bulk Python consumer) and `coelho ingest spark --once --max-records-per-batch B` (`local[2]`), each into a
fresh table: rows after the first batch / seconds between the first and the last Delta commit (process
start, the consumer group's join or Spark's JVM and planning, and the first batch are left out);
`job_rows_per_s` is rows / the whole command, `rows_per_cpu_s` rows / the CPU seconds of the whole command
(its processes, start-up included: the rate one otherwise idle core would give). Baseline: `raw_rows_per_s`
as above, the same rows, measured right after each job.
"""

from __future__ import annotations

import http.client
import logging
import os
import resource
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
KAFKA_BATCH = 20_000
KAFKA_WORKERS = int(os.environ.get("BENCH_KAFKA_WORKERS", "1"))
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


def _backlog(broker: KafkaBroker, topic: str, payloads: list[dict[str, Any]]) -> None:
    """`payloads` as binary CloudEvents on a fresh 3-partition `topic`."""
    broker.ensure_topics([topic], partitions=3)
    with KafkaSink(broker.bootstrap_servers, topic) as producer:
        for payload in payloads:
            producer.send(to_cloudevent(KEY, payload))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_job(processes: Processes, name: str, command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run one ingestion command to its end; its wall and CPU seconds (raises when it fails)."""
    began, cpu = time.perf_counter(), _cpu_seconds()
    with open(processes.log_dir / f"{name}.log", "ab") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=SPARK_TIMEOUT_S,
                              check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} exited with {done.returncode}; see {processes.log_dir}/{name}.log")
    return time.perf_counter() - began, _cpu_seconds() - cpu


def _table_figures(uri: str, events: int, batch: int) -> dict[str, Any]:
    """Rows, distinct keys, appends, active files and the rate between the first and the last append."""
    table = DeltaTable(uri)
    appends = sorted((c for c in table.history() if c.get("operation") not in ("CREATE TABLE", "OPTIMIZE",
                                                                               "SET TBLPROPERTIES")),
                     key=lambda c: c["timestamp"])
    keys = table.to_pyarrow_table(columns=["ce_source", "ce_id"])  # every row once: as many keys as rows
    rows, distinct = keys.num_rows, len(set(zip(keys["ce_source"].to_pylist(), keys["ce_id"].to_pylist(),
                                                 strict=True)))
    first_rows = int(appends[0].get("operationMetrics", {}).get("numOutputRows", batch)) if appends else 0
    span_s = (appends[-1]["timestamp"] - appends[0]["timestamp"]) / 1000 if appends else 0
    return {"events": events, "rows": rows, "distinct_rows": distinct, "batches": len(appends),
            "batch_records": batch, "active_files": len(table.file_uris()),
            "rows_per_s": (rows - first_rows) / span_s if span_s > 0 else None}


def job_figures(processes: Processes, broker: KafkaBroker, topic: str, payloads: list[dict[str, Any]],
                engine: str, batch: int) -> dict[str, Any]:
    """`coelho ingest <engine> --once` of the backlog on `topic` into a fresh table, then the raw baseline."""
    work = processes.work_dir / engine
    env = {**os.environ, "COELHO_DATA_DIR": str(work / "data"), "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers}
    command = [sys.executable, "-m", "coelho.cli", "ingest", engine, "--once", "--use-case", KEY,
               "--topic", f"{KEY}={topic}"]
    if engine == "spark":
        command += ["--max-records-per-batch", str(batch)]
    else:
        command += ["--batch-rows", str(batch), "--workers", str(KAFKA_WORKERS), "--group", f"bench-{time.time_ns()}"]
    job_s, cpu_s = _run_job(processes, f"{engine}-ingest", command, env)
    figures = {**_table_figures(str(work / "data" / "delta" / KEY), len(payloads), batch), "job_seconds": job_s,
               "job_cpu_seconds": cpu_s}
    figures["rows_per_cpu_s"] = figures["rows"] / cpu_s if cpu_s > 0 else None
    if engine == "kafka":
        figures["workers"] = KAFKA_WORKERS
    figures["job_rows_per_s"] = figures["rows"] / job_s
    raw = raw_rows_per_s(payloads, str(work / "raw"))
    rate = figures.pop("rows_per_s")
    figures.update({f"{engine}_rows_per_s": rate, "raw_rows_per_s": raw,
                    f"{engine}_vs_raw": rate / raw if rate else None})
    log.info("ingest %s: %d rows in %d batches, %s rows/s between the first and the last commit; job %.1f s "
             "(%.0f rows/s); raw write_deltalake %.0f rows/s", engine, figures["rows"], figures["batches"], rate,
             job_s, figures["job_rows_per_s"], raw)
    return figures


def kafka_figures(processes: Processes, payloads: list[dict[str, Any]], engines: dict[str, int]) -> dict[str, Any]:
    """Each engine (name → records per batch) ingests the same backlog from one broker the run starts."""
    broker = KafkaBroker(processes.work_dir / "ingest-broker")
    broker.start()
    result: dict[str, Any] = {}
    try:
        topic = f"bench-ingest-{KEY}"
        _backlog(broker, topic, payloads)
        for engine, batch in engines.items():
            try:
                result[engine] = job_figures(processes, broker, topic, payloads, engine, batch)
            except Exception as exc:  # noqa: BLE001 - the other engine's figures are still worth writing
                log.exception("ingest %s failed", engine)
                result[engine] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        broker.stop()
    return result


def ingest(processes: Processes, hello: FunctionProcess, events: int, spark_events: int | None,
           kafka_events: int) -> dict[str, Any]:
    """The three ingestion figures; `spark_events` None skips the Spark job (quick runs)."""
    backlog = max(kafka_events, spark_events or 0)
    log.info("ingest: generating %s %s events", f"{max(events, backlog):,}", KEY)
    payloads = stream(KEY, max(events, backlog), seed=20260303)
    result: dict[str, Any] = {"use_case": KEY, "sink": sink_figures(processes, hello, payloads[:events])}
    engines = {"kafka": KAFKA_BATCH} if spark_events is None else {"kafka": KAFKA_BATCH, "spark": SPARK_BATCH}
    try:
        result.update(kafka_figures(processes, payloads[:backlog], engines))
    except Exception as exc:  # noqa: BLE001 - the sink figures are still worth writing
        log.exception("ingest from Kafka failed")
        result["kafka"] = {"error": f"{type(exc).__name__}: {exc}"}
    result.setdefault("spark", {"skipped": "quick run"})
    return result
