"""sql: a GROUP BY over a 1M-row Delta table through the SQL function vs DuckDB on the same rows in a native table.

The table has the TFD layout (every column of `coelho.core.table`), synthetic but plausible values, and is
written with `deltalake.write_deltalake` in four appends under its own COELHO_DELTA_ROOT, where the `sql`
function (functions-framework subprocess, default settings: 2 DuckDB threads) reads it. The baseline is
DuckDB in the benchmark process, 2 threads, the same rows loaded into a native table named `data`, the
same query text. Both are warm (the function has loaded the table, the baseline has run the query); rounds
alternate function and baseline, each keeps its best round's median.
"""

from __future__ import annotations

import http.client
import json
import logging
import statistics
import time
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import write_deltalake
from measure import Plan, post
from servers import Processes
from workload import Request

from coelho.adapters.delta_store import arrow_schema
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.core.table import layout_for

__all__ = ["QUERY", "sql_bench", "synthetic_tfd"]

log = logging.getLogger("bench")

QUERY = ("SELECT merchant_id, count(*) AS n, sum(amount) AS total, avg(is_fraud) AS fraud_rate "
         "FROM data GROUP BY merchant_id ORDER BY n DESC, merchant_id LIMIT 3")
APPENDS = 4
THREADS = Settings().sql_threads


def synthetic_tfd(rows: int, seed: int) -> pa.Table:
    """`rows` TFD rows with the table's exact Arrow schema: 200 merchants, log-normal amounts, 2% fraud."""
    rng = np.random.default_rng(seed)
    schema = arrow_schema(layout_for(USE_CASES["tfd"]))
    start = np.datetime64("2026-03-02T12:00:00", "us")
    times = start + np.sort(rng.integers(0, 86_400_000_000, rows)).astype("timedelta64[us]")
    text = np.datetime_as_string(times, unit="us")
    ids = np.char.add("tx", np.arange(rows).astype(str))

    def pick(values: list[str]) -> np.ndarray:
        return np.asarray(values)[rng.integers(0, len(values), rows)]

    columns: dict[str, Any] = {
        "transaction_id": ids,
        "user_id": np.char.add("user_", rng.integers(0, 5000, rows).astype(str)),
        "timestamp": np.char.add(text, "+00:00"),
        "amount": np.round(rng.lognormal(4.0, 1.0, rows), 2),
        "currency": pick(["USD", "EUR", "GBP"]),
        "merchant_id": np.char.add("merchant_", rng.integers(0, 200, rows).astype(str)),
        "product_category": pick(["electronics", "grocery", "travel", "fashion", "home"]),
        "transaction_type": pick(["purchase", "payment", "transfer", "withdrawal"]),
        "payment_method": pick(["credit_card", "debit_card", "paypal", "bank_transfer"]),
        "location_lat": rng.uniform(25.0, 49.0, rows),
        "location_lon": rng.uniform(-124.0, -67.0, rows),
        "ip_address": np.char.add("10.0.0.", rng.integers(0, 255, rows).astype(str)),
        "device_info_os": pick(["iOS", "Android", "Windows", "macOS"]),
        "device_info_browser": pick(["Safari", "Chrome", "Firefox", "Edge"]),
        "user_agent": pick(["Mozilla/5.0 (iPhone)", "Mozilla/5.0 (Windows NT 10.0)", "Mozilla/5.0 (Linux)"]),
        "account_age_days": rng.integers(0, 3650, rows),
        "cvv_provided": rng.random(rows) < 0.9,
        "billing_address_match": rng.random(rows) < 0.8,
        "is_fraud": (rng.random(rows) < 0.02).astype(np.int64),
        "event_time": times,
        "ce_id": ids,
        "ce_source": np.full(rows, "/bench/tfd"),
        "kafka_partition": rng.integers(0, 3, rows),
        "kafka_offset": np.arange(rows),
        "ingested_at": times + np.timedelta64(1, "s"),
    }
    return pa.table({field.name: pa.array(columns[field.name], type=field.type) for field in schema}, schema=schema)


def sql_bench(processes: Processes, plan: Plan, seed: int) -> dict[str, Any]:
    """p50 of the GROUP BY through the sql function (HTTP) and natively, on the same rows; ratio = p50 / native."""
    rows = plan.sql_rows
    log.info("sql: writing a %s-row TFD Delta table in %d appends", f"{rows:,}", APPENDS)
    table = synthetic_tfd(rows, seed)
    root = processes.work_dir / "sql-delta"  # its own tables: other sections write the run's data dir
    uri = str(root / "tfd")
    for batch in np.array_split(np.arange(rows), APPENDS):
        write_deltalake(uri, table.slice(int(batch[0]), len(batch)), mode="append")

    native = duckdb.connect(config={"threads": THREADS})
    native.register("delta_rows", table)
    native.execute("CREATE TABLE data AS FROM delta_rows")
    native.unregister("delta_rows")

    server = processes.launch("sql", COELHO_DELTA_ROOT=str(root))
    log.info("sql ready on port %d after %.1f s", server.port, server.wait_ready())
    request = Request({"content-type": "application/json"},
                      json.dumps({"use_case": "tfd", "query": QUERY, "limit": 10}).encode())
    began = time.perf_counter()
    post(server.port, [request])  # loads the table into the function's DuckDB
    load_seconds = time.perf_counter() - began
    expected = [list(row) for row in native.execute(QUERY).fetchall()]
    answer = _answer(server.port, request)
    if [[r[0], r[1]] for r in answer] != [[r[0], r[1]] for r in expected]:
        raise RuntimeError(f"sql function answered {answer}, DuckDB {expected}")

    function_rounds, native_rounds = [], []
    for _ in range(plan.sql_rounds):
        _, latencies = post(server.port, [request] * (plan.sql_queries + 2), timed_from=2)
        function_rounds.append(statistics.median(latencies) * 1000)
        native_rounds.append(statistics.median(_native_latencies(native, plan.sql_queries)) * 1000)
    processes.stop(server)
    p50, native_p50 = min(function_rounds), min(native_rounds)
    return {
        "rows": rows, "query": QUERY, "threads": THREADS, "load_seconds": load_seconds,
        "p50_ms": p50, "native_p50_ms": native_p50, "ratio": p50 / native_p50,
        "rounds": {"function_p50_ms": function_rounds, "native_p50_ms": native_rounds},
    }


def _native_latencies(con: duckdb.DuckDBPyConnection, count: int) -> list[float]:
    con.execute(QUERY).fetchall()  # warm, like the function's untimed requests
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        con.execute(QUERY).fetchall()
        latencies.append(time.perf_counter() - began)
    return latencies


def _answer(port: int, request: Request) -> list[list[Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/", request.body, request.headers)
        return json.loads(conn.getresponse().read())["rows"]
    finally:
        conn.close()
