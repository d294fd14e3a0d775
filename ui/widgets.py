"""The UI's building blocks: metric cards, live charts, the fraud gauge, the trip map, cluster charts, banners.

Each widget is created inside the current NiceGUI context and updated through its methods; charts are ECharts
options (`ui.echart`, canvas) and the map is Leaflet (`ui.leaflet`, canvas renderer, tiles only when a tile URL
is configured), so nothing needs the network but the UI itself.

Examples
--------
>>> gauge_options(0.42)["series"][0]["data"]
[{'value': 42.0, 'name': 'fraud probability'}]
>>> bars([("0", 12), ("1", 30)], highlight="1")["series"][0]["data"][1]
{'value': 30, 'itemStyle': {'color': '#ea580c'}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from nicegui import ui

from coelho_ui import fmt
from coelho_ui.usecases import MetricView

__all__ = ["Banner", "ClusterView", "ConfusionMatrix", "KeyValues", "MetricCards", "SeriesChart", "TripMap", "bars",
           "gauge_options", "tagged"]

MUTED = "#888888"
HIGHLIGHT = "#ea580c"
PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#dc2626"]


E = TypeVar("E", bound=ui.element)


def tagged(element: E, name: str) -> E:
    """Mark `element` for the User fixture's `find(marker=)` and the browser's `[data-testid=...]`."""
    element.props(f'data-testid="{name}"')
    return element.mark(name)


def _axis() -> dict[str, Any]:
    return {"axisLabel": {"color": MUTED}, "nameTextStyle": {"color": MUTED},
            "splitLine": {"lineStyle": {"color": "rgba(128,128,128,0.2)"}}}


def gauge_options(probability: float | None) -> dict[str, Any]:
    """ECharts options of the fraud gauge: green up to 30 %, amber to 70 %, red above."""
    value = round((probability or 0.0) * 100, 1)
    return {
        "backgroundColor": "transparent",
        "series": [{
            "type": "gauge", "min": 0, "max": 100, "startAngle": 200, "endAngle": -20, "radius": "95%",
            "axisLine": {"lineStyle": {"width": 16, "color": [[0.3, "#16a34a"], [0.7, "#eab308"], [1, "#dc2626"]]}},
            "pointer": {"itemStyle": {"color": "auto"}, "width": 5},
            "axisTick": {"distance": -16, "length": 6, "lineStyle": {"color": "#fff"}},
            "splitLine": {"distance": -16, "length": 16, "lineStyle": {"color": "#fff", "width": 2}},
            "axisLabel": {"distance": 20, "color": MUTED, "fontSize": 10},
            "title": {"offsetCenter": [0, "75%"], "color": MUTED, "fontSize": 12},
            "detail": {"valueAnimation": True, "formatter": "{value} %", "fontSize": 22, "offsetCenter": [0, "40%"],
                       "color": "inherit"},
            "data": [{"value": value, "name": "fraud probability"}],
        }],
    }


def bars(items: Sequence[tuple[str, float]], highlight: str | None = None, name: str = "") -> dict[str, Any]:
    """ECharts options of a bar chart; the bar named `highlight` stands out."""
    return {
        "backgroundColor": "transparent", "animation": False,
        "grid": {"left": 48, "right": 12, "top": 24, "bottom": 48},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [label for label, _ in items], "name": name,
                  "axisLabel": {"color": MUTED, "rotate": 30 if len(items) > 6 else 0}},
        "yAxis": {"type": "value", **_axis()},
        "series": [{"type": "bar", "data": [
            {"value": v, "itemStyle": {"color": HIGHLIGHT}} if label == highlight else v for label, v in items]}],
    }


class MetricCards:
    """One small card per metric: label, value in its unit, the metric's meaning as a tooltip."""

    def __init__(self, metrics: Sequence[MetricView]) -> None:
        self.values: dict[str, ui.label] = {}
        with ui.grid(columns=4).classes("w-full gap-2"):
            for metric in metrics:
                with ui.card().tight().classes("p-2 items-start"):
                    ui.label(metric.label).classes("text-xs text-grey-7")
                    self.values[metric.name] = ui.label(fmt.DASH).classes("text-lg font-medium").mark(
                        f"metric-{metric.name}")
                    if metric.help:
                        ui.tooltip(metric.help)
        self.units = {m.name: m.unit for m in metrics}

    def update(self, report: Mapping[str, Any]) -> None:
        for name, label in self.values.items():
            label.set_text(fmt.value(report.get(name), self.units[name]))


class SeriesChart:
    """Metric series against events applied: history from MLflow, then a point per new /status."""

    def __init__(self, metrics: Sequence[MetricView], height: str = "260px") -> None:
        self.metrics = list(metrics)
        self.last_step: int | None = None
        self.chart = ui.echart({
            "backgroundColor": "transparent", "animation": False, "color": PALETTE,
            "grid": {"left": 56, "right": 24, "top": 48, "bottom": 44},
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 0, "data": [m.label for m in self.metrics], "textStyle": {"color": MUTED}},
            "xAxis": {"type": "value", "name": "events", "nameLocation": "middle", "nameGap": 26, "min": "dataMin",
                      **_axis()},
            "yAxis": {"type": "value", "scale": True,
                      "name": "seconds" if self.metrics and self.metrics[0].unit == "s" else "", **_axis()},
            "series": [{"name": m.label, "type": "line", "showSymbol": False, "data": []} for m in self.metrics],
        }).classes("w-full").style(f"height: {height}")
        tagged(self.chart, "series-chart")

    def set_history(self, history: Mapping[str, Iterable[tuple[int, float]]]) -> None:
        """Replace the series with `history` (metric name → (step, value) points)."""
        for series, metric in zip(self.chart.options["series"], self.metrics, strict=True):
            series["data"] = [[step, value] for step, value in sorted(history.get(metric.name, ()))]
        steps = [s["data"][-1][0] for s in self.chart.options["series"] if s["data"]]
        self.last_step = max(steps) if steps else None
        self.chart.update()

    def add(self, step: int, report: Mapping[str, Any]) -> None:
        """Append the values of `report` at `step` (events applied) when it is new."""
        if self.last_step is not None and step <= self.last_step:
            return
        for series, metric in zip(self.chart.options["series"], self.metrics, strict=True):
            value = report.get(metric.name)
            if isinstance(value, int | float):
                series["data"].append([step, value])
        self.last_step = step
        self.chart.update()


class ConfusionMatrix:
    """TFD's prequential confusion matrix: actual class by row, predicted class by column."""

    CELLS = (("tn", "fp"), ("fn", "tp"))

    def __init__(self) -> None:
        self.cells: dict[str, ui.label] = {}
        with ui.card().classes("p-2"):
            ui.label("Confusion matrix (every event, before learning it)").classes("text-xs text-grey-7")
            with ui.grid(columns=3).classes("gap-x-4 gap-y-1 text-sm items-center"):
                for text in ("", "predicted legitimate", "predicted fraud"):
                    ui.label(text).classes("text-grey-7")
                for actual, row in zip(("legitimate", "fraud"), self.CELLS, strict=True):
                    ui.label(f"actual {actual}").classes("text-grey-7")
                    for cell in row:
                        self.cells[cell] = tagged(ui.label(fmt.DASH).classes("text-right font-medium"), f"cm-{cell}")

    def update(self, counts: Mapping[str, Any] | None) -> None:
        for cell, label in self.cells.items():
            label.set_text(fmt.count((counts or {}).get(cell)))


class KeyValues:
    """A two-column list of named values (the model card)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.values: dict[str, ui.label] = {}
        with ui.grid(columns="auto 1fr").classes("gap-x-4 gap-y-0 text-sm"):
            for name in names:
                ui.label(name).classes("text-grey-7")
                self.values[name] = ui.label(fmt.DASH).mark(f"card-{name}")

    def update(self, values: Mapping[str, str]) -> None:
        for name, text in values.items():
            self.values[name].set_text(text)


class Banner:
    """A warning strip shown while something is unavailable."""

    def __init__(self) -> None:
        with ui.row().classes("w-full items-center gap-2 p-2 rounded bg-red-1 text-red-10").mark("banner") as self.row:
            ui.icon("cloud_off")
            self.text = tagged(ui.label(), "banner-text")
        self.row.set_visibility(False)

    def show(self, text: str | None) -> None:
        """Show `text`, or hide the banner when None."""
        self.row.set_visibility(text is not None)
        if text is not None:
            self.text.set_text(text)


class TripMap:
    """Origin, destination and the straight line between them on a Leaflet map (canvas renderer)."""

    def __init__(self, tile_url: str | None) -> None:
        self.map = ui.leaflet(center=(29.76, -95.37), zoom=10,
                              options={"preferCanvas": True, "attributionControl": tile_url is not None})
        tagged(self.map.classes("w-full").style("height: 320px"), "trip-map")
        self.map.clear_layers()  # no default OpenStreetMap layer: tiles only from the configured URL
        if tile_url:
            self.map.tile_layer(url_template=tile_url, options={
                "maxZoom": 19, "attribution": "&copy; OpenStreetMap contributors"})
        self.route: list[Any] = []

    def show(self, origin: tuple[float, float], destination: tuple[float, float]) -> None:
        for layer in self.route:
            self.map.remove_layer(layer)
        line = {"color": "#1d4ed8", "weight": 3, "dashArray": "6 6"}
        self.route = [
            self.map.generic_layer(name="polyline", args=[[list(origin), list(destination)], line]),
            self.map.generic_layer(name="circleMarker", args=[list(origin), {
                "radius": 9, "color": "#166534", "fillColor": "#22c55e", "fillOpacity": 0.9}]),
            self.map.generic_layer(name="circleMarker", args=[list(destination), {
                "radius": 9, "color": "#991b1b", "fillColor": "#ef4444", "fillOpacity": 0.9}]),
        ]
        self.map.run_map_method("fitBounds", [list(origin), list(destination)], {"padding": [40, 40]})


class ClusterView:
    """The predicted cluster among all clusters' sizes, and one feature's distribution inside that cluster."""

    def __init__(self, features: Sequence[str]) -> None:
        self.cluster: str | None = None
        self.report: Mapping[str, Any] = {}
        ui.label("Samples per cluster").classes("text-sm text-grey-7")
        self.sizes = tagged(ui.echart(bars([])).classes("w-full").style("height: 220px"), "cluster-sizes")
        self.feature = ui.select(list(features), value=features[0], label="Feature in the predicted cluster",
                                 on_change=self._draw).classes("w-64").mark("cluster-feature")
        self.distribution = tagged(ui.echart(bars([])).classes("w-full").style("height: 220px"),
                                   "cluster-feature-chart")

    def update(self, report: Mapping[str, Any], cluster: int | None = None) -> None:
        """Redraw from the learner's metric report; `cluster` marks a prediction."""
        self.report = report
        if cluster is not None:
            self.cluster = str(cluster)
        self._draw()

    def _draw(self) -> None:
        sizes = self.report.get("samples_per_cluster") or {}
        self.sizes.options.update(bars(sorted(sizes.items(), key=lambda kv: int(kv[0])), self.cluster, "cluster"))
        counts = (self.report.get("cluster_feature_counts") or {}).get(self.cluster or "", {})
        values = counts.get(self.feature.value) or {}
        self.distribution.options.update(bars(sorted(values.items(), key=lambda kv: -kv[1]), name=self.feature.value))
        self.sizes.update()
        self.distribution.update()
