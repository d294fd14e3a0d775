"""`/`: what the platform is, one live card per use case, the configured services."""

from __future__ import annotations

from datetime import UTC, datetime

from nicegui import ui

from coelho_ui import fmt, live
from coelho_ui.client import functions
from coelho_ui.theme import service_links
from coelho_ui.usecases import VIEWS
from coelho_ui.widgets import KeyValues

__all__ = ["page"]

REFRESH_S = 2.0

INTRO = """
Events (card transactions, taxi trips, shop clicks) arrive as CloudEvents. **Learn** functions update River models
online, exactly once per event, with their state in Redis and their history, versions and champion in MLflow;
**predict** functions answer from the live model; every event also lands in a **Delta Lake** table, which the
**sql** function queries read-only with DuckDB; **train** retrains batch models on those tables. This UI is one
more client of those functions, over HTTP.
"""


async def page() -> None:
    """The landing page."""
    ui.label("Online machine learning on event streams").classes("text-h5")
    ui.markdown(INTRO).classes("max-w-4xl")
    cards: dict[str, KeyValues] = {}
    with ui.grid().classes("w-full gap-4 grid-cols-1 md:grid-cols-3"):
        for view in VIEWS.values():
            with ui.card().classes("items-stretch"):
                with ui.row().classes("items-center gap-2"):
                    ui.icon(view.icon, color=view.colour).classes("text-2xl")
                    ui.label(view.title).classes("text-h6")
                ui.label(view.summary).classes("text-sm text-grey-7")
                cards[view.key] = KeyValues(["Events learned", view.metric(view.champion_metric).label,
                                             "Served from", "Freshness"])
                ui.button(f"Open {view.key.upper()}", on_click=lambda key=view.key: ui.navigate.to(f"/{key}")).props(
                    "outline")
    with ui.card().classes("w-full"):
        ui.label("Services").classes("text-h6")
        links = service_links(functions().settings)
        with ui.row().classes("gap-4"):
            for name, url in links:
                ui.link(name, url, new_tab=True)
            if not links:
                ui.label("No services configured: set COELHO_UI_LINKS (e.g. Grafana=http://grafana:3000).").classes(
                    "text-grey-7")

    async def refresh() -> None:
        for view in VIEWS.values():
            reply = await live.status(view.key)
            body = reply.data()
            learner = body.get("learner") or {}
            metric = view.metric(view.champion_metric)
            card = live.model_card(body, datetime.now(UTC)) if reply.ok else {}
            cards[view.key].update({
                "Events learned": fmt.count(learner.get("events_applied")),
                metric.label: fmt.value((learner.get("metrics") or {}).get(metric.name), metric.unit),
                "Served from": card.get("Served from", reply.error or fmt.DASH),
                "Freshness": card.get("Freshness", fmt.DASH),
            })

    await refresh()
    ui.timer(REFRESH_S, refresh)
