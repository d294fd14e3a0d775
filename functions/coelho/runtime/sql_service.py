"""The glue between the `sql` entry point and the DuckDB engine: routes, request checks, JSON replies.

One HTTP function, routed by path:

- `POST /` or `POST /query` with `{"use_case", "query", "limit"}` → `{"columns", "rows", "row_count",
  "truncated", "execution_ms"}`;
- `GET /schema?use_case=` → the table's names, Delta version, columns and row count;
- `GET /count?use_case=` → `{"row_count", "version"}`;
- `GET /templates?use_case=` → the default query and the use case's ready-made queries;
- plus `GET /status`, `/metrics` and `/healthz` like every function.

Every refusal is a 4xx JSON body whose `error` says why; nothing is ever written. When the function
stops, running queries are interrupted and answer 503 with `Retry-After`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

import flask
import pyarrow as pa

from coelho.adapters.duckdb_sql import SqlEngine, SqlError, limits_from, use_releasing_memory_pool
from coelho.config import Settings
from coelho.core.schema import Problem
from coelho.core.sql import InvalidRequest, parse_request
from coelho.core.sql_templates import DEFAULT_QUERY, TEMPLATES
from coelho.core.table import TABLE_NAMES
from coelho.runtime import telemetry
from coelho.runtime.lifecycle import RETRY_AFTER_S
from coelho.runtime.services import Service, reject

__all__ = ["SqlService"]

log = logging.getLogger("coelho.functions")


class SqlService(Service):
    """Answers the SQL function's routes; the engine is built on first use (after the server forks)."""

    def __init__(self, app: flask.Flask, settings: Settings) -> None:
        super().__init__(app, settings)
        self.limits = limits_from(settings)
        self.interrupted = 0

    def _build_engine(self) -> SqlEngine:
        use_releasing_memory_pool()
        return SqlEngine.from_settings(self.settings)

    def begin_stop(self) -> None:
        """Interrupt the running queries at once rather than wait for them."""
        if self._engine is not None:
            self.interrupted = self._engine.interrupt_all()

    def stop(self) -> str:
        return f"interrupted {self.interrupted} running queries" if self.interrupted else "no query was running"

    def handle(self, request: flask.Request) -> flask.Response:
        """Route one request by method and path."""
        route = request.path.rstrip("/") or "/"
        try:
            if route in ("/", "/query"):
                if request.method != "POST":
                    reject(405, 'POST {"use_case", "query", "limit"} as JSON', **{"Allow": "POST"})
                return self._query(request)
            if route in ("/schema", "/count", "/templates"):
                if request.method != "GET":
                    reject(405, f"GET {route}?use_case=<{'|'.join(TABLE_NAMES)}>", **{"Allow": "GET"})
                return flask.jsonify(getattr(self, f"_{route[1:]}")(_use_case_arg(request)))
            reject(404, f"no route {route}; use POST / (or /query), GET /schema, /count or /templates")
        except SqlError as exc:
            telemetry.SQL_ERRORS.labels(exc.kind).inc()
            if exc.status >= 500:
                log.error("sql %s failed: %s", route, exc)
            reject(exc.status, str(exc), **({"Retry-After": str(RETRY_AFTER_S)} if exc.status == 503 else {}))

    def _query(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        # Checked before reading: a body can hold at most the query, its escapes and two short fields.
        if (request.content_length or 0) > 6 * self.limits.max_query_chars + 1024:
            telemetry.SQL_ERRORS.labels("validation").inc()
            reject(413, f"request body larger than the {self.limits.max_query_chars}-character query allows")
        try:
            sql = parse_request(request.get_json(silent=True), self.limits)
        except InvalidRequest as exc:
            telemetry.SQL_ERRORS.labels("validation").inc()
            reject(exc.status, "invalid query request", exc.problems)
        result = self.engine().query(sql.use_case, sql.query, sql.limit)
        elapsed = time.perf_counter() - started
        telemetry.SQL_SECONDS.observe(elapsed)
        telemetry.SQL_ROWS.observe(len(result.rows))
        return flask.jsonify({
            "columns": result.columns,
            "rows": result.rows,
            "row_count": len(result.rows),
            "truncated": result.truncated,
            "execution_ms": round(elapsed * 1000, 3),
        })

    def _schema(self, use_case: str) -> dict[str, Any]:
        engine = self.engine()
        columns = engine.describe(use_case)
        version = engine.refresh(use_case)
        return {
            "use_case": use_case,
            "table_name": TABLE_NAMES[use_case],
            "names": ["data", TABLE_NAMES[use_case]],
            "delta_uri": engine.sources[use_case].uri,
            "version": version,
            "columns": columns,
            "row_count": engine.count(use_case)[0] if version is not None else 0,
        }

    def _count(self, use_case: str) -> dict[str, Any]:
        rows, version = self.engine().count(use_case)
        return {"use_case": use_case, "row_count": rows, "version": version}

    def _templates(self, use_case: str) -> dict[str, Any]:
        return {"use_case": use_case, "default_query": DEFAULT_QUERY,
                "templates": [asdict(template) for template in TEMPLATES[use_case]]}

    def _status_view(self) -> dict[str, Any]:
        engine = self.engine()
        for key in TABLE_NAMES:
            engine.refresh(key)
        loaded = engine.loaded()
        return {"function": "sql", "limits": asdict(self.limits), "running_queries": engine.running(),
                "memory_bytes": engine.memory_bytes(), "arrow_pool": pa.default_memory_pool().backend_name,
                "tables": {key: {"name": name} | loaded[key] for key, name in TABLE_NAMES.items()}}


def _use_case_arg(request: flask.Request) -> str:
    use_case = request.args.get("use_case", "")
    if use_case not in TABLE_NAMES:
        telemetry.SQL_ERRORS.labels("validation").inc()
        reject(400, "invalid use_case", [Problem("use_case", f"must be one of {sorted(TABLE_NAMES)}")])
    return use_case
