"""infra/observability: rules proven with promtool, dashboards that parse, generated files in sync, a runbook per alert.

promtool comes from Debian's prometheus package, unpacked into the cache on first use
(`coelho.adapters.prometheus_server`). Which metric names exist is checked against real processes in
tests/integration/test_observability.py; here, that every name is at least accounted for.
"""

from __future__ import annotations

import doctest
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from coelho.adapters.prometheus_server import promtool, write_rule_file
from support import ROOT, promql
from support.observability import (
    OBSERVABILITY,
    alert_rules,
    builder,
    dashboard_models,
    external_metrics,
    used_expressions,
)

RULE_TESTS = OBSERVABILITY / "rules" / "tests" / "coelho-alerts.test.yaml"
SEVERITIES = {"critical", "warning", "info"}
build = builder()


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool()), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_promql_helper_examples() -> None:
    assert doctest.testmod(promql).failed == 0


def test_generated_files_are_up_to_date() -> None:
    assert build.main(["--check"]) == 0, "run: .venv/bin/python infra/observability/build.py"


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    rules = write_rule_file(tmp_path / "coelho-alerts.rules.yaml")
    checked = _promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_every_alert_fires_when_it_should_and_not_otherwise(tmp_path: Path) -> None:
    write_rule_file(tmp_path / "coelho-alerts.rules.yaml")
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = _promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for rule in alert_rules():
        outcomes = [bool(case["exp_alerts"]) for case in cases if case["alertname"] == rule["alert"]]
        assert True in outcomes and False in outcomes, f"{rule['alert']}: needs a firing and a silent case"


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    readme = (ROOT / "README.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in readme.splitlines() if line.startswith("#")}
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        assert annotations["runbook_url"] == f"README.md#{rule['alert'].lower()}", rule["alert"]
        assert rule["alert"].lower() in anchors, f"README has no section {rule['alert']}"


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    models = dashboard_models()
    assert {m["uid"] for m in models} == {"coelho-overview", "coelho-online-learning", "coelho-functions",
                                          "coelho-kafka", "coelho-state-storage", "coelho-batch-training"}
    exprs = [promql.fill_grafana_variables(e) for model in models for e in build.expressions(model)]
    as_rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": expr} for i, expr in enumerate(exprs)]}]}
    path = tmp_path / "dashboards.rules.yaml"
    path.write_text(yaml.safe_dump(as_rules))
    checked = _promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboards_are_provisioned_by_configmaps_for_the_grafana_sidecar() -> None:
    documents = list(yaml.safe_load_all((OBSERVABILITY / "grafana-dashboards.yaml").read_text()))
    by_uid = {model["uid"]: model for model in dashboard_models()}
    assert len(documents) == len(by_uid)
    for document in documents:
        assert document["kind"] == "ConfigMap" and document["metadata"]["labels"]["grafana_dashboard"] == "1"
        [(name, text)] = document["data"].items()
        assert json.loads(text) == by_uid[name.removesuffix(".json")]


def test_the_podmonitors_scrape_every_function_and_producer_with_the_rules_labels() -> None:
    functions, producers, lag = yaml.safe_load_all((OBSERVABILITY / "podmonitors.yaml").read_text())
    own, queue_proxy = functions["spec"]["podMetricsEndpoints"]
    assert [(e["port"], e["path"]) for e in (own, queue_proxy)] == [("user-port", "/metrics"),
                                                                   ("http-usermetric", "/metrics")]
    assert {r["targetLabel"] for r in own["relabelings"]} == {"service", "role"}
    [producer] = producers["spec"]["podMetricsEndpoints"]
    assert {r["targetLabel"] for r in producer["relabelings"]} == {"service", "role"}
    assert lag["metadata"]["namespace"] == "kafka"


@pytest.mark.parametrize("name", ["up", "kafka_consumergroup_lag", "coelho_training_runs_total"])
def test_external_names_are_listed_with_their_source(name: str) -> None:
    assert name in external_metrics()


def test_every_used_name_is_a_coelho_metric_or_listed_as_external() -> None:
    used = {name for expr in used_expressions() for name in promql.metric_names(expr)}
    unaccounted = {name for name in used - external_metrics() if not name.startswith(("coelho_", "kafka_producer_",
                                                                                       "process_"))}
    assert not unaccounted, f"used but neither exported by the code nor listed in external-metrics.yaml: {unaccounted}"
