"""Render the Grafana dashboards' panels from a real Prometheus into PNG previews (Grafana cannot run here).

    .venv/bin/python infra/observability/preview.py --prometheus http://127.0.0.1:8094 [--minutes 15]
        [--use-case tfd] [--out infra/observability/previews]

Each dashboard of `build.DASHBOARDS` becomes one PNG: its panels in Grafana's layout order, three to a row,
each query over the last `--minutes` (time series as lines, stat and bar-gauge panels as bars of the last
values), legends from the panels' legend formats, the drift annotations as red vertical lines. Same queries
as the dashboards, same Prometheus: a preview of what Grafana shows, not a Grafana rendering.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the non-interactive backend
import requests  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build  # noqa: E402 - the dashboards' description, next to this file

COLUMNS = 3


def _fill(expr: str, use_case: str, minutes: int) -> str:
    return (expr.replace("$use_case", use_case).replace("$__rate_interval", "1m")
            .replace("$__range", f"{minutes}m"))


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def _query_range(prometheus: str, expr: str, minutes: int) -> list[dict[str, Any]]:
    end = time.time()
    answer = requests.get(f"{prometheus}/api/v1/query_range", params={
        "query": expr, "start": end - minutes * 60, "end": end, "step": _step(minutes)}, timeout=30)
    body = answer.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error')}")
    return body["data"]["result"]


def _marks(dashboard: Any, prometheus: str, use_case: str, minutes: int) -> list[datetime]:
    """When the dashboard's annotation query (drift detections) became true."""
    annotations = build.grafana_json(dashboard)["annotations"]["list"]
    moments = sorted(t for a in annotations if "expr" in a
                     for series in _query_range(prometheus, _fill(a["expr"], use_case, minutes), minutes)
                     for t, v in series["values"] if float(v) > 0)
    step = _step(minutes)
    return [datetime.fromtimestamp(t) for i, t in enumerate(moments) if i == 0 or t - moments[i - 1] > 1.5 * step]


def _step(minutes: int) -> int:
    return max(5, minutes * 60 // 120)


def _draw(axis: Any, panel: Any, prometheus: str, use_case: str, minutes: int) -> None:
    axis.set_title(panel.title, fontsize=9, loc="left")
    axis.tick_params(labelsize=7)
    bars: dict[str, float] = {}
    for expr, legend in panel.queries:
        for series in _query_range(prometheus, _fill(expr, use_case, minutes), minutes):
            points = [(datetime.fromtimestamp(t), float(v)) for t, v in series["values"]]
            name = _legend(legend, series["metric"])
            if panel.kind == "timeseries":
                axis.plot([p[0] for p in points], [p[1] for p in points], label=name, linewidth=1)
            elif points:
                bars[name] = points[-1][1]
    if panel.buckets:  # cumulative `le` buckets → the count in each bucket, in bucket order
        bounds = sorted(bars, key=float)
        bars = {f"≤ {b}": bars[b] - (bars[bounds[i - 1]] if i else 0) for i, b in enumerate(bounds)}
    if panel.kind != "timeseries":
        axis.barh(list(bars), list(bars.values()), color="tab:blue")
    elif axis.lines:
        axis.legend(fontsize=6, loc="upper left")
        axis.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%H:%M"))
    if not axis.lines and not bars:
        axis.text(0.5, 0.5, "no data", ha="center", va="center", transform=axis.transAxes, color="grey")
    axis.set_xlabel(panel.unit, fontsize=7)


def render(dashboard: Any, prometheus: str, out: Path, use_case: str = "tfd", minutes: int = 15) -> Path:
    """One dashboard's preview PNG under `out`; returns its path."""
    panels = [panel for _, row in dashboard.rows for panel in row]
    rows = -(-len(panels) // COLUMNS)
    figure, axes = plt.subplots(rows, COLUMNS, figsize=(COLUMNS * 5.2, rows * 2.8), squeeze=False)
    marks = _marks(dashboard, prometheus, use_case, minutes)
    for axis, panel in zip(axes.flat, panels, strict=False):
        _draw(axis, panel, prometheus, use_case, minutes)
        if panel.kind == "timeseries":
            for mark in marks:
                axis.axvline(mark, color="red", linewidth=0.8, alpha=0.6)
    for axis in axes.flat[len(panels):]:
        axis.axis("off")
    suffix = f" — {use_case}" if dashboard.per_use_case else ""
    figure.suptitle(f"{dashboard.title}{suffix} (last {minutes} min; preview rendered from Prometheus)", fontsize=11)
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dashboard.uid}.png"
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:8094")
    parser.add_argument("--minutes", type=int, default=15, help="time range of every panel (default 15)")
    parser.add_argument("--use-case", default="tfd", choices=["tfd", "eta", "ecci"],
                        help="for the per-use-case dashboard (default tfd)")
    parser.add_argument("--out", type=Path, default=build.HERE / "previews", help="folder of the PNGs")
    args = parser.parse_args(argv)
    for dashboard in build.DASHBOARDS:
        print(render(dashboard, args.prometheus.rstrip("/"), args.out, args.use_case, args.minutes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
