"""The SQL function over real Delta tables: contract, read path, attack corpus and templates."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from statistics import fmean
from typing import Any

import pytest
from deltalake import DeltaTable

from coelho.core.sql_templates import TEMPLATES
from coelho.core.table import TABLE_NAMES
from support import stream, table_rows, write_table

EVENTS = 1500
TIMEOUT_S = 1


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """One Delta table per use case under <data dir>/delta, written in two commits; and its rows."""
    data_dir = tmp_path_factory.mktemp("sql")
    rows = {}
    for key in TABLE_NAMES:
        rows[key] = table_rows(key, stream(key, EVENTS, seed=7))
        write_table(str(data_dir / "delta" / key), key, rows[key][:1000])
        write_table(str(data_dir / "delta" / key), key, rows[key][1000:])
    return data_dir, rows


#: Every test runs twice: tables loaded into DuckDB, and tables past COELHO_SQL_LOAD_MAX_ROWS scanned from their files.
READ_FROM = {"memory": str(EVENTS), "files": str(EVENTS - 1)}


@pytest.fixture(params=list(READ_FROM))
def read_from(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def env(tables, read_from) -> dict[str, str]:
    """Overrides the shared `env`: the SQL function needs no Redis, only the data folder."""
    return {"COELHO_DATA_DIR": str(tables[0]), "COELHO_SQL_TIMEOUT_S": str(TIMEOUT_S),
            "COELHO_SQL_MEMORY_LIMIT": "300MB", "COELHO_SQL_REFRESH_MS": "1",
            "COELHO_SQL_LOAD_MAX_ROWS": READ_FROM[read_from]}


def test_status_says_where_each_table_is_read_from(sql, read_from):
    assert query(sql, "SELECT count(*) FROM data").status_code == 200
    status = sql.get("/status").get_json()
    assert {key: (table["rows"], table["read_from"]) for key, table in status["tables"].items()} == {
        key: (EVENTS, read_from) for key in TABLE_NAMES}
    assert status["memory_bytes"] >= 0
    assert status["arrow_pool"] == "jemalloc"  # its release gives back every scan thread's pages


@pytest.fixture
def sql(client):
    return client("sql")


def query(sql, text: str, use_case: str = "tfd", **extra: Any):
    return sql.post("/", json={"use_case": use_case, "query": text, **extra})


def test_query_contract(sql):
    response = query(sql, "SELECT is_fraud, count(*) AS n FROM data GROUP BY is_fraud ORDER BY is_fraud")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"columns", "rows", "row_count", "truncated", "execution_ms"}
    assert body["columns"] == ["is_fraud", "n"]
    assert sum(n for _, n in body["rows"]) == EVENTS
    assert body["row_count"] == len(body["rows"]) and body["truncated"] is False and body["execution_ms"] > 0


def test_data_is_the_request_use_case_and_all_tables_have_their_names(sql, tables):
    for key, name in TABLE_NAMES.items():
        body = query(sql, f"SELECT (SELECT count(*) FROM data), (SELECT count(*) FROM {name})", key).get_json()
        assert body["rows"] == [[EVENTS, EVENTS]]
    first_ids = {key: rows[0]["ce_id"] for key, rows in tables[1].items()}
    joined = query(sql, "SELECT d.ce_id FROM data d JOIN e_commerce_customer_interactions e USING (ce_id)", "ecci")
    assert len(joined.get_json()["rows"]) == EVENTS
    assert query(sql, f"SELECT ce_id FROM data WHERE ce_id = '{first_ids['eta']}'", "eta").get_json()["rows"]
    assert query(sql, f"SELECT ce_id FROM data WHERE ce_id = '{first_ids['eta']}'", "tfd").get_json()["rows"] == []


def test_default_and_maximum_row_limits(sql):
    body = query(sql, "SELECT * FROM range(20000)").get_json()
    assert body["row_count"] == 10_000 and body["truncated"] is True
    body = query(sql, "SELECT * FROM range(20000) ORDER BY range DESC", limit=3).get_json()
    assert body["rows"] == [[19999], [19998], [19997]] and body["truncated"] is True
    body = query(sql, "SELECT * FROM range(3) ORDER BY 1", limit=3).get_json()
    assert body["rows"] == [[0], [1], [2]] and body["truncated"] is False
    response = query(sql, "SELECT 1", limit=100_001)
    assert response.status_code == 400 and "from 1 to 100000" in response.get_json()["problems"][0]["message"]


def test_a_user_limit_inside_the_query_is_capped_too(sql):
    body = query(sql, "SELECT * FROM (SELECT * FROM range(1000) LIMIT 900) LIMIT 800", limit=5).get_json()
    assert body["row_count"] == 5 and body["truncated"] is True


def test_json_values_nan_timestamps_decimals(sql, tables):
    body = query(sql, "SELECT 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS i, 1.50::DECIMAL(4, 2) AS d, "
                      "TIMESTAMPTZ '2026-03-02 12:00:00+00' AS t, DATE '2026-03-02' AS day, NULL AS z").get_json()
    n, i, d, t, day, z = body["rows"][0]
    assert (n, i, d, z, day) == (None, None, 1.5, None, "2026-03-02")
    assert t == "2026-03-02T12:00:00+00:00"
    body = query(sql, "SELECT min(event_time), max(ingested_at) FROM data").get_json()
    rows = tables[1]["tfd"]
    assert body["rows"] == [[min(r["event_time"] for r in rows).isoformat(), rows[0]["ingested_at"].isoformat()]]


def test_new_commits_are_seen_and_deleted_rows_are_not_read_twice(client, tmp_path, monkeypatch):
    monkeypatch.setenv("COELHO_DATA_DIR", str(tmp_path))
    sql = client("sql")
    response = query(sql, "SELECT count(*) FROM data", "eta")
    assert response.status_code == 404 and "no data yet for eta" in response.get_json()["error"]
    assert sql.get("/count?use_case=eta").status_code == 404
    rows = table_rows("eta", stream("eta", 300, seed=3))
    uri = str(tmp_path / "delta" / "eta")
    write_table(uri, "eta", rows[:100])
    assert query(sql, "SELECT count(*) FROM data", "eta").get_json()["rows"] == [[100]]
    write_table(uri, "eta", rows[100:])
    assert sql.get("/count?use_case=eta").get_json() == {"use_case": "eta", "row_count": 300, "version": 1}
    vehicle = rows[0]["vehicle_type"]
    DeltaTable(uri).delete(f"vehicle_type = '{vehicle}'")  # rewrites files: a parquet glob would read rows twice
    left = sum(row["vehicle_type"] != vehicle for row in rows)
    assert 0 < left < 300
    assert query(sql, "SELECT count(*) FROM data", "eta").get_json()["rows"] == [[left]]
    write_table(uri, "eta", rows[:10], mode="overwrite")
    assert query(sql, "SELECT count(*), count(DISTINCT trip_id) FROM data", "eta").get_json()["rows"] == [[10, 10]]


def test_schema_count_and_templates_routes(sql):
    schema = sql.get("/schema?use_case=ecci").get_json()
    assert schema["table_name"] == "e_commerce_customer_interactions"
    assert schema["names"] == ["data", "e_commerce_customer_interactions"]
    assert schema["row_count"] == EVENTS and schema["version"] == 1
    columns = {c["name"]: c for c in schema["columns"]}
    assert columns["price"] == {"name": "price", "type": "DOUBLE", "nullable": True}
    assert columns["event_time"]["type"] == "TIMESTAMP WITH TIME ZONE" and not columns["event_time"]["nullable"]
    assert sql.get("/count?use_case=tfd").get_json() == {"use_case": "tfd", "row_count": EVENTS, "version": 1}
    templates = sql.get("/templates?use_case=eta").get_json()
    assert templates["default_query"] == "SELECT * FROM data LIMIT 100"
    assert [t["name"] for t in templates["templates"]][1] == "Long Trips"


@pytest.mark.parametrize(
    ("method", "path", "status", "says"),
    [
        ("get", "/", 405, "POST"),
        ("get", "/query", 405, "POST"),
        ("post", "/schema?use_case=tfd", 405, "GET /schema"),
        ("get", "/schema", 400, "invalid use_case"),
        ("get", "/count?use_case=nope", 400, "invalid use_case"),
        ("get", "/templates?use_case=", 400, "invalid use_case"),
        ("get", "/tables", 404, "no route /tables"),
    ],
)
def test_bad_routes(sql, method, path, status, says):
    response = getattr(sql, method)(path)
    assert response.status_code == status
    assert says in response.get_json()["error"]


def test_bad_bodies(sql):
    response = sql.post("/", data="SELECT 1", content_type="text/plain")
    assert response.status_code == 400 and response.get_json()["problems"][0]["field"] == "body"
    response = sql.post("/query", json={"use_case": "x", "query": ""})
    assert response.status_code == 400
    assert {p["field"] for p in response.get_json()["problems"]} == {"use_case", "query"}
    response = sql.post("/", data="x" * 200_000, content_type="application/json")
    assert response.status_code == 413 and "larger" in response.get_json()["error"]


# The attack corpus: (query, status, words the error must contain). Every case runs against tfd; none may change
# anything, read a file or the network, or keep the process busy past the timeout.
FORBIDDEN = (403, "not allowed")
NOT_SELECT = 400, "only a read-only SELECT"
ATTACKS: list[tuple[str, int, str]] = [
    # file and URL readers: parsed as SELECT, refused by enable_external_access=false
    ("SELECT * FROM read_csv('/etc/passwd')", *FORBIDDEN),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", *FORBIDDEN),
    ("SELECT * FROM read_text('/etc/passwd')", *FORBIDDEN),
    ("SELECT * FROM read_blob('/etc/passwd')", *FORBIDDEN),
    ("SELECT * FROM read_json_auto('/etc/passwd')", *FORBIDDEN),
    ("SELECT * FROM read_parquet('/etc/passwd')", *FORBIDDEN),
    ("SELECT * FROM parquet_metadata('/etc/passwd')", *FORBIDDEN),
    ("SELECT * FROM sniff_csv('/etc/passwd')", *FORBIDDEN),
    ("SELECT * FROM glob('/etc/*')", *FORBIDDEN),
    ("SELECT * FROM read_csv(['/etc/hosts', '/etc/passwd'])", *FORBIDDEN),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", *FORBIDDEN),
    ("SELECT * FROM read_csv('s3://lakehouse/delta/x.csv')", *FORBIDDEN),
    ("WITH x AS (SELECT * FROM read_text('/etc/passwd')) SELECT * FROM x", *FORBIDDEN),
    ("SELECT (SELECT count(*) FROM glob('/root/*')) AS n", *FORBIDDEN),
    ("SELECT * FROM query('SELECT * FROM read_text(''/etc/passwd'')')", *FORBIDDEN),
    ("SELECT * FROM '/etc/passwd'", 422, "does not exist"),
    ("SELECT * FROM delta_scan('/tmp')", 422, "not in the catalog"),
    ("SELECT * FROM sqlite_scan('/tmp/x.db', 't')", 422, "not in the catalog"),
    ("SELECT * FROM query('ATTACH ''/tmp/x.db''')", 400, "single SELECT"),
    # other statement types, refused by the parser check before anything runs
    ("COPY (SELECT * FROM data) TO '/tmp/leak.csv'", *NOT_SELECT),
    ("COPY data FROM '/etc/passwd'", *NOT_SELECT),
    ("ATTACH '/tmp/x.db' AS x", *NOT_SELECT),
    ("DETACH memory", *NOT_SELECT),
    ("INSTALL httpfs", *NOT_SELECT),
    ("LOAD httpfs", *NOT_SELECT),
    ("PRAGMA threads=64", *NOT_SELECT),
    ("PRAGMA version", *NOT_SELECT),
    ("SET enable_external_access = true", *NOT_SELECT),
    ("SET lock_configuration = false", *NOT_SELECT),
    ("RESET memory_limit", *NOT_SELECT),
    ("SET VARIABLE x = 1", *NOT_SELECT),
    ("USE system", *NOT_SELECT),
    ("CALL pragma_version()", *NOT_SELECT),
    ("EXPORT DATABASE '/tmp/export'", *NOT_SELECT),
    ("CREATE TABLE x AS SELECT * FROM data", *NOT_SELECT),
    ("CREATE TEMP VIEW data AS SELECT 1", *NOT_SELECT),
    ("CREATE MACRO m(a) AS a", *NOT_SELECT),
    ("DROP TABLE transaction_fraud_detection", *NOT_SELECT),
    ("INSERT INTO transaction_fraud_detection SELECT * FROM data", *NOT_SELECT),
    ("UPDATE data SET amount = 0", *NOT_SELECT),
    ("DELETE FROM transaction_fraud_detection", *NOT_SELECT),
    ("TRUNCATE transaction_fraud_detection", *NOT_SELECT),
    ("ALTER TABLE transaction_fraud_detection DROP COLUMN amount", *NOT_SELECT),
    ("MERGE INTO transaction_fraud_detection t USING data s ON t.ce_id = s.ce_id WHEN MATCHED THEN DELETE",
     *NOT_SELECT),
    ("CHECKPOINT", *NOT_SELECT),
    ("VACUUM", *NOT_SELECT),
    ("EXPLAIN ANALYZE SELECT * FROM data", *NOT_SELECT),
    ("BEGIN TRANSACTION", *NOT_SELECT),
    ("PREPARE p AS SELECT 1", *NOT_SELECT),
    # several statements, also hidden behind comments, strings and look-alikes
    ("SELECT 1; DROP TABLE transaction_fraud_detection", 400, "exactly one statement"),
    ("SELECT 1; SELECT 2", 400, "exactly one statement"),
    ("SELECT 1;\nATTACH '/tmp/x.db' AS x", 400, "exactly one statement"),
    ("/* SELECT 1 */ DROP TABLE transaction_fraud_detection", *NOT_SELECT),
    ("-- SELECT 1\nDELETE FROM transaction_fraud_detection", *NOT_SELECT),
    ("SELECT 1 -- \n; DROP TABLE transaction_fraud_detection", 400, "exactly one statement"),
    ("SELECT 1) UNION ALL (SELECT 2", 400, "not valid SQL"),
    ("SELECT 1 AS x) t; DROP TABLE transaction_fraud_detection; SELECT * FROM (SELECT 1", 400, "not valid SQL"),
    # unicode look-alikes: never a second statement, never a keyword
    ("ＳＥＬＥＣＴ 1", 400, "not valid SQL"),
    ("\u0421ELECT 1", 400, "not valid SQL"),  # Cyrillic Es
    ("SELECT 1\u037e DROP TABLE transaction_fraud_detection", 400, "not valid SQL"),  # Greek question mark
    ("SELECT 1\uff1b DROP TABLE transaction_fraud_detection", 400, "not valid SQL"),  # fullwidth semicolon
    ("DR\u200bOP TABLE transaction_fraud_detection", 400, "not valid SQL"),  # zero-width space
    ("SELECT * FROM read\u2010csv('/etc/passwd')", 422, "does not exist"),  # hyphen look-alike: just a name
    # the process's own Python objects are never visible (no replacement scans)
    ("SELECT * FROM service", 422, "does not exist"),
    ("SELECT * FROM flask", 422, "does not exist"),
    # huge queries
    ("SELECT 1" + " " * 20_000, 413, "characters long; at most 20000"),
    ("SELECT " + "(" * 3000 + "1" + ")" * 3000, 400, "depth"),
    ("SELECT 7 IN (" + ", ".join(map(str, range(3000))) + ")", 200, ""),
    # cartesian and memory bombs: interrupted at the timeout or stopped at the memory limit
    ("SELECT count(*) FROM data a, data b, data c, data d", 408, "timeout"),
    ("SELECT sum(range) FROM range(1000000000000)", 408, "timeout"),
    ("SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range + b.range = -1", 408, "timeout"),
    ("SELECT sum(length(a.ce_id || b.ce_id || c.ce_id)) FROM data a, data b, data c", 408, "timeout"),
    # A memory bomb: its memory limit, or on a busy machine the timeout first; either bound holds.
    ("SELECT list(range) FROM range(10000000000)", (422, 408), ("memory limit", "timeout")),
]


def test_the_corpus_is_big_enough():
    assert len(ATTACKS) >= 40


@pytest.mark.parametrize(
    ("text", "status", "says"), ATTACKS,
    ids=[f"{i:02d}:{a[0][:30]}" for i, a in enumerate(ATTACKS)],
)
def test_attack_is_refused_or_bounded(sql, text, status, says):
    response = query(sql, text)
    body = response.get_json()
    statuses, reasons = (status, says) if isinstance(status, tuple) else ((status,), (says,))
    assert response.status_code in statuses, body
    if response.status_code != 200:
        message = " ".join([body["error"], *(p["message"] for p in body["problems"])])
        assert reasons[statuses.index(response.status_code)] in message, message
    after = query(sql, "SELECT count(*) FROM transaction_fraud_detection").get_json()
    assert after["rows"] == [[EVENTS]]  # still serving, nothing changed
    assert not Path("/tmp/leak.csv").exists()


def test_cross_join_returning_rows_is_bounded_by_the_limit(sql):
    body = query(sql, "SELECT * FROM data a, data b, data c", limit=7).get_json()
    assert body["row_count"] == 7 and body["truncated"] is True


def test_the_configuration_is_locked_without_external_access(sql):
    body = query(sql, "SELECT current_setting('enable_external_access'), current_setting('lock_configuration'), "
                      "current_setting('python_enable_replacements'), current_setting('threads')").get_json()
    assert body["rows"] == [[False, True, False, 2]]


def test_errors_are_counted_by_type(sql):
    query(sql, "PRAGMA version")
    metrics = sql.get("/metrics").get_data(as_text=True)
    assert 'coelho_sql_errors_total{error_type="validation"}' in metrics
    assert "coelho_sql_query_duration_seconds_bucket" in metrics


# Each template's answer computed in Python from the same rows.
def _ids(rows: list[dict[str, Any]], id_field: str) -> list[Any]:
    return [row[id_field] for row in rows]


def _grouped(rows, by, value=None) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        groups[row[by]].append(row[value] if value else row)
    return groups


def _top(counts: dict[Any, int], n: int | None = None) -> list[Any]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))
    return ordered[:n] if n else ordered


def _expected_tfd(name: str, rows: list[dict[str, Any]]) -> list[Any]:
    fraud = [r for r in rows if r["is_fraud"] == 1]
    if name == "Fraud Cases":
        return _ids(sorted(fraud, key=lambda r: (-r["event_time"].timestamp(), r["transaction_id"]))[:100],
                    "transaction_id")
    if name == "High Value":
        high = sorted((r for r in rows if r["amount"] > 1000), key=lambda r: (-r["amount"], r["transaction_id"]))
        return _ids(high[:100], "transaction_id")
    if name == "Fraud by Merchant":
        return [list(kv) for kv in _top(Counter(r["merchant_id"] for r in fraud), 20)]
    groups = _grouped(rows, "transaction_type", "amount")
    return [[key, count, fmean(groups[key])] for key, count in _top({k: len(v) for k, v in groups.items()})]


def _expected_eta(name: str, rows: list[dict[str, Any]]) -> list[Any]:
    if name == "Long Trips":
        long = sorted((r for r in rows if r["estimated_distance_km"] > 50),
                      key=lambda r: (-r["estimated_distance_km"], r["trip_id"]))
        return _ids(long[:100], "trip_id")
    by, value, limit = {"Weather Impact": ("weather", "simulated_actual_travel_time_seconds", None),
                        "Driver Performance": ("driver_id", "driver_rating", 20),
                        "Vehicle Types": ("vehicle_type", "estimated_distance_km", None)}[name]
    groups = _grouped(rows, by, value)
    return [[key, count, fmean(groups[key])] for key, count in _top({k: len(v) for k, v in groups.items()}, limit)]


def _expected_ecci(name: str, rows: list[dict[str, Any]]) -> list[Any]:
    if name == "Purchases":
        bought = sorted((r for r in rows if r["event_type"] == "purchase"),
                        key=lambda r: (-r["event_time"].timestamp(), r["event_id"]))
        return _ids(bought[:100], "event_id")
    if name == "By Category":
        groups = _grouped(rows, "product_category")
        return [[key, count, _mean_or_none([r["price"] for r in groups[key] if r["price"] is not None])]
                for key, count in _top({k: len(v) for k, v in groups.items()})]
    if name == "Event Types":
        return [list(kv) for kv in _top(Counter(r["event_type"] for r in rows))]
    products = _grouped([r for r in rows if r["product_id"] is not None], "product_id")
    views = {k: sum(r["event_type"] == "page_view" for r in v) for k, v in products.items()}
    return [[key, count, sum(r["event_type"] == "purchase" for r in products[key])] for key, count in _top(views, 20)]


def _mean_or_none(values: list[float]) -> float | None:
    return fmean(values) if values else None


EXPECTED: dict[str, Callable[[str, list[dict[str, Any]]], list[Any]]] = {
    "tfd": _expected_tfd, "eta": _expected_eta, "ecci": _expected_ecci,
}
ID_FIELD = {"tfd": "transaction_id", "eta": "trip_id", "ecci": "event_id"}


@pytest.mark.parametrize(("key", "name"), [(key, t.name) for key, ts in TEMPLATES.items() for t in ts])
def test_templates_match_python(sql, tables, key, name):
    rows = tables[1][key]
    [text] = [t.query for t in TEMPLATES[key] if t.name == name]
    response = query(sql, text, key)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    if name == "Row Count":
        assert body["rows"] == [[EVENTS]]
    elif name == "Sample Data":
        assert body["row_count"] == 100 and body["columns"] == list(rows[0])
    elif text.startswith("SELECT * "):
        got = [row[body["columns"].index(ID_FIELD[key])] for row in body["rows"]]
        assert got == EXPECTED[key](name, rows)
    else:
        expected = EXPECTED[key](name, rows)
        assert expected, f"{name}: the seeded events give no rows to compare"
        assert body["rows"] == [pytest.approx(row) if None not in row else row for row in expected]
