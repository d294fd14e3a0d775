"""The Incremental tab: the live model (card, metrics, charts) and predictions from a form.

Every `REFRESH_S` the tab reads the predict function's /status (shared by all tabs, see `live`) and updates
the model card, the metric cards and the charts; the charts start from the learner's MLflow run history
(MLflow's REST API) and grow with each new status. The model selector lists the registered MLflow versions
next to the live model; a chosen version answers the predictions (`?version=N`). The result line carries the
timings of its prediction as `data-call-ms` (the call to the function) and `data-handler-ms` (the whole click
handler), which the ui benchmark reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from coelho_ui import fmt, live
from coelho_ui.client import Reply, functions
from coelho_ui.forms import EventForm
from coelho_ui.results import result_panel
from coelho_ui.usecases import UseCaseView
from coelho_ui.widgets import Banner, ConfusionMatrix, KeyValues, MetricCards, SeriesChart, tagged

__all__ = ["Predictions", "tab", "version_label"]

REFRESH_S = 1.5
LIVE = "live"
CARD = ("Served from", "Model version", "Events applied", "Leader", "Last checkpoint", "Freshness", "MLflow run")


def version_label(row: Mapping[str, Any]) -> str:
    """How a registered version reads in the model selector.

    >>> version_label({"version": 3, "champion": True, "score": 0.61234, "metric": "RollingFBeta",
    ...                "events_applied": 12000, "created_at": "2026-03-02T12:00:00+00:00"})
    'v3 ★ champion · RollingFBeta 0.612 · 12,000 events · 2026-03-02 12:00'
    >>> version_label({"version": 1, "champion": False, "score": 0.5, "metric": "FBeta", "created_at": 1772452800000})
    'v1 · FBeta 0.5 · 2026-03-02 12:00'
    """
    parts = [f"v{row['version']}" + (" ★ champion" if row.get("champion") else "")]
    if row.get("score") is not None:
        parts.append(f"{row.get('metric', 'score')} {fmt.number(row['score'])}")
    if row.get("events_applied") is not None:
        parts.append(f"{fmt.count(row['events_applied'])} events")
    if row.get("created_at"):
        parts.append(fmt.when(row["created_at"]))
    return " · ".join(parts)


class Predictions:
    """A form, a model selector and the answer panel; `batch` asks the batch-predict function instead."""

    def __init__(self, view: UseCaseView, batch: bool = False) -> None:
        self.view = view
        self.batch = batch
        self.api = functions()
        self.count = 0
        self.answer_hooks: list[Callable[[], Any]] = []
        with ui.row().classes("w-full gap-4 items-start no-wrap"):
            with ui.column().classes("w-2/5 min-w-80"):
                with ui.row().classes("w-full items-center no-wrap"):
                    self.model = ui.select({LIVE: self._default_label()}, value=LIVE, label="Model").classes(
                        "grow").mark("model-select")
                    ui.button(icon="refresh", on_click=self.load_versions).props("flat round").tooltip(
                        "Reload the registered versions")
                self.versions_note = ui.label().classes("text-xs text-grey-7").mark("versions-note")
                self.form = EventForm(view.key)
                with ui.row().classes("w-full"):
                    ui.button("Randomise", icon="casino", on_click=self.form.randomise).props("outline").mark(
                        "randomise")
                    tagged(ui.button("Predict", icon="play_arrow", on_click=self.predict), "predict")
                self.problems = ui.label().classes("text-negative text-sm").mark("problems")
            with ui.column().classes("w-3/5 grow") as self.right:
                with ui.card().classes("w-full"):
                    ui.label("Prediction").classes("text-subtitle1 text-bold")
                    self.result = result_panel(view, self.api.settings, batch)
                    self.meta = tagged(ui.label("Fill the form (or Randomise) and Predict.").classes(
                        "text-xs text-grey-7"), "result-meta")
        self.form.randomise()

    def _default_label(self) -> str:
        return "Champion batch model" if self.batch else "Live model (Redis, learning now)"

    async def load_versions(self) -> None:
        """Fill the model selector with the registered versions (champion marked)."""
        reply = await self.api.versions(self.view.key, batch=self.batch)
        rows = reply.data().get("versions", [])
        options: dict[Any, str] = {LIVE: self._default_label()}
        options |= {row["version"]: version_label(row) for row in rows}
        self.model.set_options(options, value=self.model.value if self.model.value in options else LIVE)
        error = reply.error or reply.data().get("error")
        self.versions_note.set_text(f"No registered versions: {error}" if error else
                                    f"{len(rows)} registered version{'s' if len(rows) != 1 else ''}")

    async def predict(self) -> None:
        """Ask the function; show the answer, the problems on their fields, or a notification."""
        started = time.perf_counter()
        event = self.form.values()
        version = None if self.model.value == LIVE else int(self.model.value)
        reply = await self.api.predict(self.view.key, event, version, batch=self.batch)
        self.problems.set_text("")
        self.form.clear_problems()
        if reply.ok:
            self.show(reply, event)
            self.meta.props["data-handler-ms"] = f"{(time.perf_counter() - started) * 1000:.3f}"
        elif reply.status == 422:
            self.form.show_problems(reply.body.get("problems", []) if isinstance(reply.body, dict) else [])
            self.problems.set_text(reply.error or "")
        elif reply.answered:
            self.problems.set_text(reply.error or "")
            ui.notify(reply.error, type="warning", multi_line=True)
        else:
            ui.notify(reply.error, type="negative", multi_line=True)

    def show(self, reply: Reply, event: dict[str, Any]) -> None:
        answer = reply.data()
        self.count += 1
        self.result.show(answer, event)
        self.meta.set_text(f"Prediction {self.count} · {answer.get('model_source', '?')} model, version "
                           f"{answer.get('model_version')} · {reply.elapsed_ms:.1f} ms")
        self.meta.props["data-call-ms"] = f"{reply.elapsed_ms:.3f}"


class LiveModel:
    """The model card, metric cards and charts, refreshed from /status and the MLflow run history."""

    def __init__(self, view: UseCaseView, predictions: Predictions, banner: Banner) -> None:
        self.view = view
        self.predictions = predictions
        self.api = functions()
        self.history_run: str | None = None
        self.banner = banner
        with predictions.right:
            with ui.card().classes("w-full"):
                ui.label("Live model").classes("text-subtitle1 text-bold")
                self.card = KeyValues(CARD)
            self.cards = MetricCards(view.metrics)
            self.matrix = ConfusionMatrix() if view.key == "tfd" else None
            with ui.card().classes("w-full"):
                self.chart = SeriesChart([view.metric(name) for name in view.charted])
                self.chart_note = ui.label().classes("text-xs text-grey-7").mark("chart-note")

    async def refresh(self) -> None:
        """One status poll: card, cards, charts; a banner while the function does not answer."""
        reply = await live.status(self.view.key)
        if not reply.ok:
            self.banner.show(f"{reply.error}. Live figures are paused; retrying every {REFRESH_S:g} s.")
            return
        self.banner.show(None)
        body = reply.data()
        learner = body.get("learner") or {}
        report = learner.get("metrics") or {}
        self.card.update(live.model_card(body, datetime.now(UTC)))
        self.cards.update(report)
        if self.matrix is not None:
            self.matrix.update(report.get("ConfusionMatrix"))
        run_id = (learner.get("mlflow") or {}).get("run_id")
        if run_id and run_id != self.history_run:
            await self.load_history(run_id)
        elif self.history_run is None:
            self.chart_note.set_text("Points since this page opened (the learner has no MLflow run to read "
                                     "history from).")
        if learner.get("events_applied"):
            self.chart.add(int(learner["events_applied"]), report)
        self.predictions.result.status(report)

    async def load_history(self, run_id: str) -> None:
        """Start the charts from the run's logged metrics (step = events applied)."""
        self.history_run = run_id
        names = self.view.charted
        replies = await asyncio.gather(*(self.api.metric_history(run_id, name) for name in names))
        history = {name: [(int(m["step"]), float(m["value"])) for m in reply.data().get("metrics", [])]
                   for name, reply in zip(names, replies, strict=True) if reply.ok}
        self.chart.set_history(history)
        failed = next((reply.error for reply in replies if not reply.ok), None)
        self.chart_note.set_text(f"History of MLflow run {run_id[:12]}, then live points." if not failed else
                                 f"Points since this page opened (no history: {failed}).")


async def tab(view: UseCaseView, shown: Callable[[str], None]) -> None:
    """The Incremental tab of `view`."""
    shown("incremental")
    banner = Banner()
    predictions = Predictions(view)
    model = LiveModel(view, predictions, banner)
    await asyncio.gather(predictions.load_versions(), model.refresh())
    ui.timer(REFRESH_S, model.refresh)
