"""The Batch tab: train and stop, live progress, runs, diagnostics, online-vs-batch comparison, batch predictions.

It speaks the `train` and `<uc>-batch-predict` functions' HTTP API. When `train` does not answer (not
deployed, or down) the tab says so and shows nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nicegui import ui

from coelho_ui import fmt
from coelho_ui.client import Reply, functions
from coelho_ui.pages.incremental import Predictions
from coelho_ui.usecases import UseCaseView
from coelho_ui.widgets import tagged

__all__ = ["comparison_note", "not_deployed", "run_row", "tab"]

REFRESH_S = 1.5
RUN_METRICS = 5
RUN_COLUMNS = [
    {"name": "champion", "label": "", "field": "champion", "align": "center"},
    {"name": "run", "label": "Run", "field": "run", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "started", "label": "Started", "field": "started", "align": "left"},
    {"name": "metrics", "label": "Test metrics", "field": "metrics", "align": "left"},
    {"name": "version", "label": "Version", "field": "version"},
    {"name": "rows", "label": "Rows (train / validation / test)", "field": "rows", "align": "left"},
    {"name": "test_range", "label": "Test period", "field": "test_range", "align": "left"},
]
COMPARISON_COLUMNS = [
    {"name": "metric", "label": "Metric", "field": "metric", "align": "left"},
    {"name": "batch", "label": "Batch model", "field": "batch"},
    {"name": "online_frozen", "label": "Online model, frozen", "field": "online_frozen"},
    {"name": "online_prequential", "label": "Online model, prequential", "field": "online_prequential"},
]


def run_row(run: Mapping[str, Any], first: str = "") -> dict[str, Any]:
    """A run of GET /runs as a row of the runs table: `first` (the champion metric), then the others, at most
    `RUN_METRICS`.

    >>> run_row({"run_id": "abcdef0123456789", "status": "FINISHED", "start_time": "2026-03-02T12:00:00+00:00",
    ...          "metrics": {"ROCAUC": 0.91234, "Accuracy": 0.99, "FBeta": 0.5}, "champion": True, "version": 2,
    ...          "rows": {"train": 8000, "validation": 1000, "test": 1000},
    ...          "time_range": {"test": ["2026-03-01T00:00:00+00:00", "2026-03-02T00:00:00+00:00"]}}, "FBeta")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'run_id': 'abcdef0123456789', 'champion': '★', 'run': 'abcdef012345', 'status': 'FINISHED',
     'started': '2026-03-02 12:00', 'metrics': 'FBeta 0.5 · Accuracy 0.99 · ROCAUC 0.912', 'version': 2,
     'rows': '8,000 / 1,000 / 1,000', 'test_range': '2026-03-01 00:00 → 2026-03-02 00:00'}
    """
    rows = run.get("rows") or {}
    test = (run.get("time_range") or {}).get("test") or []
    metrics = run.get("metrics") or {}
    shown = sorted(metrics, key=lambda name: (name != first, name))[:RUN_METRICS]
    return {
        "run_id": run.get("run_id"),
        "champion": "★" if run.get("champion") else "",
        "run": str(run.get("run_id", ""))[:12],
        "status": run.get("status", fmt.DASH),
        "started": fmt.when(run.get("start_time")),
        "metrics": " · ".join(f"{name} {fmt.number(metrics[name])}" for name in shown) or fmt.DASH,
        "version": run.get("version") if run.get("version") is not None else fmt.DASH,
        "rows": " / ".join(fmt.count(rows.get(part)) for part in ("train", "validation", "test")),
        "test_range": " → ".join(fmt.when(t) for t in test[:2]) if test else fmt.DASH,
    }


def comparison_note(body: Mapping[str, Any]) -> str:
    """What the comparison of GET /comparison compares: the run's test rows and which online version (or why none).

    >>> comparison_note({"run_id": "3efaa1bb97ec4fadb1c5", "test_rows": 1178, "online": {"model": "coelho-tfd",
    ...     "version": 3, "events_applied": 1200, "choice": "the champion", "reason": None}})
    'Run 3efaa1bb97ec, its first 1,178 test rows. Online: coelho-tfd v3 (1,200 events), the champion.'
    >>> comparison_note({"run_id": "r1", "test_rows": 500, "online": {"reason": "no version before the test block"}})
    'Run r1, its first 500 test rows. No online columns: no version before the test block.'
    """
    online = body.get("online") or {}
    rows = f"Run {str(body.get('run_id', ''))[:12]}, its first {fmt.count(body.get('test_rows'))} test rows."
    if online.get("version") is None:
        return f"{rows} No online columns: {online.get('reason') or 'no online model'}."
    return (f"{rows} Online: {online.get('model')} v{online['version']} ({fmt.count(online.get('events_applied'))} "
            f"events), {online.get('choice')}.")


def _comparison_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"metric": r.get("metric"), **{k: fmt.number(r.get(k)) for k in ("batch", "online_frozen",
                                                                               "online_prequential")}} for r in rows]


class Batch:
    """The tab's state: training controls and progress, runs, diagnostics, comparison."""

    def __init__(self, view: UseCaseView) -> None:
        self.view = view
        self.api = functions()
        self.state: str | None = None
        self.log_lines: list[str] = []
        with ui.row().classes("w-full gap-4 items-start no-wrap"):
            with ui.card().classes("w-2/5 min-w-80"):
                self._controls()
            with ui.column().classes("w-3/5 grow"):
                with ui.card().classes("w-full"):
                    ui.label("Runs").classes("text-subtitle1 text-bold")
                    self.runs = tagged(ui.table(columns=RUN_COLUMNS, rows=[], row_key="run_id").classes(
                        "w-full").props("dense flat"), "runs")
                with ui.card().classes("w-full"):
                    self._diagnostics()
                with ui.card().classes("w-full"):
                    ui.label("Online vs batch on the picked run's test rows").classes("text-subtitle1 text-bold")
                    self.comparison_note = tagged(ui.label().classes("text-xs text-grey-7"), "comparison-note")
                    self.comparison = ui.table(columns=COMPARISON_COLUMNS, rows=[], row_key="metric").classes(
                        "w-full").props("dense flat").mark("comparison")
        ui.label("Batch prediction").classes("text-h6")
        self.predictions = Predictions(view, batch=True)

    def _controls(self) -> None:
        ui.label("Train a batch model").classes("text-subtitle1 text-bold")
        ui.label("On the use case's Delta table, split by event time (train | validation | test).").classes(
            "text-xs text-grey-7")
        self.fraction = ui.slider(min=0.01, max=1.0, step=0.01, value=1.0).props("label-always").mark("fraction")
        ui.label().bind_text_from(self.fraction, "value", lambda v: f"Sample fraction: {fmt.percent(v)}").classes(
            "text-sm")
        self.max_rows = ui.number("Max rows (optional)", min=1, precision=0).mark("max-rows")
        self.k = ui.number("Clusters K (optional, 2–50; empty: searched)", min=2, max=50, precision=0).mark(
            "k") if self.view.key == "ecci" else None
        with ui.row():
            self.train_button = tagged(ui.button("Train", icon="model_training", on_click=self.train), "train")
            self.stop_button = tagged(ui.button("Stop", icon="stop", on_click=self.stop).props("outline"), "stop")
        self.stage = tagged(ui.label(fmt.DASH).classes("text-sm"), "stage")
        self.progress = ui.linear_progress(value=0, show_value=False).props("size=12px").mark("progress")
        self.message = ui.label().classes("text-xs text-grey-7").mark("message")
        self.log = ui.log(max_lines=200).classes("w-full h-40 text-xs").mark("log")

    def _diagnostics(self) -> None:
        ui.label("Diagnostics").classes("text-subtitle1 text-bold")
        with ui.row().classes("w-full"):
            self.run_pick = ui.select({}, label="Run", on_change=self.pick_run).classes("w-56").mark("run-pick")
            self.figure_pick = ui.select({}, label="Figure", on_change=self.load_figure).classes("grow").mark(
                "figure-pick")
        self.what = ui.markdown().classes("text-sm").mark("figure-what")
        # the plot exists only while it has a figure: plotly.js throws when asked to resize a hidden plot
        self.plot_box = ui.element().classes("w-full")
        self.plot: ui.plotly | None = None
        self.how = ui.markdown().classes("text-xs text-grey-7").mark("figure-how")

    async def train(self) -> None:
        body: dict[str, Any] = {"sample_frac": round(float(self.fraction.value), 4)}
        if self.max_rows.value:
            body["max_rows"] = int(self.max_rows.value)
        if self.k is not None and self.k.value:
            body["k"] = int(self.k.value)
        reply = await self.api.training("POST", "/", self.view.key, body)
        if reply.status == 409:
            running = reply.body.get("running", {}) if isinstance(reply.body, dict) else {}
            ui.notify(f"Already training: run {running.get('run_id')} since {fmt.when(running.get('started_at'))}",
                      type="warning")
        elif not reply.ok:
            ui.notify(reply.error, type="negative", multi_line=True)
        else:
            ui.notify(f"Training started: run {reply.data().get('run_id')}", type="positive")
        await self.refresh()

    async def stop(self) -> None:
        reply = await self.api.training("POST", "/stop", self.view.key)
        ui.notify("Stopping the training" if reply.ok else reply.error, type="info" if reply.ok else "warning")
        await self.refresh()

    async def refresh(self) -> None:
        """One progress poll; when a run ends, reload runs, figures and the comparison."""
        reply = await self.api.training("GET", "/status", self.view.key)
        if not reply.ok:
            self.message.set_text(reply.error or "")
            return
        status = reply.data()
        state = status.get("state")
        percent = float(status.get("percent") or 0)
        stage = status.get("stage")
        self.stage.set_text(f"{state}{f': {stage}' if stage and stage != state else ''} ({percent:.0f} %)")
        self.progress.set_value(percent / 100)
        self.message.set_text(status.get("error") or status.get("message") or "")
        self.train_button.set_enabled(state != "running")
        self.stop_button.set_enabled(state == "running")
        lines = [str(line) for line in status.get("log") or []]
        if lines != self.log_lines:
            self.log.clear()
            for line in lines:
                self.log.push(line)
            self.log_lines = lines
        ended = self.state is not None and state != self.state and state != "running"
        self.state = state
        if ended:  # a new run to list, maybe a new version to choose
            await asyncio.gather(self.load_runs(), self.predictions.load_versions())

    async def load_runs(self) -> None:
        reply = await self.api.training("GET", "/runs", self.view.key)
        runs = reply.data().get("runs", [])
        self.runs.rows = [run_row(run, self.view.champion_metric) for run in runs]
        self.runs.update()
        options = {run["run_id"]: f"{'★ ' if run.get('champion') else ''}{str(run['run_id'])[:12]}" for run in runs
                   if run.get("run_id")}
        chosen = next((run["run_id"] for run in runs if run.get("champion")), next(iter(options), None))
        if not runs:
            self.comparison_note.set_text(reply.error or "No batch run yet: Train one.")
        self.run_pick.set_options(options, value=chosen)  # a new choice loads its figures and comparison

    async def pick_run(self) -> None:
        """The picked run's figures and its online-vs-batch comparison."""
        if self.run_pick.value:
            await asyncio.gather(self.load_figures(), self.load_comparison())

    async def load_figures(self) -> None:
        reply = await self.api.training("GET", "/diagnostics", self.view.key, run_id=self.run_pick.value)
        figures = reply.data().get("figures", [])
        if not figures:  # a run killed before its figures were drawn
            self.what.set_content(reply.error or "This run has no figures.")
            self.how.set_content("")
            self.plot_box.clear()
            self.plot = None
        self.figure_pick.set_options({f["name"]: f.get("title", f["name"]) for f in figures},
                                     value=figures[0]["name"] if figures else None)

    async def load_figure(self) -> None:
        name = self.figure_pick.value
        if not name or not self.run_pick.value:
            return
        reply = await self.api.training("GET", "/diagnostics", self.view.key, run_id=self.run_pick.value, name=name)
        if not reply.ok:
            self.what.set_content(reply.error or "")
            return
        figure = reply.data()
        self.what.set_content(f"**{figure.get('title', name)}**: {figure.get('what', '')}")
        self.how.set_content(str(figure.get("how", "")))
        plot = dict(figure.get("figure") or {})
        plot["layout"] = {**plot.get("layout", {}), "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}
        if self.plot is None:
            with self.plot_box:
                self.plot = ui.plotly(plot).classes("w-full").mark("figure")
        else:
            self.plot.update_figure(plot)

    async def load_comparison(self) -> None:
        reply = await self.api.training("GET", "/comparison", self.view.key, run_id=self.run_pick.value)
        body = reply.data()
        self.comparison.rows = _comparison_rows(body.get("rows", []))
        self.comparison.update()
        self.comparison_note.set_text(comparison_note(body) if reply.ok else (reply.error or ""))


def not_deployed(reply: Reply) -> bool:
    """Whether `train` is absent: nobody answered, or something else answered 404 at its URL."""
    return not reply.answered or reply.status == 404


async def tab(view: UseCaseView, shown: Callable[[str], None]) -> None:
    """The Batch tab of `view`."""
    shown("batch")
    first = await functions().training("GET", "/status", view.key)
    if not_deployed(first):
        with ui.card().classes("w-full items-start"):
            with ui.row().classes("items-center gap-2"):
                ui.icon("cloud_off", color="grey").classes("text-2xl")
                ui.label("Batch training is not deployed").classes("text-h6").mark("not-deployed")
            ui.label(f"{first.error}. The Batch tab works once the train and {view.key}-batch-predict functions "
                     "answer (COELHO_FUNCTION_URLS or COELHO_FUNCTION_URL_TEMPLATE says where).").classes(
                "text-sm text-grey-8")
        return
    batch = Batch(view)
    await asyncio.gather(batch.refresh(), batch.load_runs(), batch.predictions.load_versions())
    ui.timer(REFRESH_S, batch.refresh)
