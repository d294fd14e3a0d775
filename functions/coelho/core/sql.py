"""The SQL function's request contract and limits, and JSON-safe result values (no engine here).

A request is `{"use_case", "query", "limit"}`; `limit` is optional (default `SqlLimits.default_rows`)
and at most `SqlLimits.max_rows`. Every problem is reported at once, with the field it concerns.

Examples
--------
>>> limits = SqlLimits(default_rows=100, max_rows=1000)
>>> parse_request({"use_case": "tfd", "query": "SELECT 1"}, limits)
SqlRequest(use_case='tfd', query='SELECT 1', limit=100)
>>> try:
...     parse_request({"use_case": "x", "query": "", "limit": 5000}, limits)
... except InvalidRequest as exc:
...     exc.status, [p.field for p in exc.problems]
(400, ['use_case', 'query', 'limit'])
>>> json_value(float("nan")), json_value(Decimal("1.50")), json_value(datetime(2026, 1, 1, 12))
(None, 1.5, '2026-01-01T12:00:00')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from coelho.core.schema import Problem
from coelho.core.table import TABLE_NAMES

__all__ = ["InvalidRequest", "SqlLimits", "SqlRequest", "json_value", "parse_request"]

@dataclass(frozen=True)
class SqlLimits:
    """Bounds every query runs under."""

    default_rows: int = 10_000  # rows returned when the request names no limit
    max_rows: int = 100_000  # the largest limit a request may ask for
    max_query_chars: int = 20_000  # longer query texts are refused before parsing
    max_result_bytes: int = 64 * 1024 * 1024  # Arrow size of a result; larger results are truncated
    timeout_seconds: float = 10.0  # a query still running after this is interrupted
    memory_limit: str = "1GB"  # DuckDB memory_limit: the loaded tables plus every running query
    threads: int = 2  # DuckDB threads
    load_max_rows: int = 1_000_000  # larger tables are scanned from their Delta files instead of held in memory


@dataclass(frozen=True)
class SqlRequest:
    """A validated query request."""

    use_case: str
    query: str
    limit: int


class InvalidRequest(ValueError):
    """A request the SQL function refuses before running anything (every problem at once)."""

    def __init__(self, problems: list[Problem], status: int = 400) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems
        self.status = status


def parse_request(body: Any, limits: SqlLimits) -> SqlRequest:
    """Validate a decoded JSON body; raises InvalidRequest (413 when only the query is too long)."""
    if not isinstance(body, Mapping):
        raise InvalidRequest([Problem("body", 'must be a JSON object {"use_case", "query", "limit"}')])
    problems: list[Problem] = []
    use_case = body.get("use_case")
    if use_case not in TABLE_NAMES:
        problems.append(Problem("use_case", f"must be one of {sorted(TABLE_NAMES)}"))
    query = body.get("query")
    too_long = False
    if not isinstance(query, str) or not query.strip():
        problems.append(Problem("query", "must be a non-empty string"))
    elif len(query) > limits.max_query_chars:
        too_long = True
        problems.append(Problem("query", f"is {len(query)} characters long; at most {limits.max_query_chars}"))
    limit = body.get("limit", limits.default_rows)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= limits.max_rows:
        problems.append(Problem("limit", f"must be an integer from 1 to {limits.max_rows}"))
    unknown = sorted(set(body) - {"use_case", "query", "limit"})
    if unknown:
        problems.append(Problem(unknown[0], f"unknown field; expected use_case, query and limit (got {unknown})"))
    if problems:
        raise InvalidRequest(problems, 413 if too_long and len(problems) == 1 else 400)
    return SqlRequest(use_case, query, limit)


def json_value(value: Any) -> Any:
    """A result cell as JSON: NaN/inf → null, instants and dates → ISO text, Decimal → float, bytes → hex."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return json_value(float(value))
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # named tuples, e.g. Arrow's month-day-nano intervals
        return json_value(value._asdict())
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if value is None or isinstance(value, str | int):
        return value
    return str(value)  # anything else (intervals, ...) as its text
