"""PromQL helpers of the observability tests: the metric names an expression reads, Grafana variables filled in.

Syntax is promtool's business (the tests run `promtool check rules`); this only has to find the metric
names of valid expressions: it drops strings, label matchers, ranges and grouping-label lists, then keeps
the identifiers that are neither functions, aggregations nor keywords.

>>> sorted(metric_names('sum by (le, use_case) (rate(a_bucket{x="y{z}"}[5m])) / ignoring(le) b offset 5m'))
['a_bucket', 'b']
>>> metric_names('histogram_quantile(0.99, sum without (job) (rate(c_total[1m]))) > bool 3e2')
{'c_total'}
>>> fill_grafana_variables('rate(x{use_case="$use_case"}[$__rate_interval])')
'rate(x{use_case="tfd"}[1m])'
"""

from __future__ import annotations

import re

__all__ = ["fill_grafana_variables", "metric_names"]

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_NOT_METRICS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "inf", "nan", "atan2", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
})
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "30s", "$use_case": "tfd"}


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _NOT_METRICS}


def fill_grafana_variables(expr: str) -> str:
    """`expr` with the Grafana variables the dashboards use replaced by plain values."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr
