"""A prediction as each use case shows it: TFD a gauge and the decision, ETA a map and the time, ECCI the cluster.

The Incremental and Batch tabs show their answers with the same panels (`result_panel`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nicegui import ui

from coelho.config import Settings
from coelho_ui import fmt
from coelho_ui.usecases import UseCaseView
from coelho_ui.widgets import ClusterView, TripMap, gauge_options, tagged

__all__ = ["Result", "result_panel", "tile_url"]


def tile_url(settings: Settings) -> str | None:
    """The map tile URL, None when switched off (COELHO_UI_TILE_URL=off)."""
    url = settings.ui_tile_url.strip()
    return None if url.lower() in ("off", "none", "") else url


class Result:
    """The answer panel; `show` draws one prediction, `status` the learner's latest figures (ECCI)."""

    def show(self, answer: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def status(self, report: Mapping[str, Any]) -> None:
        """Nothing to show from the status by default."""


class FraudResult(Result):
    def __init__(self) -> None:
        with ui.row().classes("w-full items-center no-wrap"):
            self.gauge = tagged(ui.echart(gauge_options(None)).classes("w-64").style("height: 220px"), "fraud-gauge")
            with ui.column().classes("gap-1"):
                self.decision = ui.label(fmt.DASH).classes("text-h5").mark("decision")
                ui.label("Green below 30 %, amber to 70 %, red above; the decision threshold is 50 %.").classes(
                    "text-xs text-grey-7")

    def show(self, answer: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        probability = float(answer["fraud_probability"])
        self.gauge.options["series"][0]["data"][0]["value"] = round(probability * 100, 1)
        self.gauge.update()
        fraud = answer["prediction"] == 1
        self.decision.set_text(f"{'Fraud' if fraud else 'Legitimate'} ({fmt.percent(probability)})")
        self.decision.classes(replace="text-h5 " + ("text-negative" if fraud else "text-positive"))


class TripResult(Result):
    def __init__(self, settings: Settings) -> None:
        with ui.row().classes("items-baseline gap-3"):
            self.eta = ui.label(fmt.DASH).classes("text-h4").mark("eta")
            self.detail = ui.label().classes("text-grey-7")
        tiles = tile_url(settings)
        self.map = TripMap(tiles)
        if tiles is None:
            ui.label("Map tiles are off (COELHO_UI_TILE_URL): origin (green), destination (red) and the straight "
                     "line only.").classes("text-xs text-grey-7")

    def show(self, answer: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        seconds = float(answer["eta_seconds"])
        self.eta.set_text(fmt.duration(seconds))
        self.detail.set_text(f"{fmt.count(seconds)} s for {fmt.number(event.get('estimated_distance_km'))} km")
        origin, destination = event["origin"], event["destination"]
        self.map.show((origin["lat"], origin["lon"]), (destination["lat"], destination["lon"]))


class ClusterResult(Result):
    """The cluster; with the online model's cluster sizes and feature counts (`charts`, from its status)."""

    def __init__(self, view: UseCaseView, charts: bool = True) -> None:
        self.label = ui.label(fmt.DASH).classes("text-h4").mark("cluster")
        self.clusters = ClusterView(view.counted) if charts else None
        if not charts:
            ui.label("The batch model's clusters (sizes, centres) are in its run's diagnostics above.").classes(
                "text-xs text-grey-7")

    def show(self, answer: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        self.label.set_text(f"Cluster {answer['cluster']}")
        if self.clusters is not None:
            self.clusters.update(self.clusters.report, int(answer["cluster"]))

    def status(self, report: Mapping[str, Any]) -> None:
        if self.clusters is not None:
            self.clusters.update(report)


def result_panel(view: UseCaseView, settings: Settings, batch: bool = False) -> Result:
    """The answer panel of `view`'s use case, created in the current context (`batch`: of the batch model)."""
    if view.key == "tfd":
        return FraudResult()
    if view.key == "eta":
        return TripResult(settings)
    return ClusterResult(view, charts=not batch)
