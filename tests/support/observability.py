"""What the observability tests share: the rules, the dashboards' expressions, the external metric list."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType
from typing import Any

import yaml

from coelho.adapters.prometheus_server import ALERT_RULES
from support import ROOT
from support.promql import fill_grafana_variables

OBSERVABILITY = ROOT / "infra" / "observability"


def builder() -> ModuleType:
    """infra/observability/build.py as a module."""
    return tool("build")


def tool(name: str) -> ModuleType:
    """infra/observability/`name`.py as a module."""
    spec = importlib.util.spec_from_file_location(f"observability_{name}", OBSERVABILITY / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the PrometheusRule."""
    spec = yaml.safe_load(ALERT_RULES.read_text())["spec"]
    return [rule for group in spec["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard_models() -> list[dict[str, Any]]:
    """The committed Grafana dashboards."""
    return [json.loads(path.read_text()) for path in sorted((OBSERVABILITY / "dashboards").glob("*.json"))]


def used_expressions() -> list[str]:
    """Every PromQL expression of the rules and dashboards (Grafana variables filled in)."""
    build = builder()
    exprs = [rule["expr"] for rule in alert_rules()]
    return exprs + [fill_grafana_variables(e) for model in dashboard_models() for e in build.expressions(model)]


def external_metrics() -> set[str]:
    """The names infra/observability/external-metrics.yaml lists (exported by components outside this code)."""
    listed = yaml.safe_load((OBSERVABILITY / "external-metrics.yaml").read_text())
    return {name for entry in listed.values() for name in entry["metrics"]}
