"""SQL function: read-only DuckDB queries over the three use cases' Delta tables."""

from __future__ import annotations

import flask
import functions_framework

from coelho.runtime.sql_service import SqlService

service = SqlService.mount(flask.current_app)


@functions_framework.http
def sql(request: flask.Request) -> flask.Response:
    """POST {"use_case", "query", "limit"} → rows; GET /schema, /count, /templates?use_case=."""
    return service.handle(request)
