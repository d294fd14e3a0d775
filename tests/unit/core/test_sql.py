"""The SQL request contract, limits, JSON values and templates (pure)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from coelho.core.sql import InvalidRequest, SqlLimits, json_value, parse_request
from coelho.core.sql_templates import DEFAULT_QUERY, TEMPLATES, template
from coelho.core.table import TABLE_NAMES

LIMITS = SqlLimits(default_rows=50, max_rows=500, max_query_chars=100)


def test_defaults_and_explicit_limit():
    assert parse_request({"use_case": "eta", "query": "FROM data"}, LIMITS).limit == 50
    assert parse_request({"use_case": "eta", "query": "FROM data", "limit": 500}, LIMITS).limit == 500


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ([], "body", "JSON object"),
        ("SELECT 1", "body", "JSON object"),
        (None, "body", "JSON object"),
        ({"query": "SELECT 1"}, "use_case", "one of"),
        ({"use_case": "TFD", "query": "SELECT 1"}, "use_case", "one of"),
        ({"use_case": "tfd"}, "query", "non-empty"),
        ({"use_case": "tfd", "query": "   "}, "query", "non-empty"),
        ({"use_case": "tfd", "query": 1}, "query", "non-empty"),
        ({"use_case": "tfd", "query": "SELECT 1", "limit": 0}, "limit", "from 1 to 500"),
        ({"use_case": "tfd", "query": "SELECT 1", "limit": 501}, "limit", "from 1 to 500"),
        ({"use_case": "tfd", "query": "SELECT 1", "limit": "10"}, "limit", "integer"),
        ({"use_case": "tfd", "query": "SELECT 1", "limit": True}, "limit", "integer"),
        ({"use_case": "tfd", "query": "SELECT 1", "limit": 1.5}, "limit", "integer"),
        ({"use_case": "tfd", "query": "SELECT 1", "project_name": "x"}, "project_name", "unknown field"),
    ],
)
def test_bad_requests_name_the_field(body, field, says):
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body, LIMITS)
    assert caught.value.status == 400
    [problem] = [p for p in caught.value.problems if p.field == field]
    assert says in problem.message


def test_a_too_long_query_is_413_and_says_how_long():
    with pytest.raises(InvalidRequest) as caught:
        parse_request({"use_case": "tfd", "query": "SELECT 1" + " " * 100}, LIMITS)
    assert caught.value.status == 413
    assert "108 characters long; at most 100" in caught.value.problems[0].message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nan, None), (math.inf, None), (-math.inf, None), (1.25, 1.25), (3, 3), (True, True), (None, None),
        ("x", "x"), (Decimal("2.50"), 2.5), (Decimal("NaN"), None), (date(2026, 3, 2), "2026-03-02"),
        (datetime(2026, 3, 2, 12, tzinfo=UTC), "2026-03-02T12:00:00+00:00"), (b"\x01\xff", "01ff"),
        ([1.0, math.nan], [1.0, None]), ({"a": math.inf}, {"a": None}),
    ],
)
def test_json_values(value, expected):
    assert json_value(value) == expected


def test_every_use_case_has_the_original_templates_and_each_reads_data():
    assert set(TEMPLATES) == set(TABLE_NAMES)
    for key, templates in TEMPLATES.items():
        names = [t.name for t in templates]
        assert names[0] == "Sample Data" and names[-1] == "Row Count" and len(names) == 6, key
        assert all(" data" in t.query for t in templates)
    assert template("tfd", "Sample Data").query == DEFAULT_QUERY
    with pytest.raises(KeyError, match="no template"):
        template("tfd", "Nope")
