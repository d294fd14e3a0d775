"""The frame around every page: the header with the use cases, the services menu and the dark-mode switch."""

from __future__ import annotations

from nicegui import app, ui

from coelho.config import Settings
from coelho_ui import login
from coelho_ui.usecases import VIEWS

__all__ = ["frame", "service_links"]


def service_links(settings: Settings) -> list[tuple[str, str]]:
    """The configured services (COELHO_UI_LINKS), plus MLflow's server when it is an http(s) URL not named there.

    >>> service_links(Settings(ui_links=(("Grafana", "http://g:3000"),), mlflow_tracking_uri="http://127.0.0.1:8089"))
    [('Grafana', 'http://g:3000'), ('MLflow', 'http://127.0.0.1:8089')]
    >>> service_links(Settings(mlflow_tracking_uri="sqlite:///x.db"))
    []
    """
    links = list(settings.ui_links)
    uri = settings.mlflow_tracking_uri or ""
    if settings.mlflow and uri.startswith(("http://", "https://")) and "MLflow" not in dict(links):
        links.append(("MLflow", uri))
    return links


def frame(settings: Settings) -> None:
    """The header: home, the three use cases, services, dark mode, and log out when a password is set."""
    dark = ui.dark_mode(app.storage.user.get("dark", False))

    def toggle_dark() -> None:
        dark.value = not dark.value
        app.storage.user["dark"] = dark.value

    with ui.header().classes("items-center gap-1 px-4 py-1 bg-slate-800"):
        ui.button("COELHO RealTime", icon="bolt", on_click=lambda: ui.navigate.to("/")).props(
            "flat color=white no-caps size=lg")
        for view in VIEWS.values():
            ui.button(view.title, icon=view.icon, on_click=lambda key=view.key: ui.navigate.to(f"/{key}")).props(
                "flat color=white no-caps").classes("gt-sm")
            ui.button(view.key.upper(), on_click=lambda key=view.key: ui.navigate.to(f"/{key}")).props(
                "flat color=white").classes("lt-md")
        ui.space()
        with ui.button("Services", icon="apps").props("flat color=white no-caps"):
            with ui.menu():
                links = service_links(settings)
                for name, url in links:
                    with ui.menu_item():
                        ui.link(name, url, new_tab=True).classes("text-body1")
                if not links:
                    ui.menu_item("none configured (COELHO_UI_LINKS)").props("disable")
        ui.button(icon="dark_mode", on_click=toggle_dark).props("flat round color=white").tooltip("Dark mode").mark(
            "dark-mode")
        if settings.ui_password:
            ui.button(icon="logout", on_click=login.log_out).props("flat round color=white").tooltip("Log out")
